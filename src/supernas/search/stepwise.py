"""What every search strategy shares: a search that runs one budget step at a time (so that it is
checkpointed between steps and resumed), its result, and the checks of its budgets and settings."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from ..errors import SupernasError, SupernasWarning
from ..spaces import Arch, CostModel, SearchSpace
from .pareto import COSTS, ParetoEntry, pareto_front

ScoreFn = Callable[[list[Arch]], "np.ndarray | Sequence[float]"]
CostFn = Callable[[np.ndarray], np.ndarray]  # (N, D) index rows -> (N,) cost
Callback = Callable[[int, float, "ParetoEntry | None"], None]  # None: a budget where nothing was scored


@dataclass
class SearchResult:
    """Best Arch per budget (None if a budget was not searched yet) and every scored Arch once;
    `cost` names the constrained ParetoEntry field the budgets are in."""

    budgets: list[float]
    best: list[ParetoEntry | None]
    evaluated: list[ParetoEntry]
    cost: str = "mflops"
    scored: int = 0  # Archs the real score_fn scored (each once)
    ranked: int = 0  # Archs a surrogate rated to choose what score_fn sees (guided search; 0 for the others)

    def missing(self) -> list[str]:
        """One line per budget without a best Arch, saying why (only a search stopped before it)."""
        return [f"budget {b:g} {COSTS.get(self.cost, self.cost)} was not searched yet (the search stopped before "
                "it; continue it with --resume)" for b, e in zip(self.budgets, self.best) if e is None]

    def pareto(self) -> list[ParetoEntry]:
        """Pareto front of all scored Archs (accuracy against the constrained cost)."""
        return pareto_front(self.evaluated, cost=self.cost)


def check_fraction(name: str, value: Any) -> None:
    """Refuse, in one line, a setting that must be a fraction in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise SupernasError(f"{name} must be a fraction in [0, 1], got {value!r}")


def check_budgets(space: SearchSpace, cost_of: CostFn, budgets: Sequence[float], unit: str) -> None:
    """Refuse a budget below the smallest Arch's cost (nothing fits it) and warn of one above the
    largest's (everything fits it: its search is that of the whole space, as its neighbours' may be)."""
    floor, ceiling = (float(c) for c in cost_of(space.to_indices([space.smallest(), space.largest()])))
    low = [b for b in budgets if b < floor]
    if low:
        raise SupernasError(f"budget {low[0]:g} {unit} is below the smallest Arch of space '{space.name}' "
                            f"({floor:.4g} {unit}); raise the budgets to at least that")
    high = [b for b in budgets if b > ceiling]
    if high:
        warnings.warn(f"budget{'s' if len(high) > 1 else ''} {', '.join(f'{b:g}' for b in high)} {unit} "
                      f"{'are' if len(high) > 1 else 'is'} above the largest Arch of space '{space.name}' "
                      f"({ceiling:.4g} {unit}): every Arch fits, so each searches the whole space; budgets up to "
                      f"{ceiling:.4g} {unit} cover it", SupernasWarning, stacklevel=4)  # the strategy's caller


def budget_constraint(space: SearchSpace, cost: CostModel, budgets: Sequence[float],
                      constraint: "tuple[str, CostFn] | None") -> tuple[str, CostFn, list[float]]:
    """(the constraint's name, its cost function, the budgets) of a strategy, checked: a known
    constraint (MFLOPs by default), at least one budget, none below the smallest Arch's cost."""
    name, cost_of = constraint or ("mflops", cost.mflops_indices)
    if name not in COSTS:
        raise SupernasError(f"unknown constraint '{name}'; choose one of {', '.join(COSTS)}")
    values = [float(b) for b in budgets]
    if not values:
        raise SupernasError(f"give at least one budget in {COSTS[name]} (e.g. --budgets 200:800:100)")
    check_budgets(space, cost_of, values, COSTS[name])
    return name, cost_of, values


class StepwiseSearch:
    """A strategy that searches its budgets one `step()` at a time until `done`, so that it can be
    checkpointed between steps and resumed from its `state_dict()`."""

    space: SearchSpace
    score_fn: ScoreFn

    if TYPE_CHECKING:  # a read-only property in every strategy
        @property
        def done(self) -> bool: ...

    def _config(self) -> dict[str, Any]:
        """The settings a saved state must have been searched with to be resumed."""
        raise NotImplementedError

    def _scored(self, rows: np.ndarray) -> np.ndarray:
        """`score_fn`'s accuracy of the Arch of each index row, float64 (N,); refused unless one per Arch."""
        accs = np.asarray(self.score_fn(self.space.from_indices(rows)), dtype=np.float64).reshape(-1)
        if accs.size != len(rows):
            raise SupernasError(f"score_fn returned {accs.size} scores for {len(rows)} Archs; it must return one "
                                "accuracy per Arch")
        return accs

    def _check_same_settings(self, saved: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> None:
        """Refuse to resume a search saved with other settings (`defaults`: what a state saved before
        a setting existed ran with)."""
        for k, v in self._config().items():
            was = saved.get(k, (defaults or {}).get(k))
            if was != v:
                raise SupernasError(f"the saved search has {k}={was!r} but this one {v!r}; resume with the same "
                                    "settings, or start a new search in another run directory")

    def step(self, callback: Callback | None = None) -> bool:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def result(self) -> SearchResult:
        raise NotImplementedError

    def run(self, callback: Callback | None = None,
            checkpoint: Callable[[dict[str, Any]], None] | None = None) -> SearchResult:
        """Search every remaining budget; `checkpoint(state_dict())` is called after each step."""
        while not self.done:
            self.step(callback)
            if checkpoint is not None:
                checkpoint(self.state_dict())
        return self.result()
