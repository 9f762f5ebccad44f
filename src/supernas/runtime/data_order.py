"""Data order and augmentation that a resumed run reproduces exactly.

The order of epoch `e` is a permutation drawn from (seed, e), split across ranks; a run resumed
at batch `b` of an epoch starts the sampler there instead of loading and discarding `b`
batches. Each image's random augmentation is seeded from (seed, epoch, index), so it does not
depend on which worker loads it or on what was loaded before.
"""
from __future__ import annotations

import atexit
import weakref
from typing import Iterator, Sized

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .threads import init_loader_worker


class ResumableSampler(Sampler[int]):
    """Shuffled indices of one epoch for one rank, startable at any batch; yields
    `epoch * len(dataset) + index` so that `SeededDataset` knows the epoch."""

    def __init__(self, data: Sized, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1,
                 shuffle: bool = True):
        self.n = len(data)
        self.batch_size, self.seed, self.rank, self.world = batch_size, seed, rank, world_size
        self.shuffle = shuffle
        self.epoch, self.start_batch = 0, 0
        if self.batches_per_epoch == 0:
            from ..errors import SupernasError

            raise SupernasError(f"the training split has {self.n} images, fewer than one batch of {batch_size} per "
                                f"process on {world_size} process(es); lower the batch size")

    @property
    def batches_per_epoch(self) -> int:
        return self.n // (self.batch_size * self.world)  # drop the ragged tail, equal on every rank

    def set_position(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.start_batch) * self.batch_size

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.n, generator=g)
        else:
            order = torch.arange(self.n)
        per_rank = self.batches_per_epoch * self.batch_size
        mine = order[: per_rank * self.world][self.rank::self.world]
        base = self.epoch * self.n
        return iter((mine[self.start_batch * self.batch_size:] + base).tolist())


class SeededDataset(Dataset):
    """Wraps a dataset so that item `epoch * n + i` is image i augmented with its own seed."""

    def __init__(self, data: Dataset, seed: int = 0):
        self.data, self.seed = data, seed
        self.n = len(data)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, key: int):
        epoch, i = divmod(int(key), self.n)
        state = torch.random.get_rng_state()
        # The CPU generator only: torch.manual_seed would also (lazily) seed every accelerator, ~1 ms an image.
        torch.default_generator.manual_seed((self.seed * 1_000_003 + epoch) * 10_000_019 + i)
        try:
            return self.data[i]
        finally:
            torch.random.set_rng_state(state)


_OPEN: "weakref.WeakSet[ResumableLoader]" = weakref.WeakSet()


@atexit.register  # registered after multiprocessing's exit hook, so it runs before it
def _close_open_loaders() -> None:
    for loader in list(_OPEN):
        loader.close()


class ResumableLoader:
    """The batches of any epoch from any batch on, augmented with per-image seeds, from one
    DataLoader whose workers live as long as the run (`persistent_workers`: a new epoch does not
    start, and wait for, a new set of processes). Pinned memory on GPUs, so `x.to(device,
    non_blocking=True)` overlaps the copy with compute; each worker prefetches 4 batches, computes
    with one thread and ignores Ctrl-C (`init_loader_worker`)."""

    def __init__(self, data: Dataset, rows: ResumableSampler, seed: int, batch_size: int, workers: int,
                 pin_memory: bool = False):
        self.rows, self.workers = rows, workers
        # the record of unreadable images a source of files skips (data.on_bad_image: skip), if any
        self.bad_images = getattr(getattr(data, "source", None), "bad", None)
        self.loader: DataLoader | None = DataLoader(
            SeededDataset(data, seed), batch_size=batch_size, sampler=rows, num_workers=workers, drop_last=True,
            pin_memory=pin_memory, persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None,
            worker_init_fn=init_loader_worker if workers > 0 else None,
            # its own generator: creating an iterator must not draw from the global RNG,
            # or a resumed run (which creates one more) would drift from an unbroken one
            generator=torch.Generator().manual_seed(seed))
        _OPEN.add(self)

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator:
        """An iterator over the batches of `epoch` from `start_batch` on (the sampler is read in
        this process when the iterator starts, so the position holds with persistent workers)."""
        if self.loader is None:
            raise RuntimeError("this loader was closed")
        self.rows.set_position(epoch, start_batch)
        return iter(self.loader)

    def close(self) -> None:
        """End the worker processes now (at exit, every loader not closed is). Not left to garbage
        collection: an iterator can outlive the run (a traceback that holds it, kept by the caller),
        and at exit multiprocessing stops workers with SIGTERM, which they ignore, then waits for
        them for ever."""
        it = getattr(self.loader, "_iterator", None)
        if it is not None and hasattr(it, "_shutdown_workers"):
            it._shutdown_workers()
        self.loader = None
