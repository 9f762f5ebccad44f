"""Numeric precision and layout of a run: autocast dtype, channels_last and cuDNN's benchmark
mode, chosen per kind of model from what was measured (docs/performance.md)."""
from __future__ import annotations

from typing import Any

import torch


def precision(run: Any, cuda: bool, fixed_shapes: bool) -> tuple[torch.dtype | None, bool, bool]:
    """(autocast dtype or None for fp32, channels_last, cudnn.benchmark) of a run, as `run.amp`,
    `run.channels_last` and `run.cudnn_benchmark` ask (`run`: the validated `run` section of a
    config); cudnn.benchmark is applied here.

    'auto' follows what was measured on an H200 (docs/performance.md): a static model (retrain,
    finetune: `fixed_shapes`) trains with bf16 autocast, channels_last and cudnn.benchmark on a GPU.
    A weight-sharing supernet meets new layer shapes every step, and every new shape costs cuDNN a
    plan (seconds for channels_last and bf16 convolutions, and minutes of tuning with
    cudnn.benchmark): its steps ran 140 images/s in fp32 NCHW against 98 in bf16 and 3 in bf16 +
    channels_last, so 'auto' is fp32, NCHW, benchmark off there."""
    static_gpu = cuda and fixed_shapes
    dtype = {"auto": torch.bfloat16 if static_gpu else None, "bf16": torch.bfloat16, "fp32": None}[run.amp]
    channels_last = static_gpu if run.channels_last == "auto" else run.channels_last
    return dtype, channels_last, set_cudnn_benchmark(run.cudnn_benchmark, fixed_shapes)


def set_cudnn_benchmark(setting: Any, fixed_shapes: bool) -> bool:
    """Apply `run.cudnn_benchmark` and return what was set.

    cuDNN's benchmark mode times every algorithm for each new input shape and keeps the fastest.
    That pays off when shapes repeat (a static model: retrain, finetune) and costs dearly when they
    do not: a supernet meets new widths, kernels and resolutions every step, and its first steps
    took 42, 7 and 13 s with it on against 0.46 s off (H200, docs/performance.md). So 'auto' is
    on for `fixed_shapes` only."""
    on = fixed_shapes if setting == "auto" else bool(setting)
    torch.backends.cudnn.benchmark = on
    return on


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Autocast to `dtype` on `device`, or full precision when `dtype` is None."""
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)
