"""Does the evolutionary search beat random search on a trained supernet? (issue: stage-2 evidence)

Runs `supernas search` on RUN for the given MFLOPs budgets (Pareto set, plot and state in OUT/search;
resumable), then for each budget scores as many random Archs within the budget as the search could
score there (population + generations x (mutations + crossovers); the search scores fewer, as it
never scores an Arch twice), with the same calibrated-supernet score on the same search split.
Both winners are then scored on the validation split, which neither search saw.

    python bench/search_vs_random.py runs/cifar10-supernet --budgets 2,4 --population 24 \
        --mutations 8 --crossovers 8 --generations 4 --bn-batches 8 --max-batches 4 --out /tmp/svr

Prints a table and writes OUT/search_vs_random.json.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from supernas.sampling import sample_in_range
from supernas.search import Evaluator, parse_budgets
from supernas.search.runner import load_run, search_run
from supernas.spaces import CostModel


def random_baseline(space, cost, evaluator: Evaluator, budget: float, n: int, seed: int) -> tuple[dict, int]:
    """Best of `n` distinct uniformly random Archs within `budget` MFLOPs: (entry, distinct Archs scored)."""
    rng = np.random.default_rng(seed)
    archs = list(dict.fromkeys(space.from_indices(sample_in_range(space, cost, rng, 4 * n, -np.inf, budget))))[:n]
    accs = evaluator.score_fn(archs)
    i = int(np.argmax(accs))
    return {"arch": archs[i].to_dict(), "mflops": float(cost.mflops(archs[i])), "accuracy": float(accs[i])}, len(archs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="run directory of `supernas train`")
    p.add_argument("--budgets", required=True, help="MFLOPs budgets, e.g. 2,4 or 200:800:100")
    p.add_argument("--population", type=int, default=512)
    p.add_argument("--mutations", type=int, default=128)
    p.add_argument("--crossovers", type=int, default=128)
    p.add_argument("--generations", type=int, default=20)
    p.add_argument("--bn-batches", type=int, default=64)
    p.add_argument("--max-batches", type=int, help="score on at most this many batches of the search split")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", required=True)
    args = p.parse_args()

    out = Path(args.out)
    budgets = parse_budgets(args.budgets)
    t0 = time.perf_counter()
    search_dir = out / "search"
    result = search_run(args.run, budgets, out_dir=search_dir, population=args.population, mutations=args.mutations,
                        crossovers=args.crossovers, generations=args.generations, seed=args.seed,
                        bn_batches=args.bn_batches, max_batches=args.max_batches, device=args.device,
                        resume=(search_dir / "search_state.json").exists())
    search_s = time.perf_counter() - t0

    net, _, data = load_run(args.run, args.device)
    device = next(net.parameters()).device
    cost = CostModel(net.space, data.num_classes)
    scorer = Evaluator(net, data, device=device, bn_batches=args.bn_batches, max_batches=args.max_batches)
    scorer.load_cache(json.loads((search_dir / "search_state.json").read_text())["evaluator"])
    holdout = Evaluator(net, data, device=device, bn_batches=args.bn_batches, split="val")
    per_budget = args.population + args.generations * (args.mutations + args.crossovers)

    rows = []
    for i, (budget, best) in enumerate(zip(result.budgets, result.best)):
        rand, n_rand = random_baseline(net.space, cost, scorer, budget, per_budget, args.seed + 1 + i)
        evo_val, rand_val = (holdout.evaluate(net.space.arch(a))["top1"] for a in (best.arch, rand["arch"]))
        rows.append({"budget": budget, "evolution": {**best.to_dict(), "val_top1": evo_val},
                     "random": {**rand, "val_top1": rand_val, "archs_scored": n_rand},
                     "search_wins": best.accuracy >= rand["accuracy"]})
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


if __name__ == "__main__":
    main()
