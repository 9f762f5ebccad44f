"""`supernas quickstart`: the whole AttentiveNAS pipeline on scikit-learn's digits in minutes on a
CPU: train a supernet over `attentivenas-tiny`, search three FLOPs budgets, export the best."""
from __future__ import annotations

from pathlib import Path

from .config import SupernetConfig, load_config
from .errors import SupernasError


def quickstart(run_dir: "str | Path" = "runs/quickstart", device: str = "auto") -> Path:
    from .search.pareto import mflops_decimals
    from .search.results import mark_exported
    from .deliver import export_arch
    from .evaluation import load_run
    from .search import format_table
    from .search.runner import search_run
    from .train.supernet import SupernetTrainer

    run_dir = Path(run_dir)
    config = Path(__file__).with_name("configs") / "attentivenas_digits_quick.yaml"
    cfg = load_config(SupernetConfig, config, [f"run.dir={run_dir}", f"run.device={device}"])
    if (run_dir / "checkpoint.pt").exists():
        raise SupernasError(f"'{run_dir}' already holds a quickstart run; remove it or pass --dir elsewhere")
    print("1/3 training the supernet (sandwich rule, in-place distillation, BestUp-3)")
    SupernetTrainer(cfg).fit()
    print("2/3 evolutionary search at three MFLOPs budgets (10 classes)")
    budgets = [1.0, 2.0, 3.0]
    result = search_run(run_dir, budgets, population=16, mutations=8, crossovers=8, generations=3,
                        bn_batches=4, device=device)
    front = result.pareto()
    front_mflops = [e.mflops for e in front]
    print(format_table(front))
    print("3/3 exporting the most accurate Arch of the largest budget")
    net, _, data = load_run(run_dir, device)
    best = max((e for e in result.best if e is not None), key=lambda e: e.accuracy)
    model = export_arch(net, best.arch, data, run_dir / "export", "pt", bn_batches=4)
    mark_exported(run_dir, run_dir / "export")
    print(f"Pareto plot: {run_dir / 'search' / 'pareto.png'}")
    print(f"best model:  {model} ({best.mflops:.{mflops_decimals(front_mflops)}f} MFLOPs, {best.accuracy:.1f}% "
          "top-1 on the search split)")
    print(f"run report:  supernas report {run_dir}")
    return run_dir
