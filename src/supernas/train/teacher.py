"""The teacher of knowledge distillation for `retrain` / `finetune`: an exported model, or the
largest Arch of a stage-1 supernet, frozen, seeing the student's batch in its own input format."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import torch
from torch import nn

from ..deliver.export import calibrate_extracted
from ..errors import SupernasError
from ..evaluation import load_run
from ..evaluation.static_models import load_exported
from ..nn.static import resize_to
from ..utils.file_names import ARCH, CHECKPOINT, CONFIG, RESULT


class Teacher:
    """A frozen model whose predictions the student learns from. It sees the student's batch
    re-normalised to its own mean/std (when they differ) and resized to its own resolution."""

    def __init__(self, model: nn.Module, resolution: int, mean: Iterable[float], std: Iterable[float],
                 data_mean: Iterable[float], data_std: Iterable[float], channels_last: bool = False):
        self.model = model.eval().requires_grad_(False)
        self.resolution, self.channels_last = int(resolution), channels_last
        t_mean, t_std, s_mean, s_std = (torch.tensor(list(v), dtype=torch.float32).view(1, 3, 1, 1)
                                        for v in (mean, std, data_mean, data_std))
        # x_teacher = (x * s_std + s_mean - t_mean) / t_std, as one scale and shift
        same = torch.equal(t_mean, s_mean) and torch.equal(t_std, s_std)
        self.scale_shift = None if same else (s_std / t_std, (s_mean - t_mean) / t_std)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale_shift is not None:
            scale, shift = self.scale_shift
            x = x * scale.to(x.device) + shift.to(x.device)
        x = resize_to(x, self.resolution)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.model(x).float()


def load_teacher(path: "str | Path", data, device: torch.device, bn_batches: int = 64,
                 channels_last: bool = False) -> Teacher:
    """A Teacher from an export directory (or its model file), or from a stage-1 supernet run
    directory: its largest Arch, extracted, with BN re-calibrated on the run's training images."""
    p = Path(path).expanduser()
    if (p / ARCH).is_file() or (p.is_file() and (p.parent / ARCH).is_file()):
        model, meta = load_exported(p)
        resolution, classes, mean, std = meta["resolution"], meta["num_classes"], meta["mean"], meta["std"]
    elif (p / CONFIG).is_file() and (p / CHECKPOINT).is_file() and not (p / RESULT).exists():
        net, _, run_data = load_run(p, str(device))
        model = net.extract(net.space.largest())
        del net
        calibrate_extracted(model, run_data, bn_batches, device)
        resolution, classes, mean, std = model.resolution, run_data.num_classes, run_data.mean, run_data.std
    else:
        raise SupernasError(f"teacher '{path}' is neither an export directory (arch.json) nor a supernet run "
                            "directory (config.yaml and checkpoint.pt of `supernas train`)")
    if classes != data.num_classes:
        raise SupernasError(f"teacher '{path}' predicts {classes} classes, the data has {data.num_classes}; "
                            "use a teacher trained on the same classes")
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return Teacher(model, resolution, mean, std, data.mean, data.std, channels_last)
