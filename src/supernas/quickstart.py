"""`supernas quickstart`: the whole AttentiveNAS pipeline on scikit-learn's digits in minutes on a
CPU: train a supernet over `attentivenas-tiny`, search three FLOPs budgets inside the space's
range, export the best Arch of the largest, fine-tune it briefly from its inherited weights, and
report its top-1 on the validation split."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from .config import SupernetConfig, load_config
from .errors import SupernasError
from .utils.file_names import CHECKPOINT

CONFIGS = Path(__file__).with_name("configs")
# The fine-tune that ends the quickstart (over configs/finetune_digits_quick.yaml): measured in
# docs/training.md, 6 epochs at lr 0.1 on labels alone beat the smallest Arch retrained from scratch
# (`supernas retrain smallest`), where 4 epochs at 0.04 did not, and distilling from a supernet
# trained for minutes pulled the model down to the teacher's level.
FINETUNE = ("train.epochs=6", "train.lr=0.1")
# Where the budgets lie between the smallest and the largest Arch's MFLOPs: none above the largest
# (a budget every Arch meets returns the same model as the largest budget).
BUDGET_FRACTIONS = (1 / 3, 2 / 3, 1.0)


def budgets_in_range(lo: float, hi: float, fractions: Sequence[float] = BUDGET_FRACTIONS) -> list[float]:
    """Budgets at `fractions` of the way from `lo` to `hi` MFLOPs, rounded down to 2 decimals (so
    the last is at most `hi`) and kept above `lo`: distinct budgets inside the space's range."""
    out: list[float] = []
    for f in fractions:
        b = math.floor((lo + f * (hi - lo)) * 100) / 100
        if b > lo and b not in out:
            out.append(b)
    return out or [hi]


def quickstart(run_dir: "str | Path" = "runs/quickstart", device: str = "auto", overrides: Sequence[str] = (),
               finetune_overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Run the quickstart into `run_dir` and return what it delivered: the export, its MFLOPs and
    its top-1 on the validation split before and after the fine-tune. `overrides` (key=value) change
    the supernet's config, `finetune_overrides` the fine-tune's (tests shorten both)."""
    from .deliver import export_arch
    from .evaluation import evaluate_model, load_exported, load_run
    from .search import SearchJob, format_table, search_run
    from .search.pareto import mflops_decimals
    from .search.plots import mark_exported
    from .spaces import CostModel
    from .train.standalone import finetune
    from .train.supernet import SupernetTrainer

    run_dir = Path(run_dir)
    cfg = load_config(SupernetConfig, CONFIGS / "attentivenas_digits_quick.yaml",
                      [f"run.dir={run_dir}", f"run.device={device}", *overrides])
    if (run_dir / CHECKPOINT).exists():
        raise SupernasError(f"'{run_dir}' already holds a quickstart run; remove it or pass --dir elsewhere")
    print("1/4 training the supernet (sandwich rule, in-place distillation, BestUp-3)")
    SupernetTrainer(cfg).fit()
    net, _, data = load_run(run_dir, device)
    cost = CostModel(net.space, data.num_classes)
    lo, hi = (float(cost.mflops(a)) for a in (net.space.smallest(), net.space.largest()))
    budgets = budgets_in_range(lo, hi)
    print(f"2/4 evolutionary search at {len(budgets)} MFLOPs budgets inside the space's range ({lo:.2f} to "
          f"{hi:.2f} MFLOPs at {data.num_classes} classes): {', '.join(f'{b:g}' for b in budgets)}")
    result = search_run(SearchJob(budgets=tuple(budgets), run=str(run_dir), population=16, mutations=8, crossovers=8,
                                  generations=3, bn_batches=4, device=device))
    front = result.pareto()
    print(format_table(front))
    print("3/4 exporting the most accurate Arch of the largest budget (BatchNorm calibrated)")
    best = max((e for e in result.best if e is not None), key=lambda e: e.accuracy)
    export_arch(net, best.arch, data, run_dir / "export", "pt", bn_batches=4)
    mark_exported(run_dir, run_dir / "export")
    model, meta = load_exported(run_dir / "export")
    inherited = evaluate_model(model, data.val, resolution=meta["resolution"])["top1"]
    # A supernet trained for minutes leaves its sub-networks short of one trained alone; a few
    # epochs from the inherited weights close that gap for a fraction of the supernet's cost
    # (docs/training.md, "The quickstart's delivered model").
    print("4/4 fine-tuning it from its inherited weights (6 epochs)")
    tuned = finetune(run_dir / "export", CONFIGS / "finetune_digits_quick.yaml",
                     [f"run.dir={run_dir / 'finetune'}", f"run.device={device}", *FINETUNE, *finetune_overrides])
    decimals = mflops_decimals([e.mflops for e in front])
    print(f"Pareto plot: {run_dir / 'search' / 'pareto.png'}")
    print(f"best model:  {tuned['export']} ({best.mflops:.{decimals}f} MFLOPs): {tuned['top1']:.1f}% top-1 on the "
          f"validation split ({len(data.val)} images); {inherited:.1f}% with the supernet's weights before the "
          f"fine-tune, {best.accuracy:.1f}% on the search split during the search")
    print(f"run report:  supernas report {run_dir}   (needs: pip install -e \".[report]\")")
    return {"export": tuned["export"], "mflops": best.mflops, "budgets": budgets, "top1_val": tuned["top1"],
            "top1_val_inherited": inherited, "top1_search": best.accuracy}
