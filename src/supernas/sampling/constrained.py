"""FLOPs-constrained sampling: draw a target FLOPs bin from the prior, then an Arch inside it.

The Arch comes by rejection: candidates are drawn from a proposal in vectorised batches, scored
by the analytic cost model, and the first whose FLOPs round into the target bin is accepted.
With ``proposal='table'`` candidates come from the per-bin choice frequencies (AttentiveNAS,
section 4.2: about a dozen trials per Arch); with ``proposal='uniform'`` from the whole space
(naive rejection, kept to measure what the table saves).

Trials are counted as a one-at-a-time sampler would count them (the position of the accepted
candidate in the stream), so the batching changes the speed, not the statistic.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import SupernasError
from ..spaces import Arch, CostModel, SearchSpace, as_generator
from .base import check_state, rng_state, set_rng_state
from .flops_tables import FlopsPrior, ProposalTable, estimate_flops_tables

PROPOSALS = ("table", "uniform")


@dataclass
class SamplerStats:
    """Accepted Archs and the trials they took, overall and per target bin."""

    accepted: int = 0
    trials: int = 0
    per_bin: dict[int, list[int]] = field(default_factory=dict)  # bin -> [accepted, trials]

    @property
    def mean_trials(self) -> float:
        """Mean candidates drawn per accepted Arch (nan before the first)."""
        return self.trials / self.accepted if self.accepted else float("nan")

    def add(self, b: int, accepted: int, trials: int) -> None:
        self.accepted += accepted
        self.trials += trials
        row = self.per_bin.setdefault(int(b), [0, 0])
        row[0] += accepted
        row[1] += trials

    def to_dict(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "trials": self.trials,
                "per_bin": {str(b): list(v) for b, v in self.per_bin.items()}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SamplerStats":
        return cls(int(d["accepted"]), int(d["trials"]), {int(b): list(v) for b, v in d["per_bin"].items()})


class FlopsConstrainedSampler:
    """Archs whose FLOPs follow the space's FLOPs prior, each drawn inside a target bin.

    Args:
        space, cost_model: the space and the analytic cost model that scores candidates.
        rng: the generator (or seed) for target bins and candidates; :meth:`state_dict` saves it.
        bin_width: MFLOPs per bin (the paper's 25).
        n_prior: random Archs behind the prior and proposal tables (the paper's 1,000,000).
        max_trials: candidates drawn for one Arch before giving up with a SupernasError.
        proposal: 'table' (the per-bin proposal) or 'uniform' (naive rejection).
        prior_seed: seed of the random Archs behind the tables, separate from ``rng`` so that the
            tables are the same for every run (and shareable through ``cache_dir``).
        pseudo_count: added to every choice count of the proposal (no choice gets probability 0).
        cache_dir: where to keep the tables as .npz (None: estimate them every time).
        tables: a (FlopsPrior, ProposalTable) pair to reuse instead of estimating one (then
            bin_width, n_prior, prior_seed, pseudo_count and cache_dir are not used).
        batch: candidates in the first batch of a rejection; later batches double, up to 8192.
    """

    kind = "flops"

    def __init__(self, space: SearchSpace, cost_model: CostModel, rng: "np.random.Generator | int | None" = None,
                 bin_width: float = 25.0, n_prior: int = 1_000_000, max_trials: int = 100_000,
                 proposal: str = "table", prior_seed: int = 0, pseudo_count: float = 0.1,
                 cache_dir: "str | Path | None" = None, tables: "tuple[FlopsPrior, ProposalTable] | None" = None,
                 batch: int = 64):
        if proposal not in PROPOSALS:
            raise SupernasError(f"proposal must be one of {', '.join(PROPOSALS)}, got {proposal!r}")
        for name, v in (("max_trials", max_trials), ("batch", batch)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise SupernasError(f"{name} must be a positive integer, got {v!r}")
        self.space, self.cost_model = space, cost_model
        self.rng = as_generator(rng)
        self.proposal, self.max_trials, self.batch = proposal, int(max_trials), int(batch)
        if tables is None:
            tables = estimate_flops_tables(space, cost_model, n_prior, prior_seed, bin_width, pseudo_count,
                                           cache_dir=cache_dir)
        self.prior, self.table = tables
        # identifies the tables in checkpoints: another pool would draw another sequence
        self._tables_digest = hashlib.sha1(self.prior.counts.tobytes() + self.table.counts.tobytes()).hexdigest()[:12]
        self.stats = SamplerStats()

    @property
    def bin_width(self) -> float:
        return self.prior.bin_width

    # ------------------------------------------------------------------ drawing
    def sample_target(self) -> int:
        """A target bin drawn from the FLOPs prior."""
        return self.prior.sample_target(self.rng)

    def sample(self, target_bin: int | None = None) -> Arch:
        """One Arch: in ``target_bin`` if given, else in a bin drawn from the prior."""
        b = self.sample_target() if target_bin is None else target_bin
        return self.sample_at(b, 1)[0]

    def sample_at(self, target_bin: int, n: int = 1) -> list[Arch]:
        """n Archs all inside one bin (the candidates of an attentive step)."""
        return self.space.from_indices(self.sample_indices_at(target_bin, n)[0])

    def sample_indices_at(self, target_bin: int, n: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """(n, D) index matrix and MFLOPs of n Archs accepted in ``target_bin``."""
        b = self.prior.check_bin(target_bin)
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise SupernasError(f"the number of Archs to draw must be a positive integer, got {n!r}")
        kept_idx, kept_mf, got, drawn, size = [], [], 0, 0, self.batch
        limit = self.max_trials * n
        while got < n:
            m = min(size, limit - drawn)
            if m <= 0:
                lo, hi = self.prior.range(b)
                raise SupernasError(
                    f"only {got} of {n} Archs found in bin {b} ({lo:g}-{hi:g} MFLOPs, prior "
                    f"{self.prior.prob(b):.2e}) after {drawn} trials; raise max_trials (now {self.max_trials}) "
                    "or target a bin with more prior mass")
            idx = self._propose(b, m)
            mf = self.cost_model.mflops_indices(idx)
            hits = np.flatnonzero(self.prior.bin_of(mf) == b)[: n - got]
            kept_idx.append(idx[hits])
            kept_mf.append(mf[hits])
            got += len(hits)
            # trials as a one-at-a-time sampler counts them: up to the last accepted candidate
            trials = drawn + (int(hits[-1]) + 1 if got == n else m)
            drawn += m
            size = min(2 * size, 8192)
        self.stats.add(b, n, trials)
        return np.concatenate(kept_idx), np.concatenate(kept_mf)

    def _propose(self, b: int, m: int) -> np.ndarray:
        if self.proposal == "uniform":
            return self.space.sample_indices(self.rng, m)
        return self.space.canonicalize_indices(self.table.sample_indices(self.rng, b, m))

    # ------------------------------------------------------------------ checkpoint
    def _config(self) -> dict[str, Any]:
        return {"space": self.space.name, "num_classes": self.cost_model.num_classes, "proposal": self.proposal,
                "bin_width": self.bin_width, "prior_n": self.prior.n, "tables": self._tables_digest}

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **self._config(), "rng": rng_state(self.rng), "stats": self.stats.to_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        state = check_state(state, self.kind)
        for k, v in self._config().items():
            if state.get(k) != v:
                raise SupernasError(f"the sampler state has {k}={state.get(k)!r} but this sampler has {k}={v!r}; "
                                    "build the sampler with the settings of the run being resumed (n_prior, "
                                    "prior_seed, bin_width, proposal, space, classes)")
        set_rng_state(self.rng, state["rng"])
        self.stats = SamplerStats.from_dict(state["stats"])


def sample_in_range(space: SearchSpace, cost: CostModel, rng: np.random.Generator, n: int, lo: float, hi: float,
                    max_trials: int = 2_000_000) -> np.ndarray:
    """n uniformly random Archs (as indices) with lo <= MFLOPs <= hi, by vectorised rejection."""
    smallest, largest = cost.mflops([space.smallest(), space.largest()])
    if lo > hi or hi < smallest or lo > largest:
        want = f"between {lo:g} and {hi:g}" if np.isfinite(lo) and np.isfinite(hi) else (
            f"at least {lo:g}" if np.isfinite(lo) else f"at most {hi:g}")
        raise SupernasError(f"no Arch of '{space.name}' costs {want} MFLOPs; its Archs cost "
                            f"{smallest:.1f} to {largest:.1f} MFLOPs: choose --min-mflops/--max-mflops in that range")
    if not (np.isfinite(lo) or np.isfinite(hi)):  # no range: every draw is kept, none is rejected
        max_trials = max(max_trials, n)
    found: list[np.ndarray]
    found, trials = [], 0
    while sum(len(f) for f in found) < n:
        if trials >= max_trials:
            raise SupernasError(f"only {sum(len(f) for f in found)} of {n} Archs found between {lo:g} and {hi:g} "
                                f"MFLOPs in {trials:,} random trials; widen the range")
        idx = space.sample_indices(rng, 20_000)
        m = cost.mflops_indices(idx)
        found.append(idx[(m >= lo) & (m <= hi)])
        trials += len(idx)
    return np.concatenate(found)[:n]


# ---------------------------------------------------------------------- within a budget (stage 2)
def fit_to_budget(space: SearchSpace, idx: np.ndarray, cost_of: "Any", budget: "float | np.ndarray",
                  rng: np.random.Generator, frozen: "np.ndarray | None" = None) -> tuple[np.ndarray, np.ndarray]:
    """Shrink rows over `budget` (one number, or one per row) until they fit: each round, every row
    still over it steps one random dimension that is above its smallest choice (and not `frozen`,
    an (N, D) or (D,) mask) one choice down. What comes out sits just under the budget's edge,
    wherever the row started.

    Returns (rows, fits): a copy of `idx` shrunk, and which rows now fit (a row whose unfrozen
    dimensions are all minimal and still costs too much cannot).
    """
    idx = space.canonicalize_indices(np.array(idx, dtype=np.int64, copy=True).reshape(-1, len(space.dims)))
    limit = np.broadcast_to(np.asarray(budget, dtype=np.float64), (len(idx),))
    frozen_m = np.zeros(idx.shape, dtype=bool) if frozen is None else np.broadcast_to(frozen, idx.shape)
    costs = np.asarray(cost_of(idx), dtype=np.float64) if len(idx) else np.zeros(0)
    fits = costs <= limit
    over = np.flatnonzero(~fits)
    while len(over):
        movable = (idx[over] > 0) & ~frozen_m[over]
        stuck = ~movable.any(axis=1)
        over, movable = over[~stuck], movable[~stuck]
        if not len(over):
            break
        col = np.argmax(rng.random(movable.shape) * movable, axis=1)  # a random movable column per row
        idx[over, col] -= 1
        idx[over] = space.canonicalize_indices(idx[over])  # a lower depth switches blocks off
        ok = np.asarray(cost_of(idx[over]), dtype=np.float64) <= limit[over]
        fits[over[ok]] = True
        over = over[~ok]
    return idx, fits


def sample_within_budget(space: SearchSpace, cost_model: CostModel, tables: "tuple[FlopsPrior, ProposalTable]",
                         rng: np.random.Generator, n: int, budget: float, cost_of: "Any" = None,
                         mflops_range: "tuple[float, float] | None" = None, spread: str = "uniform",
                         pin: "tuple[int, np.ndarray] | None" = None) -> np.ndarray:
    """Up to n Archs (index rows, maybe repeated) that fit `budget` of `cost_of` (default MFLOPs),
    from the FLOPs tables of section 4.2: a target bin among the prior's bins inside `mflops_range`
    (default: the smallest Arch to the budget) -- uniformly (`spread="uniform"`), so that the Archs
    spread over the budget's range instead of piling at its upper edge, or by the prior's weights
    (`spread="prior"`, the distribution of uniform draws under the budget) -- then a candidate from
    that bin's proposal. A candidate above its bin is shrunk into it (`fit_to_budget`) rather than
    rejected, so that a budget just above the smallest Arch, which uniform draws almost never meet,
    gets Archs too. `pin=(column, values)` sets that column of row i to values[i % len(values)]
    (kept while shrinking; its bins start at that choice's smallest Arch): one niche per value.
    """
    if spread not in ("uniform", "prior"):
        raise SupernasError(f"spread must be 'uniform' or 'prior', got {spread!r}")
    prior, table = tables
    mflops_of = cost_model.mflops_indices
    cost_of = cost_of or mflops_of
    if mflops_range is None:
        mflops_range = (float(mflops_of(space.to_indices(space.smallest()))[0]), budget)
    d = len(space.dims)
    frozen, values, floors = None, np.zeros(n, np.int64), np.full(n, mflops_range[0])
    if pin is not None:
        col, choices = pin
        values = np.resize(np.asarray(choices, dtype=np.int64), n)
        base = np.zeros((len(space.dims[col]), d), dtype=np.int64)
        base[:, col] = np.arange(len(base))
        floors = np.maximum(floors, mflops_of(space.canonicalize_indices(base))[values])
        frozen = np.zeros(d, dtype=bool)
        frozen[col] = True
    hi_b = int(prior.bin_of(mflops_range[1]))
    bins = prior.bins
    rows, targets = np.empty((n, d), dtype=np.int64), np.empty(n, dtype=np.int64)
    for lo in np.unique(floors):  # rows of one niche share their target bins
        at = np.flatnonzero(floors == lo)
        inside = bins[(bins >= int(prior.bin_of(lo))) & (bins <= hi_b)]
        if not len(inside):  # a range no pooled Arch fell into: the nearest reachable bin, then shrink
            inside = bins[[int(np.argmin(np.abs(bins - hi_b)))]]
        w = np.ones(len(inside)) if spread == "uniform" else prior.counts[inside - prior.lo].astype(np.float64)
        targets[at] = inside[rng.choice(len(inside), size=len(at), p=w / w.sum())]
    for b in np.unique(targets):
        at = np.flatnonzero(targets == b)
        rows[at] = table.sample_indices(rng, int(b), len(at))
    if pin is not None:
        rows[:, pin[0]] = values
    rows = space.canonicalize_indices(rows)
    # into the target bin (its upper edge, never below the row's smallest Arch), then within the budget
    top = np.maximum((targets + 0.5) * prior.bin_width, floors)
    rows, _ = fit_to_budget(space, rows, mflops_of, top, rng, frozen)
    rows, fits = fit_to_budget(space, rows, cost_of, budget, rng, frozen)
    return rows[fits]
