"""DataLoaders, one process or distributed, with seeded shuffling and augmentation."""
from __future__ import annotations

from typing import Optional

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ..errors import SupernasError


def build_loader(dataset: Dataset, batch_size: int, train: bool, workers: int = 2, distributed: bool = False,
                 seed: int = 0, drop_last: Optional[bool] = None, pin_memory: Optional[bool] = None) -> DataLoader:
    """A DataLoader over `dataset`: shuffled when `train`, in order otherwise.

    With `distributed` and torch.distributed initialised, each process reads its own shard through
    a DistributedSampler; the caller must call :func:`set_epoch` (or `loader.sampler.set_epoch`)
    at the start of every epoch, or every epoch repeats the first one's order. Without it one
    process reads everything, and the order still changes from epoch to epoch. `drop_last`
    (default: `train`) keeps every batch at `batch_size`; in distributed evaluation the sampler
    pads the last shard with repeated images, so gather predictions by index if exact counts matter.
    `seed` fixes the order and, through the workers' seeds, the augmentations.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise SupernasError(f"batch size must be a positive integer, got {batch_size!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise SupernasError(f"data workers must be an integer >= 0, got {workers!r}")
    drop_last = train if drop_last is None else drop_last
    sharded = distributed and dist.is_available() and dist.is_initialized()
    rank, replicas = (dist.get_rank(), dist.get_world_size()) if sharded else (0, 1)
    if drop_last and len(dataset) // replicas < batch_size:
        raise SupernasError(f"a split of {len(dataset)} images gives no full batch of {batch_size}"
                            f"{f' on each of {replicas} processes' if replicas > 1 else ''}; lower the batch size "
                            "or use more images (train_subset, search_size)")
    sampler = DistributedSampler(dataset, num_replicas=replicas, rank=rank, shuffle=train, seed=seed,
                                 drop_last=drop_last) if sharded else None
    # Per rank, so processes don't draw the same augmentations for their different images.
    generator = torch.Generator().manual_seed(seed + rank)
    return DataLoader(dataset, batch_size=batch_size, shuffle=train and sampler is None, sampler=sampler,
                      num_workers=workers, pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
                      drop_last=drop_last, generator=generator, persistent_workers=workers > 0)


def set_epoch(loader: DataLoader, epoch: int) -> None:
    """Reshuffle a distributed loader for `epoch` (a no-op for one process)."""
    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(epoch)
