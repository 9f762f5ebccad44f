"""What stage 2 adds to plain mutation and crossover so that a search does not get stuck at a tight
budget (issue 22): niches over a coarse dimension, moves along the budget's edge, and the FLOPs
tables of the constrained sampler shared by every search in a process.

Why: at a tight budget the best Archs often take a higher resolution with nearly every other
dimension minimal. A child of a 192 px parent changes about one dimension in ten, so it cannot reach
224 px without shrinking a dozen others at once; uniform draws under the budget almost never give
such an Arch either. An edge move grows one dimension and shrinks others until the child fits
again; niches keep every resolution the budget allows alive in the population.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import SupernasError
from ..sampling.constrained import fit_to_budget, sample_within_budget
from ..sampling.flops_tables import FlopsPrior, ProposalTable, estimate_flops_tables
from ..spaces import CostModel, SearchSpace

NICHE_OFF = ("none", "off")
TABLE_ARCHS = 200_000  # random Archs behind the search's FLOPs tables: enough for 25-MFLOPs bins, 0.2 s
_TABLES: dict[tuple[str, str, int], tuple[FlopsPrior, ProposalTable]] = {}


def search_tables(space: SearchSpace, cost: CostModel) -> tuple[FlopsPrior, ProposalTable]:
    """FLOPs prior and per-bin proposal of `space` (section 4.2), estimated once per process."""
    key = (space.name, repr(space.spec), cost.num_classes)
    if key not in _TABLES:
        _TABLES[key] = estimate_flops_tables(space, cost, TABLE_ARCHS, seed=0)
    return _TABLES[key]


def niche_column(space: SearchSpace, niche: Any) -> int | None:
    """The column whose choices get niches: 'auto' (the resolution when the space searches it,
    else none), 'none', or a dimension's name."""
    if not isinstance(niche, str):
        raise SupernasError(f"niche must be 'auto', 'none' or a dimension of space '{space.name}', got {niche!r}")
    if niche in NICHE_OFF:
        return None
    if niche == "auto":
        return space.column("resolution") if "resolution" in space.names else None
    if niche not in space.names:
        raise SupernasError(f"niche '{niche}' is not a dimension of space '{space.name}'; give 'auto', 'none' or "
                            f"one of {', '.join(space.names)}")
    return space.column(niche) if len(space.dims[space.column(niche)]) > 1 else None


def feasible_values(space: SearchSpace, cost_of: Any, budget: float, col: int) -> np.ndarray:
    """The choices of column `col` an Arch within `budget` can take (every other dimension minimal)."""
    rows = np.zeros((len(space.dims[col]), len(space.dims)), dtype=np.int64)
    rows[:, col] = np.arange(len(rows))
    rows = space.canonicalize_indices(rows)
    return np.flatnonzero(np.asarray(cost_of(rows)) <= budget)


def edge_moves(space: SearchSpace, parents: np.ndarray, cost_of: Any, budget: float, rng: np.random.Generator,
               keep: int | None = None) -> np.ndarray:
    """Children of `parents` (one per row) that grow one random dimension by one choice and shrink
    others until they fit the budget again; column `keep` (a niche) is shrunk only when grown.
    Rows that cannot grow, or cannot fit after growing, are dropped."""
    a = np.array(parents, dtype=np.int64, copy=True)
    growable = a < space.cardinalities - 1
    a = a[growable.any(axis=1)]
    growable = growable[growable.any(axis=1)]
    if not len(a):
        return a
    col = np.argmax(rng.random(growable.shape) * growable, axis=1)
    rows = np.arange(len(a))
    a[rows, col] += 1
    frozen = np.zeros(a.shape, dtype=bool)
    frozen[rows, col] = True
    if keep is not None:
        frozen[:, keep] = True
    a, fits = fit_to_budget(space, space.canonicalize_indices(a), cost_of, budget, rng, frozen)
    return a[fits]


def niche_keep(values: np.ndarray, ranked_len: int, quota: int, total: int) -> np.ndarray:
    """Positions (into rows ranked best first, whose niche values are `values`) of the `total`
    kept: each niche's best `quota` first, then the best of the rest; returned in rank order."""
    keep = np.zeros(ranked_len, dtype=bool)
    for v in np.unique(values):
        keep[np.flatnonzero(values == v)[:quota]] = True
    reserved = int(keep.sum())
    if reserved < total:
        rest = np.flatnonzero(~keep)[: total - reserved]
        keep[rest] = True
    pos = np.flatnonzero(keep)
    return pos[:total] if len(pos) > total else pos


class BudgetDraws:
    """Distinct Archs within a budget from the constrained sampler's tables (`sample_within_budget`),
    for a search's initial population, its fresh draws and random search; the generator is the
    caller's, so that the search's state holds it."""

    def __init__(self, space: SearchSpace, cost: CostModel, cost_of: Any, is_mflops: bool):
        self.space, self.cost, self.cost_of, self.is_mflops = space, cost, cost_of, is_mflops
        self.floor, self.top = (float(m) for m in cost.mflops_indices(space.to_indices(
            [space.smallest(), space.largest()])))
        self._ceilings: dict[float, float] = {}

    def mflops_range(self, budget: float, rng: np.random.Generator) -> tuple[float, float]:
        """MFLOPs from the smallest Arch to the most an Arch within `budget` costs: the budget itself
        for MFLOPs; for another cost, the most MFLOPs among Archs drawn over the whole range and
        shrunk to fit it."""
        if self.is_mflops:
            return self.floor, min(budget, self.top)
        if budget not in self._ceilings:
            pilot = sample_within_budget(self.space, self.cost, search_tables(self.space, self.cost), rng, 256,
                                         budget, self.cost_of, (self.floor, self.top))
            self._ceilings[budget] = float(self.cost.mflops_indices(pilot).max()) if len(pilot) else self.floor
        return self.floor, self._ceilings[budget]

    def draw(self, budget: float, n: int, rng: np.random.Generator, near_edge: bool = False,
             pin: "tuple[int, np.ndarray] | None" = None, spread: str = "uniform",
             exclude: "set[bytes] | None" = None) -> np.ndarray:
        """Up to n distinct rows within `budget` (none of `exclude`): target bins over the budget's
        MFLOPs range, or its top three bins (`near_edge`); fewer when the budget holds fewer."""
        lo, hi = self.mflops_range(budget, rng)
        tables = search_tables(self.space, self.cost)
        if near_edge:
            lo = max(lo, hi - 3 * tables[0].bin_width)
        found: dict[bytes, np.ndarray] = {}
        skip = exclude or set()
        for _ in range(8):  # a budget with few Archs (just above the smallest) yields fewer distinct ones
            for r in sample_within_budget(self.space, self.cost, tables, rng, 2 * (n - len(found)), budget,
                                          self.cost_of, (lo, hi), spread=spread, pin=pin):
                k = r.tobytes()
                if k not in skip:
                    found.setdefault(k, r)
            if len(found) >= n:
                break
        rows = list(found.values())[:n]
        return np.stack(rows) if rows else np.empty((0, len(self.space.dims)), np.int64)
