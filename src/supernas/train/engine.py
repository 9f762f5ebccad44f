"""Pieces both training loops build on (stage-1 supernet training and the FP-NAS / PARSEC search):
precision, optimizer parameter groups, config defaults for data, and the run directory."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from ..config import dump_config
from ..errors import SupernasError
from . import distributed as dist
from .checkpoint import CHECKPOINT
from .logging import RunLogger


def amp_dtype(amp: Any, auto: torch.dtype | None) -> torch.dtype | None:
    """The autocast dtype of `run.amp` ('auto': the caller's measured choice `auto`; None is fp32)."""
    if amp == "auto":
        return auto
    if amp in (None, False, "none", "fp32", "off"):
        return None
    if amp in ("bf16", "bfloat16"):
        return torch.bfloat16
    if amp in ("fp16", "float16"):
        raise SupernasError("run.amp=fp16 is not supported (it needs loss scaling); use bf16 or fp32")
    raise SupernasError(f"run.amp must be auto, bf16 or fp32, got {amp!r}")


def precision(run: Mapping[str, Any], cuda: bool, fixed_shapes: bool) -> tuple[torch.dtype | None, bool, bool]:
    """(autocast dtype, channels_last, cudnn.benchmark) of a run, as `run.amp`, `run.channels_last`
    and `run.cudnn_benchmark` ask; cudnn.benchmark is applied here.

    'auto' follows what was measured on an H200 (docs/performance.md): a static model (retrain,
    finetune: `fixed_shapes`) trains with bf16 autocast, channels_last and cudnn.benchmark on a GPU.
    A weight-sharing supernet meets new layer shapes every step, and every new shape costs cuDNN a
    plan (seconds for channels_last and bf16 convolutions, and minutes of tuning with
    cudnn.benchmark): its steps ran 140 images/s in fp32 NCHW against 98 in bf16 and 3 in bf16 +
    channels_last, so 'auto' is fp32, NCHW, benchmark off there."""
    dtype = amp_dtype(run["amp"], torch.bfloat16 if cuda and fixed_shapes else None)
    cl = run["channels_last"]
    if cl == "auto":
        cl = cuda and fixed_shapes
    elif not isinstance(cl, bool):
        raise SupernasError(f"run.channels_last must be auto, true or false, got {cl!r}")
    return dtype, cl, set_cudnn_benchmark(run["cudnn_benchmark"], fixed_shapes)


def set_cudnn_benchmark(setting: Any, fixed_shapes: bool) -> bool:
    """Apply `run.cudnn_benchmark` and return what was set.

    cuDNN's benchmark mode times every algorithm for each new input shape and keeps the fastest.
    That pays off when shapes repeat (a static model: retrain, finetune) and costs dearly when they
    do not: a supernet meets new widths, kernels and resolutions every step, and its first steps
    took 42, 7 and 13 s with it on against 0.46 s off (H200, docs/performance.md). So 'auto' is
    on for `fixed_shapes` only."""
    if setting == "auto":
        on = fixed_shapes
    elif isinstance(setting, bool):
        on = setting
    else:
        raise SupernasError(f"run.cudnn_benchmark must be auto, true or false, got {setting!r}")
    torch.backends.cudnn.benchmark = on
    return on


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Autocast to `dtype` on `device`, or full precision when `dtype` is None."""
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def param_groups(net: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on conv and linear weights only (BatchNorm and biases excluded)."""
    decay, no_decay = [], []
    for p in net.parameters():
        (decay if p.dim() > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def data_defaults(**overrides: Any) -> dict[str, Any]:
    """The `data:` section of a config: every `DataConfig` field, so each may be overridden."""
    from ..data import DataConfig

    return {**DataConfig().to_dict(), **overrides}


def open_run(run_dir: Path, cfg: Mapping[str, Any], resume: bool, total: int, initial: int) -> RunLogger:
    """Refuse to overwrite an existing run unless resuming, write the resolved config, and return
    the run's logger (progress bar over `total` steps from `initial`, as `cfg["log"]` asks).

    Every rank checks, so that none is left waiting at the barrier when the others stop."""
    if not resume and (run_dir / CHECKPOINT).exists():
        raise SupernasError(f"'{run_dir}' already holds a run; continue it with --resume, or choose another run.dir")
    if dist.current().is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        dump_config(cfg, run_dir / "config.yaml")
    dist.barrier()
    log = cfg["log"]
    return RunLogger(run_dir, dist.current().is_main, log["tensorboard"], log["progress"], total=total, initial=initial)
