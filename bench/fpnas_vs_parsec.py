"""FP-NAS against PARSEC under the same settings: Archs sampled, search time, and the top-1 of
each found Arch after a short retrain from scratch.

Target (the issue): FP-NAS samples at least 50 % fewer Archs and searches at least 1.5x faster
than PARSEC at equal accuracy (the paper: 64 % fewer, 2.1x faster, on ImageNet).

    python bench/fpnas_vs_parsec.py --data digits --config src/supernas/configs/fpnas_digits_quick.yaml \
        --out /tmp/fvp_digits
    python bench/fpnas_vs_parsec.py --data /tmp/data/cifar10 --out runs/fvp_cifar10 \
        train.epochs=4 data.train_subset=5000 ...
    python bench/fpnas_vs_parsec.py --small --out /tmp/fvp_small    # the whole bench in seconds (a test runs it)

Both searches run in this process, one after the other, from one config: PARSEC's is FP-NAS's
with search.mode=parsec. The key=value overrides apply to both searches; --retrain-set ones to
both retrains. Each search lives in OUT/fpnas and OUT/parsec, each retrain in OUT/retrain_<mode>:
a finished one (result.json) is reused, an interrupted one resumed from its checkpoint, so
running the same command again continues; --fresh starts over. Settings changed between runs
are refused rather than mixed into one comparison.

Figures: "wall s" is the search loop's own clock (result.json's search_seconds, summed over
resumes); "CPU s" is the CPU time of the whole search call (set-up included) in this process and
its DataLoader workers, measured only when the search ran here without a resume.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from common import (CONFIGS, TINY_FPNAS_OVERRIDES, TINY_RETRAIN_SETS, add_small_flag, cell, parse_small, resumable,
                    retrain_config_path)
from supernas.config import FpnasConfig, RetrainConfig, load_config
from supernas.fpnas import ProbabilisticSearch

MODES = ("fpnas", "parsec")
TARGET_SAMPLES_REDUCTION = 50.0  # percent
TARGET_SPEEDUP = 1.5


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 epilog="key=value overrides apply to both searches, e.g. train.epochs=4")
    ap.add_argument("--data", help="dataset path (ImageFolder train/ + test/, CIFAR batches) or 'digits' "
                                   "(required but with --small)")
    ap.add_argument("--config", default=str(CONFIGS / "fpnas_cifar10.yaml"), help="search config (fpnas mode)")
    ap.add_argument("--out", required=True, help="output directory of the bench")
    ap.add_argument("--threads", type=int, help="torch threads (default 1 without a GPU, so the two timings "
                                                "are less disturbed by other load; 0: torch's default)")
    ap.add_argument("--retrain-epochs", type=int, help="epochs of each retrain (default: the retrain config's; "
                                                       "0: no retrain)")
    ap.add_argument("--retrain-config", help="retrain config (default: configs/retrain_digits_quick.yaml for "
                                             "digits, else configs/retrain_cifar10.yaml)")
    ap.add_argument("--retrain-set", action="append", default=[], metavar="KEY=VALUE",
                    help="override for both retrains (repeatable), e.g. train.batch_size=64")
    ap.add_argument("--acc-tolerance", type=float, default=1.0,
                    help="top-1 points FP-NAS may trail PARSEC by and still count as equal accuracy")
    ap.add_argument("--fresh", action="store_true", help="delete earlier searches and retrains in OUT first")
    add_small_flag(ap)
    ap.add_argument("overrides", nargs="*", metavar="key=value")
    return ap


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The arguments; --small: digits, the digits config cut to a few steps, one retrain epoch."""
    ap = build_parser()
    args = parse_small(ap, argv, {"data": "digits", "config": str(CONFIGS / "fpnas_digits_quick.yaml"),
                                  "retrain_epochs": 1})
    if args.data is None:
        ap.error("--data is required (or --small)")
    if args.small:  # the tiny settings first: what the command line gives still wins
        args.overrides = [*TINY_FPNAS_OVERRIDES, *args.overrides]
        args.retrain_set = [*TINY_RETRAIN_SETS, *args.retrain_set]
    return args


# ---------------------------------------------------------------------------- search and retrain
def search_config(args: argparse.Namespace, mode: str) -> FpnasConfig:
    """The config file, the user's overrides, then what the bench fixes: data, mode, run dir."""
    fixed = [f"data.path={args.data}", f"search.mode={mode}", f"run.dir={Path(args.out) / mode}"]
    return load_config(FpnasConfig, args.config, [*args.overrides, *fixed])


def run_search(args: argparse.Namespace, mode: str) -> dict[str, Any]:
    cfg = search_config(args, mode)
    res, timing = resumable(Path(cfg.run.dir), cfg,
                            lambda resume: ProbabilisticSearch(cfg, resume=resume).fit())
    best = res["most_likely"]
    return {"samples": res["samples_total"], "samples_search": res["samples_search"], "steps": res["steps"],
            "wall_seconds": res["search_seconds"],
            "cpu_seconds": timing["cpu_seconds"], "mflops": best["mflops"], "arch": best["arch"],
            "distribution": res["distribution"], "reused": timing["reused"], "run_dir": cfg.run.dir}


def retrain_config(args: argparse.Namespace, mode: str) -> RetrainConfig:
    """The retrain config of the Arch the `mode` search found: the same settings for both modes."""
    out = Path(args.out)
    fixed = [f"data.path={args.data}", f"run.dir={out / f'retrain_{mode}'}"]
    if args.retrain_epochs is not None:
        fixed.append(f"train.epochs={args.retrain_epochs}")
    return load_config(RetrainConfig, retrain_config_path(args), [*args.retrain_set, *fixed],
                       data={"arch": str(out / mode)})


def run_retrain(args: argparse.Namespace, mode: str) -> dict[str, Any]:
    """Train the Arch the `mode` search found from scratch."""
    from supernas.train import retrain  # lazily: only when retraining

    cfg = retrain_config(args, mode)
    res, timing = resumable(Path(cfg.run.dir), cfg,
                            lambda resume: retrain(cfg.arch, config=cfg, resume=resume))
    return {"top1": res["top1"], "top1_ema": res.get("top1_ema"), "retrain_seconds": res["seconds"],
            "retrain_epochs": res["epochs"], "retrain_reused": timing["reused"]}


# ---------------------------------------------------------------------------- the comparison
def ratio(num: float | None, den: float | None) -> float | None:
    return None if num is None or not den else num / den


def compare(rows: Mapping[str, Mapping[str, Any]], acc_tolerance: float) -> dict[str, Any]:
    """The ratios FP-NAS / PARSEC, and whether the issue's targets are met."""
    fp, pc = rows["fpnas"], rows["parsec"]
    reduction = 100.0 * (1.0 - fp["samples"] / pc["samples"])
    # After the warm-up, whose uniform draws are the same in both modes: where adaptive K acts.
    reduction_search = 100.0 * (1.0 - fp["samples_search"] / pc["samples_search"]) if pc["samples_search"] else None
    wall, cpu = ratio(pc["wall_seconds"], fp["wall_seconds"]), ratio(pc["cpu_seconds"], fp["cpu_seconds"])
    acc_diff = fp["top1"] - pc["top1"] if "top1" in fp and "top1" in pc else None
    targets = {"samples_reduction": reduction >= TARGET_SAMPLES_REDUCTION, "wall_speedup": wall >= TARGET_SPEEDUP,
               "equal_accuracy": None if acc_diff is None else acc_diff >= -acc_tolerance}
    # met: all three hold; unknown (None) while the accuracy is not measured and the rest hold
    met = False if False in targets.values() else (None if None in targets.values() else True)
    return {"samples_reduction_pct": round(reduction, 2),
            "samples_reduction_search_pct": None if reduction_search is None else round(reduction_search, 2), "wall_speedup": round(wall, 3),
            "cpu_speedup": None if cpu is None else round(cpu, 3),
            "top1_diff": None if acc_diff is None else round(acc_diff, 2), "targets": {**targets, "met": met}}


def format_table(rows: Mapping[str, Mapping[str, Any]], cmp: Mapping[str, Any]) -> str:
    lines = [f"{'mode':<8}{'samples':>9}{'steps':>7}{'wall s':>10}{'CPU s':>10}{'MFLOPs':>9}{'top-1':>8}"]
    for mode, r in rows.items():
        lines.append(f"{mode:<8}{r['samples']:>9}{r['steps']:>7}{r['wall_seconds']:>10.1f}"
                     f"{cell(r['cpu_seconds'], '.1f'):>10}{r['mflops']:>9.2f}{cell(r.get('top1'), '.2f'):>8}")
    t = cmp["targets"]
    yes = {True: "yes", False: "NO", None: "not measured"}
    lines += [
        f"samples reduction {cmp['samples_reduction_pct']:.1f} % (target >= {TARGET_SAMPLES_REDUCTION:.0f} %: "
        f"{yes[t['samples_reduction']]}); after the warm-up {cell(cmp['samples_reduction_search_pct'], '.1f', ' %')}",
        f"wall speed-up {cmp['wall_speedup']:.2f}x (target >= {TARGET_SPEEDUP}x: {yes[t['wall_speedup']]}); "
        f"CPU speed-up {cell(cmp['cpu_speedup'], '.2f', 'x')}",
        f"top-1 difference FP-NAS - PARSEC {cell(cmp['top1_diff'], '+.2f')} points "
        f"(equal accuracy: {yes[t['equal_accuracy']]})",
        f"targets met: {yes[t['met']]}",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    threads = args.threads if args.threads is not None else (0 if torch.cuda.is_available() else 1)
    if threads:
        torch.set_num_threads(threads)
    out = Path(args.out).expanduser()
    args.out = str(out)
    if args.fresh:
        for name in (*MODES, *(f"retrain_{m}" for m in MODES)):
            shutil.rmtree(out / name, ignore_errors=True)
    rows = {mode: run_search(args, mode) for mode in MODES}
    if args.retrain_epochs != 0:
        for mode in MODES:
            rows[mode].update(run_retrain(args, mode))
    cmp = compare(rows, args.acc_tolerance)
    report = {"settings": {"data": args.data, "config": args.config, "overrides": args.overrides,
                           "retrain_set": args.retrain_set, "retrain_epochs": args.retrain_epochs,
                           "threads": torch.get_num_threads(), "acc_tolerance": args.acc_tolerance,
                           "torch": torch.__version__, "argv": sys.argv[1:]},
              **rows, "comparison": cmp}
    out.mkdir(parents=True, exist_ok=True)
    (out / "fpnas_vs_parsec.json").write_text(json.dumps(report, indent=2) + "\n")
    print(format_table(rows, cmp))
    print(f"written: {out / 'fpnas_vs_parsec.json'}")
    return report


if __name__ == "__main__":
    main()
