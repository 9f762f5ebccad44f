"""How fast Archs are scored: the analytic cost model vs FlopCounterMode on extracted models.

    python bench/cost_model.py [--spaces attentivenas fpnas-l0 ...] [--n 200000] [--torch-archs 3]
    python bench/cost_model.py --small       # seconds (a test runs it)

Per space it prints Archs scored per second by
  * the analytic model (`CostModel.costs_indices`, tabulated; the table build is timed apart),
  * the same formulas evaluated on every Arch's full layout (`supernas.spaces.layout_costs`, the former path),
  * extraction from a SuperNet + a batch-1 forward under FlopCounterMode (CPU, and on the meta
    device where only shapes are computed), on a few random Archs,
and checks on those Archs that the analytic figures equal what PyTorch counts.
"""
from __future__ import annotations

import argparse
import time
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from common import add_small_flag, parse_small
from supernas import get_space
from supernas.nn import SuperNet
from supernas.spaces import CostModel, layout_costs


def best_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Best wall time of `repeats` calls: the least disturbed by other work on the machine."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def torch_count(net: SuperNet, arch, device: str) -> tuple[int, int]:
    """(FLOPs / 2, parameters) of the extracted model, as PyTorch counts them."""
    model = net.extract(arch)
    params = sum(p.numel() for p in model.parameters())
    model = model.to(device)
    x = torch.zeros(1, 3, model.resolution, model.resolution, device=device)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return counter.get_total_flops() // 2, params


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--spaces", nargs="+", default=["attentivenas", "fpnas-l0", "fpnas-l1", "fpnas-l2"])
    ap.add_argument("--n", type=int, default=200_000, help="Archs scored per timed call")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--torch-archs", type=int, default=3, help="Archs extracted and counted by PyTorch")
    ap.add_argument("--num-classes", type=int, default=1000)
    add_small_flag(ap)
    return ap


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The arguments; --small: two spaces, 200 Archs per call, one repeat, one Arch through FlopCounterMode."""
    return parse_small(build_parser(), argv, {"spaces": ["attentivenas-tiny", "fpnas-l0"], "n": 200, "repeats": 1, "torch_archs": 1})


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)

    print(f"torch {torch.__version__}, numpy {np.__version__}, {torch.get_num_threads()} threads; "
          f"{args.n:,} Archs per analytic call, best of {args.repeats}; "
          f"{args.torch_archs} Archs through FlopCounterMode")
    header = (f"{'space':<13} {'dims':>4} {'build s':>7} {'analytic/s':>12} {'formulas/s':>11} "
              f"{'1 Arch us':>9} {'torch cpu/s':>11} {'torch meta/s':>12} {'speedup':>9} {'agree':>5}")
    print(header)
    print("-" * len(header))
    for name in args.spaces:
        space = get_space(name)
        idx = space.sample_indices(0, args.n)

        cm = CostModel(get_space(space.definition), args.num_classes)  # a new space: its table is not cached yet
        t = time.perf_counter()
        cm.costs_indices(idx[:1])  # tabulates the space
        build = time.perf_counter() - t
        analytic = args.n / best_seconds(lambda: cm.costs_indices(idx), args.repeats)
        formulas = args.n / best_seconds(lambda: layout_costs(space, idx, args.num_classes), args.repeats)
        singles = min(1000, args.n)
        one = best_seconds(lambda: [cm.costs_indices(idx[i]) for i in range(singles)], args.repeats) / singles

        net = SuperNet(space, args.num_classes).eval()
        archs = space.sample(rng=1, n=args.torch_archs)
        counts, speed = {}, {}
        for device in ("cpu", "meta"):
            t = time.perf_counter()
            counts[device] = [torch_count(net, a, device) for a in archs]
            speed[device] = len(archs) / (time.perf_counter() - t)
        mflops, params = cm.costs_indices(space.to_indices(archs))
        agree = all(c == [(round(m * 1e6), int(p)) for m, p in zip(mflops, params)] for c in counts.values())
        print(f"{name:<13} {len(space.dims):>4} {build:>7.2f} {analytic:>12,.0f} {formulas:>11,.0f} "
              f"{one * 1e6:>9.1f} {speed['cpu']:>11.2f} {speed['meta']:>12.2f} {analytic / speed['cpu']:>9.1e} "
              f"{'yes' if agree else 'NO':>5}")
    print("speedup: analytic Archs/s over extraction + FlopCounterMode on CPU")


if __name__ == "__main__":
    main()
