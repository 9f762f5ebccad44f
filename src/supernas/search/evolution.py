"""Evolutionary search under FLOPs (or latency) budgets (AttentiveNAS section 4.5 / Appendix C).

Per budget: a population sampled within the budget (plus the Archs already scored for earlier
budgets that fit it, at no cost), then `generations` rounds of `mutations`
mutated and `crossovers` crossed-over children of the best `parents` members (children redrawn
until within budget), keeping the best `population` distinct Archs. Work is on (N, D) index
matrices; scores are cached across budgets so no Arch is scored twice. The constrained cost is a
function of index rows: MFLOPs of the CostModel by default, or e.g. measured latency
(`constraint=("latency_ms", table.latency_indices)`, see `latency.py`).

Parents: the reference keeps a population of 512 and breeds from it; we breed from its top
quarter by default (`parents=population // 4`), the usual truncation selection, which
converges faster for the same number of scored Archs. Set `parents=population` for the reference.

So that a tight budget does not trap the search (issue 22, `operators.py`), by default:
`init="spread"` draws the initial population with the FLOPs tables of the constrained sampler,
target bins spread uniformly over the budget's range (candidates over the budget shrunk to fit);
`niche="auto"` keeps, in the population and among the parents, the best `niche_share` of them
spread over every resolution the budget allows; `edge` of the mutations grow one dimension and
shrink others to stay within the budget; `fresh` of each generation's children are drawn afresh
near the budget. The search scores as many Archs as before. `init="uniform", niche="none",
edge=0, fresh=0` is the search before them, draw for draw (`LEGACY`).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence, cast

import numpy as np

from ..errors import SupernasError, require_int
from ..spaces import CostModel, SearchSpace
from .operators import BudgetDraws, edge_moves, feasible_values, niche_column, niche_keep
from .pareto import ParetoEntry
from .stepwise import Callback, CostFn, ScoreFn, SearchResult, StepwiseSearch, budget_constraint, check_fraction

_MAX_ROUNDS = 100  # redraw rounds for children before settling for fewer (tight budgets)
STATE_VERSION = 1
# settings that states saved before they existed had
_SAVED_DEFAULTS = {"constraint": "mflops", "init": "uniform", "niche": "none", "niche_share": 0.0, "edge": 0.0,
                   "fresh": 0.0}
INITS = ("spread", "uniform")
# the evolution before issue 22, draw for draw: uniform draws rejected against the budget, no niches,
# no edge moves, no fresh draws
LEGACY = {"init": "uniform", "niche": "none", "edge": 0.0, "fresh": 0.0}



class EvolutionSearch(StepwiseSearch):
    """Budgeted evolutionary search; `run()` or repeated `step()`, resumable via `state_dict()`.

    `constraint` = (name, cost of index rows) is what the budgets bound: a cost field of
    ParetoEntry ("mflops" or "latency_ms"); default the MFLOPs of `cost`.

    `init`, `niche`, `niche_share`, `edge` and `fresh` are described in the module's docstring;
    `seed_rows` (index rows) join every budget's initial population where they fit (the guided
    search starts its inner searches from the Archs it scored); `score_rows`, scores of (N, D) index
    rows, replaces `score_fn` where building Archs would cost more than scoring them (a surrogate)."""

    def __init__(self, space: SearchSpace, cost: CostModel, score_fn: ScoreFn, budgets: Sequence[float],
                 population: int = 512, mutations: int = 128, crossovers: int = 128, generations: int = 20,
                 mutate_prob: float = 0.1, seed: int = 0, state: Mapping[str, Any] | None = None,
                 parents: int | None = None, crossover_prob: float = 0.5,
                 constraint: tuple[str, CostFn] | None = None, init: str = "spread", niche: str = "auto",
                 niche_share: float = 0.25, edge: float = 0.5, fresh: float = 0.125,
                 seed_rows: np.ndarray | None = None, score_rows: Callable[[np.ndarray], np.ndarray] | None = None):
        for name, v, low in (("population", population, 1), ("mutations", mutations, 0),
                             ("crossovers", crossovers, 0), ("generations", generations, 0)):
            require_int(name, v, low)
        if not 0 <= mutate_prob <= 1 or not 0 <= crossover_prob <= 1:
            raise SupernasError(f"mutate_prob and crossover_prob must lie in [0, 1], "
                                f"got {mutate_prob}, {crossover_prob}")
        check_fraction("niche_share", niche_share)
        check_fraction("edge", edge)
        check_fraction("fresh", fresh)
        if init not in INITS:
            raise SupernasError(f"init must be one of {', '.join(INITS)} (uniform: the search before issue 22), "
                                f"got {init!r}")
        self.init, self.edge, self.fresh = init, float(edge), float(fresh)
        self._niche_col = niche_column(space, niche)
        self.niche = "none" if self._niche_col is None else space.names[self._niche_col]
        self.niche_share = float(niche_share) if self._niche_col is not None else 0.0
        self._seed_rows = None if seed_rows is None else np.asarray(seed_rows, dtype=np.int64).reshape(
            -1, len(space.dims))
        self._feasible: dict[float, np.ndarray] = {}
        self.constraint, self._cost_of, self.budgets = budget_constraint(space, cost, budgets, constraint)
        self.space, self.cost, self.score_fn, self._score_rows = space, cost, score_fn, score_rows
        self._draws = BudgetDraws(space, cost, self._cost_of, self.constraint == "mflops")
        self.population, self.mutations, self.crossovers = population, mutations, crossovers
        self.generations = generations
        self.parents = max(1, population // 4) if parents is None else int(parents)
        if not 1 <= self.parents <= population:
            raise SupernasError(f"parents must lie in [1, population={population}], got {parents}")
        self.mutate_prob, self.crossover_prob, self.seed = float(mutate_prob), float(crossover_prob), seed
        self._rng = np.random.default_rng(seed)
        self._cache: dict[bytes, int] = {}  # row bytes -> position in _rows/_accs
        self._rows: list[np.ndarray] = []
        self._accs: list[float] = []
        self._pops: dict[int, np.ndarray] = {}  # budget index -> population rows, best first
        self._bi, self._gen = 0, -1  # next work: budget index, generation (-1: initial population)
        if state is not None:
            self.load_state_dict(state)

    # ------------------------------------------------------------------ scoring
    def _score(self, rows: np.ndarray) -> np.ndarray:
        keys = [r.tobytes() for r in rows]
        new, seen = [], set()
        for k, r in zip(keys, rows):
            if k not in self._cache and k not in seen:
                seen.add(k)
                new.append(r)
        if new:
            if self._score_rows is not None:
                accs = np.asarray(self._score_rows(np.stack(new)), dtype=np.float64).reshape(-1)
            else:
                accs = self._scored(np.stack(new))
            for r, a in zip(new, accs):
                self._cache[r.tobytes()] = len(self._rows)
                self._rows.append(r.copy())
                self._accs.append(float(a))
        return np.array([self._accs[self._cache[k]] for k in keys], dtype=np.float64)

    def _within(self, rows: np.ndarray, budget: float) -> np.ndarray:
        return rows[self._cost_of(rows) <= budget]

    # ------------------------------------------------------------------ operators
    def _niches(self, budget: float) -> np.ndarray | None:
        """The niche column's choices that fit `budget` (None without niches)."""
        if self._niche_col is None:
            return None
        if budget not in self._feasible:
            self._feasible[budget] = feasible_values(self.space, self._cost_of, budget, self._niche_col)
        return self._feasible[budget]

    def _spread(self, budget: float, n: int, near_edge: bool) -> np.ndarray:
        """About n distinct Archs within `budget` from the constrained sampler, target bins spread
        over the budget's range (or its top three bins, `near_edge`), one niche after another."""
        niches = self._niches(budget)
        # niches are None exactly when there is no niche column
        pin = None if niches is None else (cast(int, self._niche_col), niches)
        return self._draws.draw(budget, n, self._rng, near_edge, pin)

    def _initial(self, budget: float) -> np.ndarray:
        if self.init == "spread":
            fresh = self._spread(budget, self.population, near_edge=False)
        else:
            fresh = self._uniform_initial(budget)
        # Archs scored for earlier budgets that fit this one compete too: free, and the best per
        # budget can then only grow with the budget.
        scored = self._within(np.stack(self._rows), budget) if self._rows else fresh[:0]
        seeds = self._within(self._seed_rows, budget) if self._seed_rows is not None else fresh[:0]
        return np.concatenate([scored, seeds, fresh])

    def _uniform_initial(self, budget: float) -> np.ndarray:
        """The reference's initial population: uniform draws rejected against the budget."""
        found: dict[bytes, np.ndarray] = {}
        batch = max(4 * self.population, 4096)
        for _ in range(_MAX_ROUNDS):
            for r in self._within(self.space.sample_indices(self._rng, batch), budget):
                found.setdefault(r.tobytes(), r)
            if len(found) >= self.population:
                break
        if not found:  # a budget just above the smallest Arch: start from it and let mutation explore
            r = self.space.to_indices(self.space.smallest())[0]
            found[r.tobytes()] = r
        return np.stack(list(found.values())[: self.population])

    def _children(self, parents: np.ndarray, n: int, budget: float, crossover: bool) -> np.ndarray:
        out, have = [], 0
        for _ in range(_MAX_ROUNDS):
            if have >= n:
                break
            m = 2 * (n - have)
            a = parents[self._rng.integers(len(parents), size=m)]
            if crossover:
                b = parents[self._rng.integers(len(parents), size=m)]
                child = self.space.crossover_indices(a, b, self._rng, self.crossover_prob)
            else:
                child = self.space.mutate_indices(a, self._rng, self.mutate_prob)
            child = self._within(child, budget)[: n - have]
            out.append(child)
            have += len(child)
        return np.concatenate(out) if out else np.empty((0, len(self.space.dims)), np.int64)

    def _select(self, rows: np.ndarray) -> np.ndarray:
        """The next population, best first: the best `population` distinct rows, or with niches
        each niche's best share of them first."""
        uniq: dict[bytes, np.ndarray] = {}
        for r in rows:
            uniq.setdefault(r.tobytes(), r)
        rows = np.stack(list(uniq.values()))
        acc = np.nan_to_num(self._score(rows), nan=-np.inf)
        order = np.argsort(-acc, kind="stable")  # ties: earlier (older) first
        if self._niche_col is None:
            return rows[order[: self.population]]
        ranked = rows[order]
        return ranked[niche_keep(ranked[:, self._niche_col], len(ranked), self._quota(self.population),
                                 self.population)]

    def _quota(self, total: int) -> int:
        """Members of `total` each niche keeps at least (its best), from `niche_share`."""
        values = len(self.space.dims[self._niche_col]) if self._niche_col is not None else 1
        return int(self.niche_share * total // values) if self.niche_share else 0

    def _parents(self, pop: np.ndarray) -> np.ndarray:
        """The top `parents` of the population, plus each niche's best share of that many (so that
        every resolution the budget allows keeps breeding)."""
        if self._niche_col is None or not self.niche_share:
            return pop[: self.parents]
        quota = max(1, self._quota(self.parents))
        keep = np.zeros(len(pop), dtype=bool)
        keep[: self.parents] = True
        for v in np.unique(pop[:, self._niche_col]):
            keep[np.flatnonzero(pop[:, self._niche_col] == v)[:quota]] = True
        return pop[keep]

    def _edge_children(self, parents: np.ndarray, n: int, budget: float) -> np.ndarray:
        out, have = [], 0
        for _ in range(_MAX_ROUNDS):
            if have >= n:
                break
            a = parents[self._rng.integers(len(parents), size=2 * (n - have))]
            child = edge_moves(self.space, a, self._cost_of, budget, self._rng, keep=self._niche_col)[: n - have]
            out.append(child)
            have += len(child)
        return np.concatenate(out) if out else np.empty((0, len(self.space.dims)), np.int64)

    def _counts(self) -> tuple[int, int, int, int]:
        """(plain mutations, edge moves, crossovers, fresh draws) of one generation: fresh draws
        replace children of both kinds in proportion, so a generation scores as many Archs as the
        reference's."""
        total = self.mutations + self.crossovers
        n_fresh = int(round(self.fresh * total))
        from_mut = int(round(n_fresh * self.mutations / total)) if total else 0
        mut, cross = self.mutations - from_mut, self.crossovers - (n_fresh - from_mut)
        n_edge = int(round(self.edge * mut))
        return mut - n_edge, n_edge, cross, n_fresh

    # ------------------------------------------------------------------ driving
    @property
    def done(self) -> bool:
        return self._bi >= len(self.budgets)

    def step(self, callback: Callback | None = None) -> bool:
        """One unit of work (an initial population or a generation); False once every budget is done."""
        if self.done:
            return False
        budget = self.budgets[self._bi]
        if self._gen < 0:
            self._pops[self._bi] = self._select(self._initial(budget))
        else:
            pop = self._pops[self._bi]
            par = self._parents(pop)
            n_mut, n_edge, n_cross, n_fresh = self._counts()
            kids = [self._children(par, n_mut, budget, False), self._children(par, n_cross, budget, True)]
            if n_edge:
                kids.append(self._edge_children(par, n_edge, budget))
            if n_fresh:
                kids.append(self._spread(budget, n_fresh, near_edge=True))
            self._pops[self._bi] = self._select(np.concatenate([pop, *kids]))
        gen = self._gen + 1
        if callback is not None:
            callback(gen, budget, self._entry(self._pops[self._bi][0]))
        # Generation 0 is the initial population; after `generations` more, the next budget.
        self._bi, self._gen = (self._bi + 1, -1) if gen >= self.generations else (self._bi, gen)
        return not self.done

    # ------------------------------------------------------------------ results
    def _entries(self, rows: np.ndarray) -> list[ParetoEntry]:
        mf, pa = self.cost.costs_indices(rows)
        # A constraint other than MFLOPs is a cost of its own, recorded beside them.
        other = {} if self.constraint == "mflops" else {self.constraint: self._cost_of(rows)}
        accs = [self._accs[self._cache[r.tobytes()]] for r in rows]
        # the keywords are cost fields of ParetoEntry (latency_ms), never its positional ones
        return [ParetoEntry(a, float(mf[i]), float(pa[i]), accs[i],
                            **cast("dict[str, Any]", {k: float(v[i]) for k, v in other.items()}))
                for i, a in enumerate(self.space.from_indices(rows))]

    def _entry(self, row: np.ndarray) -> ParetoEntry:
        return self._entries(row[None])[0]

    def population_rows(self, budget_index: int) -> np.ndarray:
        """The current population of a budget as (N, D) index rows, best first (empty before it starts)."""
        pop = self._pops.get(budget_index)
        return pop.copy() if pop is not None else np.empty((0, len(self.space.dims)), np.int64)

    def scored_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Every Arch scored so far as (N, D) index rows, and their scores, in scoring order."""
        if not self._rows:
            return np.empty((0, len(self.space.dims)), np.int64), np.empty(0)
        return np.stack(self._rows), np.asarray(self._accs, dtype=np.float64)

    def result(self) -> SearchResult:
        best = [self._entry(self._pops[i][0]) if i in self._pops else None for i in range(len(self.budgets))]
        evaluated = self._entries(np.stack(self._rows)) if self._rows else []
        return SearchResult(list(self.budgets), best, evaluated, self.constraint, scored=len(self._rows))

    # ------------------------------------------------------------------ state
    def _config(self) -> dict[str, Any]:
        return {"space": self.space.name, "budgets": self.budgets, "population": self.population,
                "mutations": self.mutations, "crossovers": self.crossovers, "generations": self.generations,
                "parents": self.parents, "mutate_prob": self.mutate_prob, "crossover_prob": self.crossover_prob,
                "seed": self.seed, "constraint": self.constraint, "init": self.init, "niche": self.niche,
                "niche_share": self.niche_share, "edge": self.edge, "fresh": self.fresh}

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state: settings, generator, position, populations and every score so far."""
        return {"version": STATE_VERSION, "config": self._config(), "rng": self._rng.bit_generator.state,
                "position": [self._bi, self._gen],
                "populations": {str(i): p.tolist() for i, p in self._pops.items()},
                "rows": [r.tolist() for r in self._rows], "accs": list(self._accs)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if not isinstance(state, Mapping) or state.get("version") != STATE_VERSION:
            raise SupernasError("not an evolution search state (or one from another supernas version); start afresh")
        self._check_same_settings(state["config"], _SAVED_DEFAULTS)
        d = len(self.space.dims)
        self._rng.bit_generator.state = state["rng"]
        self._bi, self._gen = (int(x) for x in state["position"])
        self._pops = {int(i): np.asarray(p, dtype=np.int64).reshape(-1, d) for i, p in state["populations"].items()}
        self._rows = [np.asarray(r, dtype=np.int64) for r in state["rows"]]
        self._accs = [float(a) for a in state["accs"]]
        self._cache = {r.tobytes(): i for i, r in enumerate(self._rows)}
