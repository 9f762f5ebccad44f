"""Seeded, stratified carving of a split into a held-out part and the rest."""
from __future__ import annotations

from typing import Union

import numpy as np

from ..errors import SupernasError

# Each carving draws from its own stream, so e.g. changing search_size leaves the val carve as it is.
VAL, SEARCH, TRAIN_SUBSET, VAL_SUBSET = 1, 2, 3, 4


def count_of(size: Union[int, float], total: int, name: str) -> int:
    """An int count as it is, a fraction of `total` rounded; at least one, and some of `total` left over."""
    count = int(round(size * total)) if isinstance(size, float) else int(size)
    if count < 1:
        raise SupernasError(f"data {name} ({size}) gives no images out of {total}; give a larger count or fraction")
    if count >= total:
        raise SupernasError(f"data {name} ({size}) leaves no training images out of {total}; "
                            f"give fewer than {total} images or a fraction below 1")
    return count


def stratified(labels: np.ndarray, count: int, stream: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(`count` positions drawn class by class in proportion to the class sizes, the other positions),
    both sorted; the same `labels`, `count`, `stream` and `seed` give the same split."""
    labels = np.asarray(labels)
    total = len(labels)
    count = min(max(count, 0), total)
    rng = np.random.default_rng([stream, seed])
    order = np.argsort(labels, kind="stable")
    _, sizes = np.unique(labels, return_counts=True)
    # Largest remainder: floor the proportional quotas, then give the leftover to the largest fractions
    # (ties broken at random, so a subset smaller than the class count doesn't always favour class 0).
    quota = count * sizes / max(total, 1)
    take = np.floor(quota).astype(np.int64)
    short = count - int(take.sum())
    take[np.lexsort((rng.random(len(sizes)), take - quota))[:short]] += 1
    parts: list[np.ndarray] = []
    for start, size, k in zip(np.cumsum(sizes) - sizes, sizes, take):
        if k:
            parts.append(order[start + rng.permutation(size)[:k]])
    held = np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)
    mask = np.ones(total, dtype=bool)
    mask[held] = False
    return held.astype(np.int64), np.flatnonzero(mask).astype(np.int64)
