"""The training tasks that run on `supernas.runtime.loop`: AttentiveNAS stage 1 (`supernet`) and one
static Arch retrained or fine-tuned (`standalone`, with `ema`, `teacher` and `arch_source`)."""
