"""Search strategies for stage 2, chosen by name (`supernas search --strategy NAME`): each searches
every budget for the Archs `score_fn` rates best and returns a `SearchResult` (best Arch per budget,
every scored Arch, the Pareto front), resumable through `state_dict()`.

- `evolution` (the paper's): `EvolutionSearch`.
- `random`: the baseline every NAS method must beat: per budget, as many distinct random Archs
  within the budget as the evolution would score (population + generations x (mutations +
  crossovers)), the best of them kept.

A new strategy is a class with the same `run(callback, checkpoint)` / `state_dict()` (a
`StepwiseSearch` gets `run` from its `step()`) and a builder registered in STRATEGIES
(docs/architecture.md, "Extending").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..errors import SupernasError, require_int
from ..registry import Registry
from ..spaces import CostModel, SearchSpace
from .evolution import Callback, CostFn, EvolutionSearch, ScoreFn, SearchResult, StepwiseSearch, check_budgets
from .pareto import COSTS, ParetoEntry


@dataclass(frozen=True)
class SearchSettings:
    """How hard a strategy searches each budget; random search scores as many Archs as evolution."""

    population: int = 512
    mutations: int = 128
    crossovers: int = 128
    generations: int = 20
    seed: int = 0

    @property
    def archs_per_budget(self) -> int:
        return self.population + self.generations * (self.mutations + self.crossovers)


Builder = Callable[..., Any]
STRATEGIES: Registry[Builder] = Registry("search strategy")


@STRATEGIES.register("evolution")
def _evolution(space: SearchSpace, cost: CostModel, score_fn: ScoreFn, budgets: Sequence[float],
               settings: SearchSettings, constraint: tuple[str, CostFn] | None = None,
               state: Mapping[str, Any] | None = None) -> EvolutionSearch:
    return EvolutionSearch(space, cost, score_fn, budgets, population=settings.population,
                           mutations=settings.mutations, crossovers=settings.crossovers,
                           generations=settings.generations, seed=settings.seed, state=state, constraint=constraint)


@STRATEGIES.register("random")
def _random(space: SearchSpace, cost: CostModel, score_fn: ScoreFn, budgets: Sequence[float],
            settings: SearchSettings, constraint: tuple[str, CostFn] | None = None,
            state: Mapping[str, Any] | None = None) -> "RandomSearch":
    return RandomSearch(space, cost, score_fn, budgets, settings.archs_per_budget, settings.seed, constraint, state)


class RandomSearch(StepwiseSearch):
    """Random search under budgets: `per_budget` distinct random Archs within each budget, scored
    in chunks (each chunk a checkpoint), the best kept; no Arch is scored twice across budgets."""

    CHUNK = 256

    def __init__(self, space: SearchSpace, cost: CostModel, score_fn: ScoreFn, budgets: Sequence[float],
                 per_budget: int, seed: int = 0, constraint: tuple[str, CostFn] | None = None,
                 state: Mapping[str, Any] | None = None):
        require_int("per_budget", per_budget, 1)
        self.space, self.cost, self.score_fn = space, cost, score_fn
        self.constraint, self._cost_of = constraint or ("mflops", cost.mflops_indices)
        if self.constraint not in COSTS:
            raise SupernasError(f"unknown constraint '{self.constraint}'; choose one of {', '.join(COSTS)}")
        self.budgets = [float(b) for b in budgets]
        if not self.budgets:
            raise SupernasError(f"give at least one budget in {COSTS[self.constraint]}")
        check_budgets(space, self._cost_of, self.budgets, COSTS[self.constraint])
        self.per_budget, self.seed = per_budget, seed
        self._rng = np.random.default_rng(seed)
        self._scores: dict[bytes, float] = {}
        self._drawn: dict[int, list[bytes]] = {}  # budget index -> its Archs' rows (bytes), in draw order
        self._bi = 0
        if state is not None:
            self.load_state_dict(state)

    @property
    def done(self) -> bool:
        return self._bi >= len(self.budgets)

    def _draw(self, budget: float, n: int, have: set[bytes]) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        for _ in range(100):
            rows = self.space.sample_indices(self._rng, max(4 * n, 1024))
            for r in rows[self._cost_of(rows) <= budget]:
                k = r.tobytes()
                if k not in have:
                    have.add(k)
                    out.append(r)
                    if len(out) == n:
                        return out
        return out  # a budget that holds fewer distinct Archs: all that were found

    def step(self, callback: Callback | None = None) -> bool:
        """One chunk of the current budget; False once every budget is done."""
        if self.done:
            return False
        drawn = self._drawn.setdefault(self._bi, [])
        new = self._draw(self.budgets[self._bi], min(self.CHUNK, self.per_budget - len(drawn)), set(drawn))
        fresh = [r for r in new if r.tobytes() not in self._scores]
        if fresh:
            scores = np.asarray(self.score_fn(self.space.from_indices(np.stack(fresh))), dtype=np.float64).reshape(-1)
            self._scores.update({r.tobytes(): float(s) for r, s in zip(fresh, scores)})
        drawn += [r.tobytes() for r in new]
        if len(drawn) >= self.per_budget or not new:
            if callback is not None:
                callback(0, self.budgets[self._bi], self._best(self._bi))
            self._bi += 1
        return not self.done

    def _entries(self, keys: list[bytes]) -> list[ParetoEntry]:
        if not keys:
            return []
        rows = np.stack([np.frombuffer(k, dtype=np.int64) for k in keys])
        mf, pa = self.cost.costs_indices(rows)
        other = {} if self.constraint == "mflops" else {self.constraint: self._cost_of(rows)}
        return [ParetoEntry(a, float(mf[i]), float(pa[i]), self._scores[k], **{n: float(v[i]) for n, v in other.items()})
                for i, (a, k) in enumerate(zip(self.space.from_indices(rows), keys))]

    def _best(self, bi: int) -> ParetoEntry | None:
        keys = self._drawn.get(bi, [])
        if not keys:
            return None
        return self._entries([max(keys, key=lambda k: self._scores[k])])[0]

    def result(self) -> SearchResult:
        best = [self._best(i) if i < self._bi else None for i in range(len(self.budgets))]
        return SearchResult(list(self.budgets), best, self._entries(list(self._scores)), self.constraint)

    def state_dict(self) -> dict[str, Any]:
        return {"strategy": "random", "config": self._config(), "rng": self._rng.bit_generator.state,
                "budget": self._bi, "scores": [[np.frombuffer(k, dtype=np.int64).tolist(), s]
                                               for k, s in self._scores.items()],
                "drawn": {str(i): [np.frombuffer(k, dtype=np.int64).tolist() for k in ks]
                          for i, ks in self._drawn.items()}}

    def _config(self) -> dict[str, Any]:
        return {"space": self.space.name, "budgets": self.budgets, "per_budget": self.per_budget, "seed": self.seed,
                "constraint": self.constraint}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if not isinstance(state, Mapping) or state.get("strategy") != "random":
            raise SupernasError("the saved search state is not a random search's; resume with the same --strategy")
        for k, v in self._config().items():
            if state["config"].get(k) != v:
                raise SupernasError(f"the saved search has {k}={state['config'].get(k)!r} but this one {v!r}; resume "
                                    "with the same settings, or start a new search in another run directory")
        key = lambda row: np.asarray(row, dtype=np.int64).tobytes()  # noqa: E731
        self._rng.bit_generator.state = state["rng"]
        self._bi = int(state["budget"])
        self._scores = {key(r): float(s) for r, s in state["scores"]}
        self._drawn = {int(i): [key(r) for r in rows] for i, rows in state["drawn"].items()}
