"""Stage 2 with every Arch's batches kept against reading them again per Arch (Evaluator keep_bytes).

Every Arch is re-calibrated on the same seeded calibration images and scored on the same split, so
the Evaluator reads, augments and moves those batches once and keeps them when they fit; with
`keep_bytes=0` it reads them again for each Arch (as before). The two are timed in turns on the
same Archs, and the figures must agree to the bit.

    python bench/stage2_batches.py --data CIFAR10_TREE [--archs 6] [--bn-batches 8] [--batch-size 64]
    python bench/stage2_batches.py --small       # the built-in digits, seconds (a test runs it)
"""
from __future__ import annotations

import argparse
import time
from typing import Sequence

import torch

from common import add_small_flag, parse_small
from supernas.data import build_datasets
from supernas.evaluation import Evaluator
from supernas.nn import SuperNet


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="digits", help="dataset path (an image folder tree such as CIFAR-10's JPEGs)")
    ap.add_argument("--space", default="attentivenas-tiny")
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--search-size", type=int, default=512, help="images of the split each Arch is scored on")
    ap.add_argument("--archs", type=int, default=6)
    ap.add_argument("--bn-batches", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=2, help="turns of (read again, kept)")
    ap.add_argument("--device", default="cpu")
    add_small_flag(ap)
    return ap


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The arguments; --small: digits at 12 px, 2 Archs, 2 calibration batches of 16, one round."""
    return parse_small(build_parser(), argv, {"data": "digits", "image_size": 12, "search_size": 64, "archs": 2,
                                              "bn_batches": 2, "batch_size": 16, "rounds": 1})


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    args = parse_args(argv)
    data = build_datasets({"path": args.data, "image_size": args.image_size, "search_size": args.search_size})
    torch.manual_seed(0)
    net = SuperNet(args.space, data.num_classes).to(args.device)
    archs = net.space.sample(rng=7, n=args.archs)
    print(f"{args.space} on {data.describe()}, {args.archs} Archs, {args.bn_batches} calibration batches of "
          f"{args.batch_size}, {args.device}, {torch.get_num_threads()} threads")
    rates: dict[str, list[float]] = {"read again": [], "kept": []}
    figures = {}
    for _ in range(args.rounds):
        for name, keep in (("read again", 0), ("kept", None)):
            ev = Evaluator(net, data, args.device, bn_batches=args.bn_batches, batch_size=args.batch_size,
                           keep_bytes=keep)
            t = time.perf_counter()
            figures[name] = [ev.evaluate(a)["top1"] for a in archs]
            rates[name].append(60 * len(archs) / (time.perf_counter() - t))
    same = figures["read again"] == figures["kept"]
    best = {name: max(r) for name, r in rates.items()}
    for name, r in rates.items():
        print(f"{name:>10}: {best[name]:.1f} Archs/min (best of {len(r)})")
    print(f"ratio kept / read again: {best['kept'] / best['read again']:.2f}; top-1 the same: {same}")
    if not same:
        raise SystemExit("the kept batches gave other figures than batches read again")
    return best
if __name__ == "__main__":
    main()
