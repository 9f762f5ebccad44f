"""What every trainer runs on: distributed set-up and collectives (`distributed`), the run
directory (`run_dir`), checkpoints and exact resume (`checkpoint`, `data_order`), logging
(`logging`, `device_metrics`), precision and layout (`precision`), optimizer pieces and losses
(`optim`, `losses`), and the one training loop that runs a task (`loop`)."""
from importlib import import_module
from typing import Any

# The names a script outside the package (bench/, a user's) may rely on, by the module defining
# them; imported on first use, so that importing one runtime module does not load them all.
_EXPORTS = {
    "ResumableLoader": "data_order", "ResumableSampler": "data_order", "is_out_of_memory": "out_of_memory",
    "label_smoothing_ce": "losses", "load_checkpoint": "checkpoint", "soft_target_ce": "losses",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
