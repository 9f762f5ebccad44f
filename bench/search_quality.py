"""Stage-2 search quality at the `attentivenas` space's real size (issue 22): the best Arch found per
budget by the previous evolution, the new evolution, random search and the guided search, over
several seeds, with the number of Archs each real scorer scored, and the seconds per budget.

Objectives (each a `score_fn`, as the supernet or a predictor would be):

- `stuck`: built with the structure that trapped the previous search. A higher resolution is
  worth more than anything the rest of a tight budget buys (+1.5, +2.5, +3.0 points at 224, 256,
  288 px), and the other dimensions add up, with diminishing returns, in proportion to the MFLOPs
  they cost times a seeded factor in [0.3, 1.7]: at the A1 budget the best Arch is the smallest
  224 px Arch with a few cheap dimensions grown, as the published A1 is.
- `forest`: a random forest (`fit_from_evaluations`, the predictor `supernas predictor fit`
  makes: 100 trees, depth 15) fitted on 1000 random Archs scored by `stuck`, used as the scorer:
  the piecewise-constant landscape a predictor gives, and the cost of scoring with one (the
  seconds per budget are measured with it).
- `--predictor P`: a predictor saved by `supernas predictor fit` (its space must be attentivenas).

Budgets default to the MFLOPs of the published A0..A6 (203.39 ... 709.01). Strategies: `old` is
`--strategy evolution search.init=uniform search.niche=none search.edge=0 search.fresh=0` (the
evolution before issue 22, draw for draw), `new` the evolution's defaults, `random` and `guided`
theirs. Each table row is a strategy's mean best over the seeds (min..max when they differ);
`published` is the published model's score under the same objective; the ratios at the end are
measured in the same run.

    OMP_NUM_THREADS=1 python bench/search_quality.py --seeds 3          # paper settings: minutes on one core
    python bench/search_quality.py --small                              # seconds (a test runs it)
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from common import add_small_flag, parse_small
from supernas.predictors import fit_from_evaluations, load_predictor
from supernas.search import STRATEGIES, SearchSettings
from supernas.spaces import CostModel, SearchSpace, get_space, load_arch

PUBLISHED = ("a0", "a1", "a2", "a3", "a4", "a5", "a6")
OLD = ["search.init=uniform", "search.niche=none", "search.edge=0", "search.fresh=0"]
# name -> (strategy, search.KEY=VALUE settings)
RUNS = {"old": ("evolution", OLD), "new": ("evolution", []), "random": ("random", []), "guided": ("guided", [])}


def stuck_objective(space: SearchSpace, cost: CostModel, seed: int = 0) -> Callable[[list], np.ndarray]:
    """The objective with the structure issue 22 describes (module docstring): accuracy of Archs."""
    base = np.zeros((1, len(space.dims)), np.int64)
    floor = float(cost.mflops_indices(base)[0])
    res = space.column("resolution")
    factor = np.random.default_rng(seed).uniform(0.3, 1.7, len(space.dims))
    w = np.zeros(len(space.dims))
    for d in range(len(space.dims)):
        if d != res and space.cardinalities[d] > 1:
            row = base.copy()
            row[0, d] = space.cardinalities[d] - 1
            grown = float(cost.mflops_indices(space.canonicalize_indices(row))[0]) - floor
            w[d] = 0.0028 * grown / (space.cardinalities[d] - 1) * factor[d]  # points per choice step
    bonus = np.array([0.0, 1.5, 2.5, 3.0])[: len(space.dims[res])]

    def score(archs: list) -> np.ndarray:
        idx = space.to_indices(archs)
        return 70.0 + bonus[idx[:, res]] + 10.0 * (1.0 - np.exp(-(idx @ w) / 3.0))

    return score


def forest_objective(space: SearchSpace, stuck: Callable, n: int, seed: int) -> tuple[Callable, float]:
    """A predictor fitted on n random Archs scored by `stuck`, and its held-out Kendall tau."""
    archs = space.sample(np.random.default_rng(1000 + seed), n)
    model, tau = fit_from_evaluations(space, list(zip(archs, stuck(archs))), holdout=0.2, seed=seed)
    return (lambda a: model.predict(a)), float(tau)


class Counted:
    """A score_fn that counts the Archs it scores (the real scorer's calls)."""

    def __init__(self, fn: Callable):
        self.fn, self.calls = fn, 0

    def __call__(self, archs: list) -> np.ndarray:
        self.calls += len(archs)
        return np.asarray(self.fn(archs), dtype=np.float64)


def run_one(space: SearchSpace, cost: CostModel, score: Callable, budgets: list[float], name: str,
            settings: SearchSettings, seed: int) -> dict[str, Any]:
    strategy, options = RUNS[name]
    counted = Counted(score)
    t = time.perf_counter()
    result = STRATEGIES.get(strategy)(space, cost, counted, budgets, replace(settings.with_options(options),
                                                                          seed=seed)).run()
    seconds = time.perf_counter() - t
    assert counted.calls == result.scored, "the result's count is the scorer's"
    return {"best": [e.accuracy for e in result.best], "archs": [e.arch.to_json() for e in result.best],
            "resolution": [e.arch["resolution"] for e in result.best], "scored": result.scored,
            "ranked": result.ranked, "seconds": seconds, "seconds_per_budget": seconds / len(budgets)}


def _cell(values: list[float]) -> str:
    lo, hi, mean = min(values), max(values), float(np.mean(values))
    return f"{mean:.3f}" if hi - lo < 5e-4 else f"{mean:.3f} ({lo:.2f}..{hi:.2f})"


def table(objective: str, budgets: list[float], published: list[float], runs: dict[str, list[dict]]) -> list[str]:
    """The per-budget best of each strategy (mean over seeds), its calls and seconds."""
    head = f"{'':9s}" + "".join(f"{b:>22.2f}" for b in budgets) + f"{'real calls':>12s}{'ranked':>10s}{'s/budget':>10s}"
    lines = [f"objective {objective}: best accuracy per budget (MFLOPs), mean over seeds (min..max)", head,
             f"{'published':9s}" + "".join(f"{p:>22.3f}" for p in published)]
    for name, per_seed in runs.items():
        cells = [_cell([r["best"][i] for r in per_seed]) for i in range(len(budgets))]
        lines.append(f"{name:9s}" + "".join(f"{c:>22s}" for c in cells)
                     + f"{np.mean([r['scored'] for r in per_seed]):>12.0f}"
                     + f"{np.mean([r['ranked'] for r in per_seed]):>10.0f}"
                     + f"{np.mean([r['seconds_per_budget'] for r in per_seed]):>10.2f}")
    return lines


def ratios(budgets: list[float], published: list[float], runs: dict[str, list[dict]]) -> dict[str, Any]:
    """What the issue asks to measure, from one run's figures."""
    mean = {n: np.mean([r["best"] for r in rs], axis=0) for n, rs in runs.items()}
    calls = {n: float(np.mean([r["scored"] for r in rs])) for n, rs in runs.items()}
    out: dict[str, Any] = {}
    for n in runs:
        out[f"{n}: budgets where every seed's best >= the published model"] = int(sum(
            all(r["best"][i] >= published[i] - 1e-9 for r in runs[n]) for i in range(len(budgets))))
    if "old" in runs and "new" in runs:
        out["new - old, per budget (points)"] = [round(float(v), 3) for v in mean["new"] - mean["old"]]
        out["old: seeds ending on the same best Archs at every budget"] = len({tuple(r["archs"]) for r in runs["old"]}
                                                                             ) == 1 and len(runs["old"]) > 1
    if "guided" in runs and "new" in runs:
        out["guided - new, per budget (points)"] = [round(float(v), 3) for v in mean["guided"] - mean["new"]]
        out["guided real calls / new evolution real calls"] = round(calls["guided"] / calls["new"], 4)
    if "random" in runs and "new" in runs:
        out["random - new, per budget (points)"] = [round(float(v), 3) for v in mean["random"] - mean["new"]]
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=3, help="seeds per strategy (0, 1, ...)")
    p.add_argument("--budgets", help="comma list of MFLOPs budgets (default: the published A0..A6's MFLOPs)")
    p.add_argument("--population", type=int, default=512)
    p.add_argument("--mutations", type=int, default=128)
    p.add_argument("--crossovers", type=int, default=128)
    p.add_argument("--generations", type=int, default=20)
    p.add_argument("--strategies", default=",".join(RUNS), help=f"comma list of {', '.join(RUNS)}")
    p.add_argument("--objectives", default="stuck,forest", help="comma list of stuck, forest")
    p.add_argument("--forest-archs", type=int, default=1000, help="random Archs the forest objective is fitted on")
    p.add_argument("--predictor", help="also search a predictor saved by `supernas predictor fit` (attentivenas)")
    p.add_argument("--out", help="write the figures as JSON here")
    add_small_flag(p)
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The arguments; --small: two budgets (A1, A4), a population of 32 over 3 generations, one
    seed, a forest on 200 Archs."""
    return parse_small(build_parser(), argv, {"seeds": 1, "budgets": "279.24,443.54", "population": 32,
                                              "mutations": 8, "crossovers": 8, "generations": 3,
                                              "forest_archs": 200})


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    space = get_space("attentivenas")
    cost = CostModel(space, 1000)
    models = [load_arch(space, m) for m in PUBLISHED]
    budgets = ([float(b) for b in args.budgets.split(",")] if args.budgets else
               [float(np.ceil(m * 100) / 100) for m in cost.mflops(models)])
    names = [n.strip() for n in args.strategies.split(",") if n.strip()]
    unknown = [n for n in names if n not in RUNS]
    if unknown:
        raise SystemExit(f"unknown strategy {unknown[0]!r}; choose among {', '.join(RUNS)}")
    stuck = stuck_objective(space, cost)
    objectives: dict[str, Callable] = {}
    notes: dict[str, Any] = {}
    for o in (x.strip() for x in args.objectives.split(",") if x.strip()):
        if o == "stuck":
            objectives["stuck"] = stuck
        elif o == "forest":
            objectives["forest"], notes["forest Kendall tau (held out)"] = forest_objective(
                space, stuck, args.forest_archs, 0)
        else:
            raise SystemExit(f"unknown objective {o!r}; choose among stuck, forest")
    if args.predictor:
        model = load_predictor(args.predictor, space)
        objectives["predictor"] = lambda a: model.predict(a)
    settings = SearchSettings(args.population, args.mutations, args.crossovers, args.generations)
    # warm-up, untimed: the FLOPs tables the searches share are estimated once per process
    STRATEGIES.get("evolution")(space, cost, stuck, budgets[:1], SearchSettings(4, 1, 1, 1)).run()
    print(f"space attentivenas ({space.size:.3g} Archs); budgets {', '.join(f'{b:g}' for b in budgets)} MFLOPs; "
          f"population {args.population}, {args.generations} generations of {args.mutations} mutations + "
          f"{args.crossovers} crossovers; guided: {settings.guided_calls} real calls per budget; "
          f"seeds 0..{args.seeds - 1}")
    report: dict[str, Any] = {"budgets": budgets, "settings": vars(args), "notes": notes, "objectives": {}}
    for objective, score in objectives.items():
        published = []
        for b, m in zip(budgets, models):  # the published model of that budget, when it fits it
            fits = [a for a in models if float(cost.mflops(a)) <= b]
            published.append(float(np.max(score(fits))) if fits else float("nan"))
        runs = {n: [run_one(space, cost, score, budgets, n, settings, s) for s in range(args.seeds)] for n in names}
        print()
        print("\n".join(table(objective, budgets, published, runs)))
        found = ratios(budgets, published, runs)
        for k, v in found.items():
            print(f"  {k}: {v}")
        report["objectives"][objective] = {"published": published, "runs": runs, "ratios": found}
    for k, v in notes.items():
        print(f"{k}: {v:.3f}")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
