"""Running out of device memory is a setting to change, not a crash: `what_to_change` turns the
allocator's error into one line naming the step, the memory in use and the settings that lower
it, those a resumed run may change (`runtime/resume.py`) first."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

import torch

from ..errors import SupernasError


def is_out_of_memory(e: BaseException) -> bool:
    """A CUDA out-of-memory error, or the CPU allocator's 'can't allocate memory'."""
    return isinstance(e, torch.cuda.OutOfMemoryError) or (
        isinstance(e, RuntimeError) and ("out of memory" in str(e) or "can't allocate memory" in str(e)))


def _in_use(device: torch.device) -> str:
    if device.type != "cuda" or not torch.cuda.is_available():
        return ""
    total = torch.cuda.get_device_properties(device).total_memory
    return f" ({torch.cuda.memory_reserved(device) / 2**30:.1f} of its {total / 2**30:.1f} GiB held by this process)"


def what_to_change(cfg: Any, device: torch.device, where: str, batch_key: str, bf16: bool,
                   resumable: bool) -> str:
    """The message for running out of memory on `device` during `where`, whose batch is the setting
    `batch_key` ('train.batch_size', 'eval.batch_size') of `cfg`; `bf16`: the run computes in bf16;
    `resumable`: a checkpoint to continue from exists."""
    section, key = batch_key.split(".")
    batch = getattr(getattr(cfg, section), key)
    head = f"out of memory on {device}{_in_use(device)} during {where} with {batch_key}={batch}: "
    again = "continue from the last checkpoint with --resume and " if resumable else "set "
    if section != "train":  # validation settings may change on resume
        return head + f"{again}a smaller {batch_key}"
    lighter = []
    if getattr(cfg.train, "recompute_bn_act", True) is False:
        lighter.append("train.recompute_bn_act=true (less than half the stored activations)")
    if not bf16:
        lighter.append("run.amp=bf16 (half the activation memory)")
    smaller = f"start over with a smaller {batch_key}" if resumable else f"a smaller {batch_key}"
    if not lighter:
        return head + ("" if resumable else "set ") + smaller
    return head + f"{again}{' or '.join(lighter)}, or {smaller}"


@contextlib.contextmanager
def out_of_memory_names_the_fix(cfg: Any, device: torch.device, where: str, batch_key: str, bf16: bool,
                                checkpoint: Path | None) -> Iterator[None]:
    """Within it, running out of memory raises a SupernasError saying `what_to_change`;
    `checkpoint`: the file a resumed run would continue from (None where none can be: a dry run),
    looked for only then (this wraps every training step)."""
    try:
        yield
    except (RuntimeError, torch.cuda.OutOfMemoryError) as e:
        if not is_out_of_memory(e):
            raise
        resumable = checkpoint is not None and checkpoint.is_file()
        message = what_to_change(cfg, device, where, batch_key, bf16, resumable)
        if device.type == "cuda":
            torch.cuda.empty_cache()
        raise SupernasError(message) from None
