"""The training tasks that run on `supernas.runtime.loop`: AttentiveNAS stage 1 (`supernet`) and one
static Arch retrained or fine-tuned (`standalone`, with `ema`, `teacher` and `arch_source`)."""
from importlib import import_module
from typing import Any

# The public trainers and commands, imported on first use (a trainer pulls in data, models and the loop).
_EXPORTS = {"SupernetTrainer": "supernet", "StandaloneTrainer": "standalone", "finetune": "standalone",
            "retrain": "standalone", "WeightParts": "parts", "weight_parts": "parts"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
