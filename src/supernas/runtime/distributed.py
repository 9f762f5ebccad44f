"""torch.distributed as the engine: set up from torchrun's environment, and the few collectives
training needs. Without torchrun everything degrades to one process."""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Iterable

import torch
import torch.distributed as dist

from ..errors import SupernasError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup_distributed(device: str = "auto") -> tuple[DistInfo, torch.device]:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK) and pick a device.

    `device`: 'auto' (the local GPU when there is one, else CPU), 'cpu', 'cuda' or 'cuda:N'.
    Backend: NCCL on GPUs, gloo on CPU.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local % max(torch.cuda.device_count(), 1))
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=timedelta(minutes=30))
    return DistInfo(rank, world, local), dev


def resolve_device(device: "str | torch.device" = "auto") -> torch.device:
    """'auto' is the GPU when there is one, else the CPU; anything else as torch reads it."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        return torch.device(device)
    except RuntimeError:
        raise SupernasError(f"unknown device '{device}'; give cpu, cuda, cuda:N or auto") from None


def current() -> DistInfo:
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return DistInfo()


def barrier() -> None:
    if current().enabled:
        dist.barrier()


def all_reduce_mean_(t: torch.Tensor) -> torch.Tensor:
    info = current()
    if info.enabled:
        dist.all_reduce(t)
        t /= info.world_size
    return t


def all_reduce_grads(params: Iterable[torch.nn.Parameter], bucket_mb: float = 25.0) -> None:
    """Average gradients over ranks, in flat buckets.

    Used instead of DistributedDataParallel because a sandwich step accumulates gradients of
    several subnets, each touching a different slice of the weights: one all-reduce per step
    after all of them is both simpler and cheaper than DDP's per-backward hooks. All ranks run
    the same Archs, so the same parameters have gradients everywhere.
    """
    info = current()
    if not info.enabled:
        return
    grads = [p.grad for p in params if p.grad is not None]
    limit = int(bucket_mb * 2**20)
    bucket: list[torch.Tensor] = []
    size = 0

    def flush():
        nonlocal bucket, size
        if not bucket:
            return
        flat = torch.cat([g.reshape(-1) for g in bucket])
        dist.all_reduce(flat)
        flat /= info.world_size
        offset = 0
        for g in bucket:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()
        bucket, size = [], 0

    for g in grads:
        if bucket and (g.dtype != bucket[0].dtype or size + g.numel() * g.element_size() > limit):
            flush()
        bucket.append(g)
        size += g.numel() * g.element_size()
    flush()


def broadcast_object(obj, src: int = 0):
    if not current().enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]
