"""The parts a run trains with: the network, its optimizer and its learning-rate schedule. Every
trainer builds them from the run's settings (`weight_parts` for a weight-sharing supernet) or is
given them instead (benches and tests bring their own)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import torch

from ..nn import SuperNet
from ..runtime.optim import param_groups, warmup_cosine_scheduler
from ..spaces import SearchSpace

Net = TypeVar("Net", bound=torch.nn.Module)


@dataclass
class WeightParts(Generic[Net]):
    net: Net  # a SuperNet for stage 1 and the FP-NAS search, a StaticNet for retrain and finetune
    optimizer: torch.optim.Optimizer
    scheduler: Any  # a torch.optim.lr_scheduler scheduler stepped once per step


def weight_parts(t: Any, space: SearchSpace, num_classes: int, device: torch.device, channels_last: bool,
                 lr: float, total_steps: int, steps_per_epoch: int) -> WeightParts[SuperNet]:
    """The supernet of `space` on `device` as the `train` section `t` sets it up (recompute, kernel
    paths), SGD with Nesterov momentum at `lr` (weight decay on conv and linear weights only), and
    the linear warm-up then cosine schedule over `total_steps`."""
    net = SuperNet(space, num_classes).to(device)
    net.set_recompute_bn_act(t.recompute_bn_act)
    net.set_conv_kernels(t.pointwise_kernel, t.depthwise_kernel)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(param_groups(net, t.weight_decay), lr=lr, momentum=t.momentum, nesterov=t.nesterov)
    scheduler = warmup_cosine_scheduler(optimizer, total_steps, t.warmup_epochs * steps_per_epoch, t.final_lr_ratio)
    return WeightParts(net, optimizer, scheduler)
