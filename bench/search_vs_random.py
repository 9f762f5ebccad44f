"""Does the evolutionary search beat random search on a trained supernet? (issue: stage-2 evidence)

Runs `supernas search` on RUN for the given MFLOPs budgets (Pareto set, plot and state in OUT/search;
resumable), then for each budget scores as many random Archs within the budget as the search could
score there (population + generations x (mutations + crossovers); the search scores fewer, as it
never scores an Arch twice), with the same calibrated-supernet score on the same search split.
Both winners are then scored on the validation split, which neither search saw. With
--random-pool N, N random Archs per budget are scored, and the evolution's best is ranked among
2,000 random searches of its size drawn from them (one random search is a noisy yardstick).

    python bench/search_vs_random.py runs/cifar10-supernet --budgets 2,4 --population 24 \
        --mutations 8 --crossovers 8 --generations 4 --bn-batches 8 --max-batches 4 --out /tmp/svr
    python bench/search_vs_random.py --small --out /tmp/svr_small   # seconds on a CPU (a test runs it)

Prints a table and writes OUT/search_vs_random.json.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from common import add_small_flag, parse_small, tiny_supernet_run
from supernas.evaluation import Evaluator, load_run
from supernas.sampling import sample_in_range
from supernas.search import SearchJob, parse_budgets, search_run
from supernas.spaces import CostModel


def random_baseline(space, cost, evaluator: Evaluator, budget: float, n: int, pool: int, seed: int,
                    evolution_best: float) -> dict:
    """Random search with as many Archs as the evolution: the best of the first `n` of `pool` distinct
    uniformly random Archs within `budget` MFLOPs, and, over 2,000 random draws of `n` from the
    pool, the mean best and the share of such random searches the evolution's best beats."""
    rng = np.random.default_rng(seed)
    size = max(n, pool)
    archs = list(dict.fromkeys(space.from_indices(sample_in_range(space, cost, rng, 4 * size, -np.inf, budget))))
    archs = archs[:size]
    accs = np.asarray(evaluator.score_fn(archs), dtype=np.float64)
    i = int(np.argmax(accs[:n]))
    out = {"arch": archs[i].to_dict(), "mflops": float(cost.mflops(archs[i])), "accuracy": float(accs[i]),
           "archs_scored": min(n, len(archs)), "pool": len(archs)}
    if len(archs) > n:
        draws = np.random.default_rng(seed + 1).random((2000, len(archs))).argsort(axis=1)[:, :n]
        best = accs[draws].max(axis=1)
        out.update(mean_best_of_n=float(best.mean()), evolution_beats=float((evolution_best > best).mean()),
                   evolution_ties=float((evolution_best == best).mean()))
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", nargs="?", help="run directory of `supernas train` (--small: default a tiny supernet "
                   "trained in OUT/tiny_run)")
    p.add_argument("--budgets", help="MFLOPs budgets, e.g. 2,4 or 200:800:100 (required but with --small)")
    p.add_argument("--population", type=int, default=512)
    p.add_argument("--mutations", type=int, default=128)
    p.add_argument("--crossovers", type=int, default=128)
    p.add_argument("--generations", type=int, default=20)
    p.add_argument("--bn-batches", type=int, default=64)
    p.add_argument("--max-batches", type=int, help="score on at most this many batches of the search split")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--random-pool", type=int, default=0, help="score this many random Archs per budget and "
                   "report the evolution's standing among random searches of its size drawn from them")
    p.add_argument("--out", required=True)
    add_small_flag(p)
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The arguments; --small: a tiny supernet, a population of 4 over one generation, one budget,
    scores on one batch."""
    p = build_parser()
    args = parse_small(p, argv, {"population": 4, "mutations": 2, "crossovers": 2, "generations": 1,
                                 "bn_batches": 1, "max_batches": 1, "random_pool": 12, "device": "cpu"})
    if not args.small and (args.run is None or args.budgets is None):
        p.error("RUN and --budgets are required (or --small)")
    return args


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    out = Path(args.out)
    if args.run is None:
        args.run = str(tiny_supernet_run(out / "tiny_run"))
    if args.budgets is None:  # --small: one budget halfway between the run's smallest and largest Arch
        net, _, data = load_run(args.run, "cpu")
        cost = CostModel(net.space, data.num_classes)
        args.budgets = f"{(cost.mflops(net.space.smallest()) + cost.mflops(net.space.largest())) / 2:.4f}"
    budgets = parse_budgets(args.budgets)
    t0 = time.perf_counter()
    search_dir = out / "search"
    result = search_run(SearchJob(budgets=tuple(budgets), run=args.run, out=search_dir, population=args.population,
                                  mutations=args.mutations, crossovers=args.crossovers, generations=args.generations,
                                  seed=args.seed, bn_batches=args.bn_batches, max_batches=args.max_batches,
                                  device=args.device, resume=(search_dir / "search_state.json").exists()))
    search_s = time.perf_counter() - t0

    net, _, data = load_run(args.run, args.device)
    device = next(net.parameters()).device
    cost = CostModel(net.space, data.num_classes)
    scorer = Evaluator(net, data, device=device, bn_batches=args.bn_batches, max_batches=args.max_batches)
    scorer.load_cache(json.loads((search_dir / "search_state.json").read_text())["evaluator"])
    random_cache = out / "random_cache.json"  # the random Archs' scores, kept for reruns
    if random_cache.exists():
        scorer.load_cache(json.loads(random_cache.read_text()))
    holdout = Evaluator(net, data, device=device, bn_batches=args.bn_batches, split="val")
    per_budget = args.population + args.generations * (args.mutations + args.crossovers)

    rows = []
    for i, (budget, best) in enumerate(zip(result.budgets, result.best)):
        rand = random_baseline(net.space, cost, scorer, budget, per_budget, args.random_pool, args.seed + 1 + i,
                               best.accuracy)
        out.mkdir(parents=True, exist_ok=True)
        random_cache.write_text(json.dumps(scorer.cache_state()))
        evo_val, rand_val = (holdout.evaluate(net.space.arch(a))["top1"] for a in (best.arch, rand["arch"]))
        rows.append({"budget": budget, "evolution": {**best.to_dict(), "val_top1": evo_val},
                     "random": {**rand, "val_top1": rand_val}, "search_wins": best.accuracy >= rand["accuracy"]})
    report = {"run": str(args.run), "budgets": result.budgets, "archs_scored_by_search": len(result.evaluated),
              "random_archs_per_budget": per_budget, "search_seconds": round(search_s, 1),
              "pareto_size": len(result.pareto()), "rows": rows}
    out.mkdir(parents=True, exist_ok=True)
    (out / "search_vs_random.json").write_text(json.dumps(report, indent=1))

    print(f"search: {len(result.evaluated)} distinct Archs scored over {len(budgets)} budgets in {search_s:.0f} s; "
          f"random: {per_budget} per budget; Pareto set of {report['pareto_size']} in {search_dir}/pareto.json")
    print(f"{'budget':>7}  {'evo MFLOPs':>10}  {'evo top1':>8}  {'rand MFLOPs':>11}  {'rand top1':>9}  "
          f"{'evo val':>7}  {'rand val':>8}  wins")
    for r in rows:
        e, q = r["evolution"], r["random"]
        print(f"{r['budget']:>7g}  {e['mflops']:>10.2f}  {e['accuracy']:>8.2f}  {q['mflops']:>11.2f}  "
              f"{q['accuracy']:>9.2f}  {e['val_top1']:>7.2f}  {q['val_top1']:>8.2f}  {'yes' if r['search_wins'] else 'NO'}")
    for r in rows:
        q = r["random"]
        if "mean_best_of_n" in q:
            print(f"budget {r['budget']:g}: over random searches of {q['archs_scored']} Archs drawn from {q['pool']} "
                  f"scored ones, the mean best is {q['mean_best_of_n']:.2f}; the evolution's "
                  f"{r['evolution']['accuracy']:.2f} beats {100 * q['evolution_beats']:.0f} % of them "
                  f"(ties {100 * q['evolution_ties']:.0f} %)")
    return report


if __name__ == "__main__":
    main()
