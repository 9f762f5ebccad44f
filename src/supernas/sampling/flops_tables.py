"""The two tables of FLOPs-constrained sampling (AttentiveNAS, section 4.2), estimated offline.

Both come from one pool of uniformly random Archs scored by the analytic cost model:

* :class:`FlopsPrior` -- p(bin), the share of the pool in each FLOPs bin;
* :class:`ProposalTable` -- per bin and per dimension, how often each choice occurs among the
  pool's Archs of that bin: the factorised proposal q(arch | bin) = prod_d q(choice_d | bin).

Bins follow the paper (and its reference code): MFLOPs rounded to the nearest multiple of the
bin width, so bin ``b`` holds Archs with MFLOPs in [(b - 0.5) w, (b + 0.5) w), centred on b * w.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SupernasError
from ..spaces import CostModel, SearchSpace

_CACHE_VERSION = 1  # bump when the meaning of the cached arrays changes


def bin_of(mflops: "np.ndarray | float", bin_width: float) -> np.ndarray:
    """Bin ids of MFLOPs: round half up to the nearest multiple of the bin width."""
    return np.floor(np.asarray(mflops, dtype=np.float64) / bin_width + 0.5).astype(np.int64)


def _check_width(bin_width: float) -> float:
    if not (isinstance(bin_width, (int, float)) and np.isfinite(bin_width) and bin_width > 0):
        raise SupernasError(f"bin_width must be a positive number of MFLOPs (the paper uses 25), got {bin_width!r}")
    return float(bin_width)


@dataclass(frozen=True, eq=False)
class FlopsPrior:
    """Histogram of MFLOPs over uniformly random Archs: bins ``lo .. lo + len(counts) - 1``."""

    bin_width: float
    lo: int
    counts: np.ndarray  # (B,) int64, zeros allowed between the extremes

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    @property
    def bins(self) -> np.ndarray:
        """Ids of the bins holding at least one Arch of the pool (the reachable targets)."""
        return self.lo + np.flatnonzero(self.counts)

    @property
    def probs(self) -> np.ndarray:
        """p(bin) for every bin in ``lo ..``; sums to 1."""
        return self.counts / self.counts.sum()

    def prob(self, b: int) -> float:
        i = int(b) - self.lo
        return float(self.counts[i] / self.counts.sum()) if 0 <= i < len(self.counts) else 0.0

    def centre(self, b: "int | np.ndarray") -> "float | np.ndarray":
        """The MFLOPs a bin is centred on."""
        return np.asarray(b) * self.bin_width if isinstance(b, np.ndarray) else float(b) * self.bin_width

    def range(self, b: int) -> tuple[float, float]:
        """[low, high) MFLOPs of bin b."""
        return ((b - 0.5) * self.bin_width, (b + 0.5) * self.bin_width)

    def bin_of(self, mflops: "np.ndarray | float") -> np.ndarray:
        return bin_of(mflops, self.bin_width)

    def check_bin(self, b: Any) -> int:
        """b as an int, or a SupernasError when no Arch of the pool fell into it."""
        if isinstance(b, bool) or not isinstance(b, (int, np.integer)):
            raise SupernasError(f"a target bin is an integer bin id (MFLOPs / {self.bin_width:g}, rounded), "
                                f"got {b!r}; use prior.bin_of(mflops) to find it")
        b = int(b)
        if self.prob(b) == 0.0:
            lo, hi = self.bins.min(), self.bins.max()
            raise SupernasError(
                f"bin {b} ({self.range(b)[0]:g}-{self.range(b)[1]:g} MFLOPs) is unreachable: none of the "
                f"{self.n} random Archs fell into it; reachable bins lie in {lo}..{hi} "
                f"({self.range(lo)[0]:g}-{self.range(hi)[1]:g} MFLOPs), see prior.bins")
        return b

    def sample_target(self, rng: np.random.Generator) -> int:
        """A bin drawn from p(bin) (inverse CDF: one uniform number per draw)."""
        cdf = np.cumsum(self.counts)
        i = int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
        return self.lo + min(i, len(cdf) - 1)


@dataclass(frozen=True, eq=False)
class ProposalTable:
    """q(choice of dimension d | bin): per-bin choice frequencies, smoothed by a pseudo-count.

    Choices of blocks that elastic depth switches off are not counted (in the pool they are reset
    to the first choice, which would bias the deep blocks of every bin towards it); a dimension
    never active in a bin falls back to uniform through the pseudo-count.
    """

    lo: int
    counts: np.ndarray  # (B, D, K) float64: times choice k of dimension d was seen active in bin lo+i
    cardinalities: np.ndarray  # (D,)
    pseudo_count: float = 0.1

    def __post_init__(self) -> None:
        if not (np.isfinite(self.pseudo_count) and self.pseudo_count > 0):
            raise SupernasError(f"pseudo_count must be > 0 so that no choice has zero probability, "
                                f"got {self.pseudo_count!r}")
        valid = np.arange(self.counts.shape[2])[None, :] < self.cardinalities[:, None]  # (D, K)
        smoothed = (self.counts + self.pseudo_count) * valid
        probs = smoothed / smoothed.sum(axis=2, keepdims=True)
        cdf = np.cumsum(probs, axis=2)
        cdf[:, ~valid] = 2.0  # past the last choice: never below a uniform number
        cdf[:, np.arange(len(self.cardinalities)), self.cardinalities - 1] = 2.0  # no float leak past it
        self._probs: np.ndarray  # (B, D, K), set through object (the dataclass is frozen); not fields
        self._cdf: np.ndarray  # (B, D, K)
        object.__setattr__(self, "_probs", probs)
        object.__setattr__(self, "_cdf", cdf)

    def probs(self, b: int) -> np.ndarray:
        """(D, K) choice probabilities in bin b (zero beyond each dimension's choices)."""
        return self._probs[self._row(b)]

    def _row(self, b: int) -> int:
        i = int(b) - self.lo
        if not 0 <= i < len(self.counts):
            last = self.lo + len(self.counts) - 1
            raise SupernasError(f"bin {b} lies outside the proposal table's bins {self.lo}..{last}")
        return i

    def sample_indices(self, rng: np.random.Generator, b: int, n: int) -> np.ndarray:
        """(n, D) choice indices drawn from q(. | b), one uniform number per entry."""
        u = rng.random((n, self.counts.shape[1]))
        return (u[:, :, None] >= self._cdf[self._row(b)][None]).sum(axis=2).astype(np.int64)


def _activity(space: SearchSpace):
    """For each per-block column under elastic depth: (column, depth column, block position)."""
    names = set(space.names)
    out = []
    for j, name in enumerate(space.names):
        parts = name.split(".")
        if len(parts) == 3 and parts[1].isdigit() and f"{parts[0]}.depth" in names:
            out.append((j, space.column(f"{parts[0]}.depth"), int(parts[1])))
    return out


def _active_mask(space: SearchSpace, idx: np.ndarray, rules) -> np.ndarray:
    active = np.ones(idx.shape, dtype=bool)
    for col, dcol, pos in rules:
        depth = np.asarray(space.dims[dcol].choices)[idx[:, dcol]]
        active[:, col] = depth > pos
    return active


def _grow(arr: np.ndarray, lo: int, new_lo: int, new_hi: int) -> np.ndarray:
    """arr indexed from bin lo, padded with zeros to cover new_lo..new_hi (inclusive)."""
    hi = lo + len(arr) - 1
    before, after = max(0, lo - new_lo), max(0, new_hi - hi)
    return np.pad(arr, [(before, after)] + [(0, 0)] * (arr.ndim - 1)) if before or after else arr


def _fingerprint(space: SearchSpace, num_classes: int) -> str:
    return hashlib.sha1(f"v{_CACHE_VERSION}|{space.spec!r}|{num_classes}".encode()).hexdigest()[:16]


def cache_path(cache_dir: "str | Path", space: SearchSpace, num_classes: int, n: int, seed: int,
               bin_width: float) -> Path:
    return Path(cache_dir) / f"flops_{space.name}_{num_classes}c_{n}n_seed{seed}_w{bin_width:g}.npz"


def estimate_flops_tables(space: SearchSpace, cost_model: CostModel, n: int = 1_000_000, seed: int = 0,
                          bin_width: float = 25.0, pseudo_count: float = 0.1, chunk: int = 100_000,
                          cache_dir: "str | Path | None" = None) -> tuple[FlopsPrior, ProposalTable]:
    """Score n uniformly random Archs (in chunks, to bound memory) and tabulate prior and proposal.

    With ``cache_dir`` the raw counts are kept in an .npz named by space, classes, n, seed and bin
    width; a file whose space definition differs (same name, edited space) is recomputed.
    """
    bin_width = _check_width(bin_width)
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise SupernasError(f"n_prior must be a positive number of random Archs (the paper uses 1,000,000), got {n!r}")
    if cost_model.space is not space and cost_model.space.spec != space.spec:
        raise SupernasError(f"the cost model is for space '{cost_model.space.name}' but the sampler's space is "
                            f"'{space.name}'; build CostModel(space, num_classes) for the same space")
    key = _fingerprint(space, cost_model.num_classes)
    path = cache_path(cache_dir, space, cost_model.num_classes, n, seed, bin_width) if cache_dir else None
    if path is not None and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z["fingerprint"]) == key:
                    return (FlopsPrior(bin_width, int(z["lo"]), z["prior"]),
                            ProposalTable(int(z["lo"]), z["proposal"], space.cardinalities, pseudo_count))
        except (OSError, KeyError, ValueError):
            pass  # unreadable or foreign file: estimate afresh and overwrite it

    rng = np.random.default_rng(seed)
    D, K = len(space.dims), int(space.cardinalities.max())
    rules = _activity(space)
    lo, prior, prop = None, np.zeros(0, np.int64), np.zeros((0, D, K))
    for start in range(0, n, chunk):
        idx = space.sample_indices(rng, min(chunk, n - start))
        b = bin_of(cost_model.mflops_indices(idx), bin_width)
        new_lo, new_hi = int(b.min()), int(b.max())
        if lo is None:
            lo = new_lo
        prior, prop = _grow(prior, lo, new_lo, new_hi), _grow(prop, lo, new_lo, new_hi)
        lo = min(lo, new_lo)
        B = len(prior)
        prior += np.bincount(b - lo, minlength=B)
        keys = ((b - lo)[:, None] * D + np.arange(D)[None]) * K + idx
        prop += np.bincount(keys[_active_mask(space, idx, rules)], minlength=B * D * K).reshape(B, D, K)
    assert lo is not None  # n >= 1: the loop ran at least once
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{time.monotonic_ns()}.tmp.npz")  # write then rename: no torn cache
        np.savez(tmp, fingerprint=key, lo=lo, prior=prior, proposal=prop)
        tmp.replace(path)
    return FlopsPrior(bin_width, lo, prior), ProposalTable(lo, prop, space.cardinalities, pseudo_count)
