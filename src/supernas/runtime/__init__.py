"""What every trainer runs on: distributed set-up and collectives (`distributed`), the run
directory (`run_dir`), checkpoints and exact resume (`checkpoint`, `data_order`), logging
(`logging`, `device_metrics`), precision and layout (`precision`), optimizer pieces and losses
(`optim`, `losses`), and the one training loop that runs a task (`loop`)."""
