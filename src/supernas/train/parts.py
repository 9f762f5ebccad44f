"""The parts a weight-sharing run trains with (stage 1's supernet, the FP-NAS search): the supernet,
its optimizer and its learning-rate schedule, built from the run's settings by `weight_parts`, or
given to the trainer instead (benches and tests bring their own)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..nn import SuperNet
from ..runtime.optim import param_groups, warmup_cosine_scheduler
from ..spaces import SearchSpace


@dataclass
class WeightParts:
    net: SuperNet
    optimizer: torch.optim.Optimizer
    scheduler: Any  # a torch.optim.lr_scheduler scheduler stepped once per step


def weight_parts(t: Any, space: SearchSpace, num_classes: int, device: torch.device, channels_last: bool,
                 lr: float, total_steps: int, steps_per_epoch: int) -> WeightParts:
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
