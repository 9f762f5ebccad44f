"""The run directory: refused when it already holds a run (unless resuming), the resolved config
written into it, and the run's logger."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import dump_config
from ..errors import SupernasError
from . import distributed as ddp
from .checkpoint import CHECKPOINT
from .logging import RunLogger


def open_run(run_dir: Path, cfg: Any, resume: bool, total: int, initial: int) -> RunLogger:
    """Refuse to overwrite an existing run unless resuming, write the resolved config (a schema of
    `supernas.config`), and return the run's logger (progress bar over `total` steps from
    `initial`, as `cfg.log` asks).

    Every rank checks, so that none is left waiting at the barrier when the others stop."""
    if not resume and (run_dir / CHECKPOINT).exists():
        raise SupernasError(f"'{run_dir}' already holds a run; continue it with --resume, or choose another run.dir")
    if ddp.current().is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        dump_config(cfg, run_dir / "config.yaml")
    ddp.barrier()
    return RunLogger(run_dir, ddp.current().is_main, cfg.log.tensorboard, cfg.log.progress, total=total,
                     initial=initial)
