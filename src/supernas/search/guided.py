"""Predictor-guided search (`supernas search --strategy guided`): a cheap surrogate chooses which
Archs the expensive `score_fn` sees.

Per budget: a spread of Archs within the budget (the constrained sampler, every resolution the
budget allows) is scored by `score_fn`; then, round after round, a surrogate (`Surrogate`: a
ridge regression plus a scikit-learn random forest on what it leaves, over the choices, MFLOPs and
parameters) is refitted on every Arch scored so far, for every budget, and an evolutionary search
(`EvolutionSearch`, half the outer settings) runs under the budget with the surrogate as its
scorer, starting from the scored Archs (their real scores kept); the best Archs it rated that
`score_fn` has not seen, each niche's share first and an eighth drawn at random among them to keep
the surrogate honest, go to `score_fn`. It stops at `calls` real scores for the budget.

Every reported accuracy is one `score_fn` gave; `SearchResult.scored` counts the Archs `score_fn`
scored and `ranked` the ratings the surrogate gave. By default `calls` is a twelfth of what the
evolution could score per budget (about a tenth of what it does score: it never scores an Arch
twice); bench/search_quality.py measures the two against each other.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence, cast

import numpy as np

from ..errors import SupernasError, require_int
from ..spaces import CostModel, SearchSpace
from .evolution import EvolutionSearch
from .operators import BudgetDraws, feasible_values, niche_column, niche_keep
from .pareto import ParetoEntry
from .stepwise import Callback, CostFn, ScoreFn, SearchResult, StepwiseSearch, budget_constraint, check_fraction

SURROGATE_TREES = 64  # enough for ranking; an online refit on ~5000 Archs stays under a second on one core
EXPLORE = 8  # one Arch in EXPLORE of a round is drawn at random among the rated candidates


class Surrogate:
    """A ridge regression on the features with a random forest on what it leaves: the linear part
    carries what adds up over dimensions (and extrapolates a little past the Archs seen), the forest
    the interactions; both refit in well under a second on thousands of Archs."""

    def __init__(self, seed: int, trees: int = SURROGATE_TREES, ridge: float = 1e-3):
        from sklearn.ensemble import RandomForestRegressor

        self.forest = RandomForestRegressor(n_estimators=trees, random_state=seed, n_jobs=1)
        self.ridge = ridge

    def fit(self, x: np.ndarray, y: np.ndarray) -> "Surrogate":
        self.mean, self.scale = x.mean(axis=0), np.maximum(x.std(axis=0), 1e-12)
        z = np.concatenate([(x - self.mean) / self.scale, np.ones((len(x), 1))], axis=1)
        reg = self.ridge * len(x) * np.eye(z.shape[1])
        reg[-1, -1] = 0.0  # the intercept is not shrunk
        self.coef = np.linalg.solve(z.T @ z + reg, z.T @ y)
        self.forest.fit(x, y - z @ self.coef)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        z = np.concatenate([(x - self.mean) / self.scale, np.ones((len(x), 1))], axis=1)
        return z @ self.coef + self.forest.predict(x)


class GuidedSearch(StepwiseSearch):
    """Per budget, `calls` Archs scored by `score_fn`, chosen by a surrogate fitted online.

    `calls`: Archs `score_fn` scores per budget (Archs scored for earlier budgets that fit are
    reused free); `batch`: how many per round (default a sixteenth of `calls`);
    `population`, `mutations`, `crossovers`, `generations`: the outer search's settings, halved
    for the inner searches on the surrogate; `evolution`: EvolutionSearch keywords for them
    (init, niche, niche_share, edge, fresh, parents)."""

    def __init__(self, space: SearchSpace, cost: CostModel, score_fn: ScoreFn, budgets: Sequence[float],
                 calls: int, batch: int | None = None, population: int = 512, mutations: int = 128,
                 crossovers: int = 128, generations: int = 20, seed: int = 0,
                 constraint: tuple[str, CostFn] | None = None, state: Mapping[str, Any] | None = None,
                 evolution: Mapping[str, Any] | None = None):
        require_int("calls", calls, 2)
        require_int("batch", batch, 1, optional=True)
        for name, v, low in (("population", population, 1), ("mutations", mutations, 0),
                             ("crossovers", crossovers, 0), ("generations", generations, 0)):
            require_int(name, v, low)
        self.space, self.cost, self.score_fn = space, cost, score_fn
        self.constraint, self._cost_of, self.budgets = budget_constraint(space, cost, budgets, constraint)
        self.calls, self.seed = calls, seed
        self.batch = batch if batch is not None else max(8, calls // 16)
        self.initial = max(2, calls // 8)  # the first spread of a budget, before any surrogate
        self.inner: dict[str, Any] = {"population": max(16, population // 2), "mutations": mutations // 2,
                                      "crossovers": crossovers // 2, "generations": max(1, generations // 2)}
        self.evolution = dict(evolution or {})
        niche = self.evolution.get("niche", "auto")
        self._niche_col = niche_column(space, niche)
        self.niche_share = float(self.evolution.get("niche_share", 0.25))
        check_fraction("niche_share", self.niche_share)
        # built once, so that its settings are checked before any scoring
        self._inner_search([self.budgets[0]], np.empty((0, len(space.dims)), np.int64), seed)
        self._draws = BudgetDraws(space, cost, self._cost_of, self.constraint == "mflops")
        self._rng = np.random.default_rng(seed)
        self._rows: list[np.ndarray] = []
        self._accs: list[float] = []
        self._index: dict[bytes, int] = {}
        self._used = 0  # real scores spent on the current budget
        self._ranked = 0
        self._bi = 0
        self._best: dict[int, int] = {}  # budget index -> position of its best Arch in _rows
        if state is not None:
            self.load_state_dict(state)

    # ------------------------------------------------------------------ pieces
    def _inner_search(self, budgets: list[float], seeds: np.ndarray, seed: int,
                      score_rows: Any = None) -> EvolutionSearch:
        return EvolutionSearch(self.space, self.cost, self.score_fn, budgets, seed=seed, seed_rows=seeds,
                               constraint=(self.constraint, self._cost_of), score_rows=score_rows,
                               **self.inner, **self.evolution)

    def _real(self, rows: np.ndarray) -> None:
        """Score rows (not scored before) with the real score_fn."""
        if not len(rows):
            return
        for r, a in zip(rows, self._scored(rows)):
            self._index[r.tobytes()] = len(self._rows)
            self._rows.append(r.copy())
            self._accs.append(float(a))
        self._used += len(rows)

    def _within(self, budget: float) -> np.ndarray:
        """Positions in _rows of the scored Archs within `budget`."""
        if not self._rows:
            return np.zeros(0, dtype=np.int64)
        return np.flatnonzero(np.asarray(self._cost_of(np.stack(self._rows))) <= budget)

    def _features(self, rows: np.ndarray) -> np.ndarray:
        """The surrogate's inputs: each choice's value, and the Arch's MFLOPs and parameters (what
        accuracy follows most; a forest cannot add up the dimensions' costs itself)."""
        mf, pa = self.cost.costs_indices(rows)
        return np.concatenate([self.space.encode_indices(rows), mf[:, None], pa[:, None] / 1e6], axis=1)

    def _surrogate(self) -> "Surrogate | None":
        accs = np.asarray(self._accs)
        ok = np.isfinite(accs)  # an Arch the scorer could not rate teaches the surrogate nothing
        if ok.sum() < 2:
            return None
        return Surrogate(self.seed).fit(self._features(np.stack(self._rows)[ok]), accs[ok])

    def _round(self, budget: float, want: int) -> np.ndarray:
        """Up to `want` rows for the real scorer: the surrogate's best under `budget`."""
        known = self._index
        model = self._surrogate()
        if model is None:
            return self._draws.draw(budget, want, self._rng, exclude=set(known))
        accs = np.asarray(self._accs)

        def score_rows(rows: np.ndarray) -> np.ndarray:
            out = np.empty(len(rows))
            pos = np.array([known.get(r.tobytes(), -1) for r in rows])
            seen = pos >= 0
            out[seen] = accs[pos[seen]]
            if (~seen).any():
                out[~seen] = model.predict(self._features(rows[~seen]))
                self._ranked += int((~seen).sum())
            return out

        seeds = np.stack(self._rows)[self._within(budget)]
        inner = self._inner_search([budget], seeds, int(self._rng.integers(2**31)), score_rows)
        inner.run()
        rated, rating = inner.scored_rows()  # every Arch the inner search rated, with its rating
        fresh = np.array([r.tobytes() not in known for r in rated], dtype=bool)
        rated, rating = rated[fresh], rating[fresh]
        if not len(rated):
            return rated
        order = np.argsort(-rating, kind="stable")
        rated = rated[order]
        n_explore = want // EXPLORE if len(rated) > want else 0
        n_best = want - n_explore
        if self._niche_col is not None and self.niche_share:
            values = feasible_values(self.space, self._cost_of, budget, self._niche_col)
            quota = int(self.niche_share * n_best // max(1, len(values)))
            best = niche_keep(rated[:, self._niche_col], len(rated), quota, n_best)
        else:
            best = np.arange(min(n_best, len(rated)))
        rest = np.setdiff1d(np.arange(len(rated)), best)
        explore = self._rng.choice(rest, size=min(n_explore, len(rest)), replace=False) if n_explore else rest[:0]
        return rated[np.concatenate([best, explore]).astype(np.int64)]

    # ------------------------------------------------------------------ driving
    @property
    def done(self) -> bool:
        return self._bi >= len(self.budgets)

    def step(self, callback: Callback | None = None) -> bool:
        """One round of the current budget (its first spread, or one surrogate round); False once
        every budget is done."""
        if self.done:
            return False
        budget = self.budgets[self._bi]
        want = min(self.initial if self._used == 0 else self.batch, self.calls - self._used)
        if self._used == 0:
            # a spread over the budget's range, one niche after another, to fit the first surrogate on
            col = self._niche_col
            niches = None if col is None else feasible_values(self.space, self._cost_of, budget, col)
            rows = self._draws.draw(budget, want, self._rng,
                                    pin=None if col is None else (col, cast(np.ndarray, niches)),  # set when col is
                                    exclude=set(self._index))
        else:
            rows = self._round(budget, want)
        self._real(rows)
        if self._used >= self.calls or not len(rows):  # the budget's calls are spent, or nothing new is left
            within = self._within(budget)
            if len(within):
                self._best[self._bi] = int(within[np.argmax(np.nan_to_num(np.asarray(self._accs)[within],
                                                                           nan=-np.inf))])
            if callback is not None:
                callback(0, budget, self._entry(self._bi))
            self._bi, self._used = self._bi + 1, 0
        return not self.done

    # ------------------------------------------------------------------ results
    def _entries(self, positions: Sequence[int]) -> list[ParetoEntry]:
        if not len(positions):
            return []
        rows = np.stack([self._rows[i] for i in positions])
        mf, pa = self.cost.costs_indices(rows)
        other = {} if self.constraint == "mflops" else {self.constraint: self._cost_of(rows)}
        # the keywords are cost fields of ParetoEntry (latency_ms), never its positional ones
        return [ParetoEntry(a, float(mf[i]), float(pa[i]), self._accs[p],
                            **cast("dict[str, Any]", {n: float(v[i]) for n, v in other.items()}))
                for i, (a, p) in enumerate(zip(self.space.from_indices(rows), positions))]

    def _entry(self, bi: int) -> ParetoEntry | None:
        return self._entries([self._best[bi]])[0] if bi in self._best else None

    def result(self) -> SearchResult:
        best = [self._entry(i) for i in range(len(self.budgets))]
        return SearchResult(list(self.budgets), best, self._entries(range(len(self._rows))), self.constraint,
                            scored=len(self._rows), ranked=self._ranked)

    # ------------------------------------------------------------------ state
    def _config(self) -> dict[str, Any]:
        return {"space": self.space.name, "budgets": self.budgets, "calls": self.calls, "batch": self.batch,
                "inner": self.inner, "evolution": self.evolution, "seed": self.seed, "constraint": self.constraint}

    def state_dict(self) -> dict[str, Any]:
        return {"strategy": "guided", "config": self._config(), "rng": self._rng.bit_generator.state,
                "position": [self._bi, self._used], "ranked": self._ranked,
                "best": {str(i): p for i, p in self._best.items()},
                "rows": [r.tolist() for r in self._rows], "accs": list(self._accs)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if not isinstance(state, Mapping) or state.get("strategy") != "guided":
            raise SupernasError("the saved search state is not a guided search's; resume with the same --strategy")
        self._check_same_settings(state["config"])
        self._rng.bit_generator.state = state["rng"]
        self._bi, self._used = (int(x) for x in state["position"])
        self._ranked = int(state["ranked"])
        self._best = {int(i): int(p) for i, p in state["best"].items()}
        self._rows = [np.asarray(r, dtype=np.int64) for r in state["rows"]]
        self._accs = [float(a) for a in state["accs"]]
        self._index = {r.tobytes(): i for i, r in enumerate(self._rows)}
