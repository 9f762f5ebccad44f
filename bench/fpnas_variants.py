"""Variants of one FP-NAS search side by side (e.g. search.weight_step or search.cost_mode): per
variant and search seed, the found Arch (MFLOPs, distance to search.cost_target), the supernet's
quality and the Arch's top-1 after a short retrain from scratch.

    python bench/fpnas_variants.py --data /tmp/data/cifar10 --config src/supernas/configs/fpnas_digits_quick.yaml \
        --out /tmp/fv/weight_step --seeds 0 1 \
        --variant uniform:search.weight_step=uniform --variant importance:search.weight_step=importance \
        train.epochs=12 data.train_subset=5000 ...
    python bench/fpnas_variants.py --small --out /tmp/fv_small     # the whole bench in seconds (a test runs it)

A variant is NAME:key=value[,key=value...], applied over the shared key=value overrides. Each
search lives in OUT/NAME_s<seed>, its retrain in OUT/retrain_NAME_s<seed> (retrain seed from the
retrain config, the same for every variant); like bench/fpnas_vs_parsec.py, finished runs are
reused, interrupted ones resumed, changed settings refused.

The supernet's quality: after the search, its weights score `--eval-archs` Archs drawn uniformly
from the space (one fixed set for every variant and seed) and the found Arch, each after BN
re-calibration (supernas.search.Evaluator), on the first `--eval-images` images of the test split:
mean cross-entropy and top-1. The training loss is the mean `loss` of the search's last epoch.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from common import (CONFIGS, TINY_FPNAS_OVERRIDES, TINY_RETRAIN_SETS, add_small_flag, cell, parse_small, resumable,
                    retrain_config_path)
from supernas.config import FpnasConfig, RetrainConfig, load_config
from supernas.fpnas import ProbabilisticSearch


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", help="dataset path (ImageFolder train/ + test/) or 'digits' (required but with "
                                   "--small)")
    ap.add_argument("--config", default=str(CONFIGS / "fpnas_digits_quick.yaml"), help="search config")
    ap.add_argument("--out", required=True, help="output directory of the bench")
    ap.add_argument("--variant", action="append", metavar="NAME:KEY=VALUE[,KEY=VALUE]",
                    help="a variant: its name and its overrides (repeat for each variant)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="search seeds (run.seed)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    ap.add_argument("--retrain-epochs", type=int, help="epochs of each retrain (0: no retrain)")
    ap.add_argument("--retrain-config", help="retrain config (default as bench/fpnas_vs_parsec.py)")
    ap.add_argument("--retrain-set", action="append", default=[], metavar="KEY=VALUE",
                    help="override for every retrain (repeatable)")
    ap.add_argument("--eval-archs", type=int, default=16, help="random Archs scoring the supernet")
    ap.add_argument("--eval-images", type=int, default=2000, help="test images of the supernet scores")
    add_small_flag(ap)
    ap.add_argument("overrides", nargs="*", metavar="key=value")
    return ap


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The arguments; --small: two variants of the digits search cut to a few steps, one seed, one
    retrain epoch, a few scoring Archs and images."""
    ap = build_parser()
    args = parse_small(ap, argv, {"data": "digits", "retrain_epochs": 1, "eval_archs": 2, "eval_images": 250,
                                  "variant": ["uniform:search.weight_step=uniform",
                                              "importance:search.weight_step=importance"]})
    if args.data is None or not args.variant:
        ap.error("--data and at least one --variant are required (or --small)")
    if args.small:  # the tiny settings first: what the command line gives still wins
        args.overrides = [*TINY_FPNAS_OVERRIDES, *args.overrides]
        args.retrain_set = [*TINY_RETRAIN_SETS, *args.retrain_set]
    args.variants = {}
    for v in args.variant:
        name, _, sets = v.partition(":")
        if not name or not name.isidentifier() or name in args.variants:
            ap.error(f"--variant {v!r}: give a new NAME (letters, digits, _) then ':' and its key=value overrides")
        args.variants[name] = [s for s in sets.split(",") if s]
    return args


def search_config(args: argparse.Namespace, name: str, seed: int) -> FpnasConfig:
    fixed = [f"data.path={args.data}", f"run.seed={seed}", f"run.dir={Path(args.out) / f'{name}_s{seed}'}"]
    return load_config(FpnasConfig, args.config, [*args.overrides, *args.variants[name], *fixed])


def last_epoch_loss(run_dir: Path) -> float:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "loss" in r and "epoch" in r]
    last = max(r["epoch"] for r in rows)
    return float(np.mean([r["loss"] for r in rows if r["epoch"] == last]))


def supernet_scores(cfg: FpnasConfig, result: dict[str, Any], args: argparse.Namespace) -> dict[str, float]:
    """Loss and top-1 of the trained supernet on test images: random Archs and the found one."""
    from supernas.data import build_datasets
    from supernas.evaluation import Evaluator
    from supernas.nn import SuperNet
    from supernas.runtime import load_checkpoint
    from supernas.spaces import get_space

    run_dir = Path(cfg.run.dir)
    cache = run_dir / "bench_supernet_scores.json"
    settings = {"eval_archs": args.eval_archs, "eval_images": args.eval_images}
    if cache.is_file() and json.loads(cache.read_text())["settings"] == settings:
        return json.loads(cache.read_text())["scores"]
    data = build_datasets(cfg.data)
    space = get_space(result["space_definition"] or cfg.space)
    net = SuperNet(space, data.num_classes)
    net.load_state_dict(load_checkpoint(run_dir)["model"])
    batch = 250
    ev = Evaluator(net, data, "cpu", bn_batches=8, batch_size=batch, split="val",
                   max_batches=max(1, args.eval_images // batch))
    randoms = space.sample(rng=12345, n=args.eval_archs)
    rnd = ev.evaluate_many(randoms)
    found = ev.evaluate(space.arch(result["most_likely"]["arch"]))
    scores = {"random_loss": float(np.mean([r["loss"] for r in rnd])),
              "random_top1": float(np.mean([r["top1"] for r in rnd])),
              "found_loss": found["loss"], "found_top1_inherited": found["top1"]}
    cache.write_text(json.dumps({"settings": settings, "scores": scores}) + "\n")
    return scores


def retrain_config(args: argparse.Namespace, name: str, seed: int) -> RetrainConfig:
    """The retrain config of the Arch that variant `name`'s search of `seed` found."""
    fixed = [f"data.path={args.data}", f"run.dir={Path(args.out) / f'retrain_{name}_s{seed}'}"]
    if args.retrain_epochs is not None:
        fixed.append(f"train.epochs={args.retrain_epochs}")
    return load_config(RetrainConfig, retrain_config_path(args), [*args.retrain_set, *fixed],
                       data={"arch": str(Path(args.out) / f"{name}_s{seed}")})


def run_one(args: argparse.Namespace, name: str, seed: int) -> dict[str, Any]:
    from supernas.train import retrain

    cfg = search_config(args, name, seed)
    run_dir = Path(cfg.run.dir)
    res, _ = resumable(run_dir, cfg, lambda resume: ProbabilisticSearch(cfg, resume=resume).fit())
    s = cfg.search
    best = res["most_likely"]
    row: dict[str, Any] = {
        "variant": name, "seed": seed, "mflops": best["mflops"], "expected_mflops": res["expected_mflops"],
        "cost_target": s.cost_target if s.beta else None, "samples": res["samples_total"],
        "search_seconds": res["search_seconds"], "train_loss_last_epoch": last_epoch_loss(run_dir),
        "arch": best["arch"], **supernet_scores(cfg, res, args)}
    if row["cost_target"]:
        row["target_gap_pct"] = 100.0 * (best["mflops"] - s.cost_target) / s.cost_target
    if args.retrain_epochs != 0:
        rcfg = retrain_config(args, name, seed)
        rres, _ = resumable(Path(rcfg.run.dir), rcfg, lambda resume: retrain(rcfg.arch, config=rcfg, resume=resume))
        row["top1"] = rres["top1"]
    return row


def summary(rows: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Per variant, the mean over seeds of every numeric figure."""
    out: dict[str, dict[str, float | None]] = {}
    for name in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == name]
        keys = [k for k, v in mine[0].items() if isinstance(v, (int, float)) and k != "seed"]
        out[name] = {k: (float(np.mean([r[k] for r in mine])) if all(r.get(k) is not None for r in mine) else None)
                     for k in keys}
    return out


def format_table(rows: list[dict[str, Any]]) -> str:
    head = (f"{'variant':<14}{'seed':>5}{'MFLOPs':>8}{'gap %':>7}{'E[MF]':>7}{'loss':>7}{'rnd loss':>9}"
            f"{'rnd top1':>9}{'inh top1':>9}{'top-1':>7}{'wall s':>8}")
    lines = [head]
    for r in rows:
        lines.append(f"{r['variant']:<14}{r['seed']:>5}{r['mflops']:>8.3f}{cell(r.get('target_gap_pct'), '+.1f'):>7}"
                     f"{r['expected_mflops']:>7.3f}{r['train_loss_last_epoch']:>7.3f}{r['random_loss']:>9.3f}"
                     f"{r['random_top1']:>9.2f}{r['found_top1_inherited']:>9.2f}{cell(r.get('top1'), '.2f'):>7}"
                     f"{r['search_seconds']:>8.0f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out = str(Path(args.out).expanduser())
    rows = [run_one(args, name, seed) for seed in args.seeds for name in args.variants]
    report = {"settings": {"argv": sys.argv[1:], "threads": torch.get_num_threads(), "torch": torch.__version__},
              "runs": rows, "mean_over_seeds": summary(rows)}
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "fpnas_variants.json").write_text(json.dumps(report, indent=2) + "\n")
    print(format_table(rows))
    print(f"written: {Path(args.out) / 'fpnas_variants.json'}")
    return report


if __name__ == "__main__":
    main()
