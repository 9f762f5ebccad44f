"""Optimizer pieces every trainer shares: parameter groups (no weight decay on BatchNorm and
biases), the linear scaling rule, the run's length in steps, the learning-rate schedule (linear
warm-up, then cosine decay to `final_ratio` of the peak, per step), and the step that applies
gradients accumulated over several Archs."""
from __future__ import annotations

import math
from typing import Any

import torch

from . import distributed as ddp


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, final_ratio: float = 0.0) -> float:
    """Multiplier of the peak learning rate at `step` (0-based)."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    t = min(1.0, (step - warmup_steps) / span)
    return final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * t))


def warmup_cosine_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int,
                            final_ratio: float = 0.0) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_cosine(s, total_steps, warmup_steps, final_ratio))


def run_length(epochs: int, steps_per_epoch: int, max_steps: int | None) -> tuple[int, int]:
    """(steps the schedule spans, step the run stops at): `max_steps` stops a run early, the
    schedule still spans every epoch."""
    total = epochs * steps_per_epoch
    return total, total if max_steps is None else min(total, max_steps)


def step_accumulated(net: torch.nn.Module, optimizer: torch.optim.Optimizer,
                     scheduler: torch.optim.lr_scheduler.LRScheduler, grad_clip: float | None) -> None:
    """One optimizer step on the gradients several Archs accumulated in `net`: averaged over ranks
    once (`ddp.all_reduce_grads`), clipped to [-grad_clip, grad_clip] when set, applied, cleared,
    and the schedule advanced."""
    params = [p for p in net.parameters() if p.grad is not None]
    ddp.all_reduce_grads(params)
    if grad_clip:
        torch.nn.utils.clip_grad_value_(params, grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    scheduler.step()


def scaled_lr(base_lr: float, global_batch: int, per: int = 256) -> float:
    """The papers' linear scaling rule: `base_lr` per `per` images."""
    return base_lr * global_batch / per


def param_groups(net: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on conv and linear weights only (BatchNorm and biases excluded)."""
    decay: list[torch.nn.Parameter]
    no_decay: list[torch.nn.Parameter]
    decay, no_decay = [], []
    for p in net.parameters():
        (decay if p.dim() > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
