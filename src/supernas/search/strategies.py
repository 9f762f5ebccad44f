"""Search strategies for stage 2, chosen by name (`supernas search --strategy NAME`): each searches
every budget for the Archs `score_fn` rates best and returns a `SearchResult` (best Arch per budget,
every scored Arch, the Pareto front), resumable through `state_dict()`.

- `evolution` (the paper's): `EvolutionSearch`.
- `random`: the baseline every NAS method must beat: per budget, as many distinct random Archs
  within the budget as the evolution would score (population + generations x (mutations +
  crossovers)), drawn by the FLOPs-constrained sampler so that every budget the space can meet
  gets them, the best of them kept.
- `guided`: `GuidedSearch` (guided.py): a random forest fitted online on the Archs scored so far
  chooses which Archs the real `score_fn` sees; a twelfth of the evolution's Archs by default.

A new strategy is a class with the same `run(callback, checkpoint)` / `state_dict()` (a
`StepwiseSearch` gets `run` from its `step()`) and a builder registered in STRATEGIES
(docs/architecture.md, "Extending").
"""
from __future__ import annotations

import difflib
import typing
from dataclasses import dataclass, fields
from typing import Any, Callable, Literal, Mapping, Sequence, cast

import numpy as np

from ..config import parse_override
from ..errors import SupernasError, require_int
from ..registry import Registry
from ..spaces import CostModel, SearchSpace
from ..utils.settings import Section, rule, setting
from .evolution import EvolutionSearch
from .guided import GuidedSearch
from .operators import BudgetDraws
from .pareto import ParetoEntry
from .stepwise import Callback, CostFn, ScoreFn, SearchResult, StepwiseSearch, budget_constraint


@dataclass(frozen=True)
class SearchSettings(Section):
    """How hard a strategy searches each budget (random search scores as many Archs as evolution;
    guided search `calls` of them), and how the evolution breeds: the settings from `parents` on are
    what `supernas search` takes as search.KEY=VALUE (OPTIONS)."""

    prefix = "search."

    population: int = setting(512, "Archs kept per budget and generation", low=1)
    mutations: int = setting(128, "children by mutation per generation", low=0)
    crossovers: int = setting(128, "children by crossover per generation", low=0)
    generations: int = setting(20, "generations per budget", low=0)
    seed: int = setting(0, "seeds the draws, mutations and crossovers", low=0)
    parents: int | None = setting(None, "members of the population that breed (null: a quarter of it; the "
                                        "population itself: the reference code)", low=1)
    init: Literal["spread", "uniform"] = setting(
        "spread", "the initial population from the FLOPs-constrained sampler spread over the budget's range, or "
                  "uniform draws rejected against the budget (the search before issue 22)")
    niche: str = setting("auto", "the dimension whose every choice the budget allows keeps a share of the "
                                 "population: auto (the resolution), none or a dimension's name")
    niche_share: float = setting(0.25, "the share of the population (and of the parents) kept across niches",
                                 low=0, high=1)
    edge: float = setting(0.5, "the share of mutations that grow one dimension and shrink others to stay within "
                               "the budget", low=0, high=1)
    fresh: float = setting(0.125, "the share of each generation's children drawn afresh near the budget", low=0,
                           high=1)
    calls: int | None = setting(None, "guided search: Archs the real scorer scores per budget (null: a twelfth of "
                                      "what the evolution could score)", low=2)
    batch: int | None = setting(None, "guided search: Archs the real scorer scores per round (null: a sixteenth "
                                      "of calls)", low=1)

    def check(self) -> None:
        if not self.niche:
            raise SupernasError("search.niche is empty: auto, none or a dimension's name")

    @property
    def archs_per_budget(self) -> int:
        return self.population + self.generations * (self.mutations + self.crossovers)

    @property
    def guided_calls(self) -> int:
        """Archs the guided search's real scorer scores per budget."""
        return self.calls if self.calls is not None else max(2, self.archs_per_budget // 12)

    def evolution_options(self) -> dict[str, Any]:
        """How the evolution breeds, as EvolutionSearch keywords."""
        return {"init": self.init, "niche": self.niche, "niche_share": self.niche_share, "edge": self.edge,
                "fresh": self.fresh}

    def with_options(self, items: Sequence[str]) -> "SearchSettings":
        """These settings with `search.KEY=VALUE` items applied (KEY one of OPTIONS, the value read as
        a config override's); a malformed item, an unknown key or a bad value is refused in one line."""
        changes: dict[str, Any] = {}
        for item in items:
            key, sep, _ = str(item).partition("=")
            name = key[len("search."):] if key.startswith("search.") else None
            if not sep or not name:
                raise SupernasError(f"'{item}' is not a search setting; write search.KEY=VALUE with KEY one of "
                                    f"{', '.join(OPTIONS)}")
            if name not in OPTIONS:
                close = difflib.get_close_matches(name, list(OPTIONS), n=1)
                hint = f"did you mean search.{close[0]}? " if close else ""
                raise SupernasError(f"unknown search setting 'search.{name}'; {hint}the settings are "
                                    f"{', '.join('search.' + k for k in OPTIONS)}")
            changes[name] = parse_override(str(item))[1]
        return self.with_values(changes)  # the other settings are their flags', checked where they are used


# The settings `supernas search` takes as search.KEY=VALUE (the others have flags of their own:
# --population, --seed...): key -> what it allows and does.
OPTIONS = {f.name: f"{rule(typing.get_type_hints(SearchSettings)[f.name], f.metadata)}: {f.metadata['doc']}"
           for f in fields(SearchSettings)
           if f.name not in ("population", "mutations", "crossovers", "generations", "seed")}


Builder = Callable[..., Any]
STRATEGIES: Registry[Builder] = Registry("search strategy")


@STRATEGIES.register("evolution")
def _evolution(space: SearchSpace, cost: CostModel, score_fn: ScoreFn, budgets: Sequence[float],
               settings: SearchSettings, constraint: tuple[str, CostFn] | None = None,
               state: Mapping[str, Any] | None = None) -> EvolutionSearch:
    return EvolutionSearch(space, cost, score_fn, budgets, population=settings.population,
                           mutations=settings.mutations, crossovers=settings.crossovers,
                           generations=settings.generations, seed=settings.seed, state=state, constraint=constraint,
                           parents=settings.parents, **settings.evolution_options())


@STRATEGIES.register("random")
def _random(space: SearchSpace, cost: CostModel, score_fn: ScoreFn, budgets: Sequence[float],
            settings: SearchSettings, constraint: tuple[str, CostFn] | None = None,
            state: Mapping[str, Any] | None = None) -> "RandomSearch":
    return RandomSearch(space, cost, score_fn, budgets, settings.archs_per_budget, settings.seed, constraint, state)


@STRATEGIES.register("guided")
def _guided(space: SearchSpace, cost: CostModel, score_fn: ScoreFn, budgets: Sequence[float],
            settings: SearchSettings, constraint: tuple[str, CostFn] | None = None,
            state: Mapping[str, Any] | None = None) -> GuidedSearch:
    return GuidedSearch(space, cost, score_fn, budgets, settings.guided_calls, settings.batch,
                        population=settings.population, mutations=settings.mutations, crossovers=settings.crossovers,
                        generations=settings.generations, seed=settings.seed, constraint=constraint, state=state,
                        evolution=settings.evolution_options())


class RandomSearch(StepwiseSearch):
    """Random search under budgets: `per_budget` distinct random Archs within each budget, scored
    in chunks (each chunk a checkpoint), the best kept; no Arch is scored twice across budgets."""

    CHUNK = 256

    def __init__(self, space: SearchSpace, cost: CostModel, score_fn: ScoreFn, budgets: Sequence[float],
                 per_budget: int, seed: int = 0, constraint: tuple[str, CostFn] | None = None,
                 state: Mapping[str, Any] | None = None):
        require_int("per_budget", per_budget, 1)
        self.space, self.cost, self.score_fn = space, cost, score_fn
        self.constraint, self._cost_of, self.budgets = budget_constraint(space, cost, budgets, constraint)
        self._draws = BudgetDraws(space, cost, self._cost_of, self.constraint == "mflops")
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
        # The constrained sampler: a target bin from the FLOPs prior cut at the budget, a candidate
        # from its proposal, shrunk to fit when over. Uniform draws rejected against the budget
        # found nothing near the smallest Arch (issue 22); a budget that holds fewer distinct
        # Archs gives all that were found.
        return list(self._draws.draw(budget, n, self._rng, spread="prior", exclude=have))

    def step(self, callback: Callback | None = None) -> bool:
        """One chunk of the current budget; False once every budget is done."""
        if self.done:
            return False
        drawn = self._drawn.setdefault(self._bi, [])
        new = self._draw(self.budgets[self._bi], min(self.CHUNK, self.per_budget - len(drawn)), set(drawn))
        fresh = [r for r in new if r.tobytes() not in self._scores]
        if fresh:
            scores = self._scored(np.stack(fresh))
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
        # the keywords are cost fields of ParetoEntry (latency_ms), never its positional ones
        return [ParetoEntry(a, float(mf[i]), float(pa[i]), self._scores[k],
                            **cast("dict[str, Any]", {n: float(v[i]) for n, v in other.items()}))
                for i, (a, k) in enumerate(zip(self.space.from_indices(rows), keys))]

    def _best(self, bi: int) -> ParetoEntry | None:
        keys = self._drawn.get(bi, [])
        if not keys:
            return None
        return self._entries([max(keys, key=lambda k: self._scores[k])])[0]

    def result(self) -> SearchResult:
        best = [self._best(i) if i < self._bi else None for i in range(len(self.budgets))]
        return SearchResult(list(self.budgets), best, self._entries(list(self._scores)), self.constraint,
                            scored=len(self._scores))

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
        self._check_same_settings(state["config"])
        key = lambda row: np.asarray(row, dtype=np.int64).tobytes()  # noqa: E731
        self._rng.bit_generator.state = state["rng"]
        self._bi = int(state["budget"])
        self._scores = {key(r): float(s) for r, s in state["scores"]}
        self._drawn = {int(i): [key(r) for r in rows] for i, rows in state["drawn"].items()}
