"""BatchNorm re-calibration: the running statistics a subnet sees in the supernet are those of
other subnets, so before evaluating an Arch they are recomputed from training batches."""
from __future__ import annotations

import contextlib
from typing import Iterable, Iterator, cast

import torch
from torch import nn


def _bns(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[torch.Tensor], forward=None, num_batches: int = 64) -> int:
    """Reset BN statistics, then average them (cumulatively, not by momentum) over `num_batches`
    batches run in train mode without gradients. `forward(x)` runs the model (default
    `model(x)`); returns the number of batches used."""
    forward = forward or model
    bns = _bns(model)
    saved = [(m.momentum, m.training) for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    was_training = model.training
    model.train()
    n = 0
    try:
        for x in batches:
            if n >= num_batches:
                break
            forward(x)
            n += 1
    finally:
        for m, (momentum, _) in zip(bns, saved):
            m.momentum = momentum
        model.train(was_training)
    return n


@contextlib.contextmanager
def preserved_bn_stats(model: nn.Module) -> Iterator[None]:
    """Restore every BN buffer on exit, so evaluating Archs leaves training state untouched."""
    bns = _bns(model)
    saved = [{k: v.clone() for k, v in m.named_buffers(recurse=False)} for m in bns]
    try:
        yield
    finally:
        with torch.no_grad():
            for m, bufs in zip(bns, saved):
                for k, v in bufs.items():
                    getattr(m, k).copy_(v)


@contextlib.contextmanager
def frozen_bn_stats(model: nn.Module) -> Iterator[None]:
    """Train-mode BN (batch statistics) that does not move the running statistics."""
    bns = _bns(model)
    saved = [(m.momentum, m.num_batches_tracked.clone() if m.num_batches_tracked is not None else None) for m in bns]
    for m in bns:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, (momentum, nbt) in zip(bns, saved):
            m.momentum = momentum
            if nbt is not None:  # saved from this module's own num_batches_tracked, so it has one
                cast(torch.Tensor, m.num_batches_tracked).copy_(nbt)
