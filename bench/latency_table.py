"""How well and how fast the latency lookup table estimates measured latency.

    python bench/latency_table.py [--space attentivenas-tiny] [--num-classes 10] [--n 30] [--threads 1]
    python bench/latency_table.py --space attentivenas --num-classes 1000 --repeats 10
    python bench/latency_table.py --small    # seconds (a test runs it)

On the current device it
  * builds a LatencyTable from `--build-archs` random Archs (plus the smallest and largest), timed,
  * estimates `--n` other random Archs with it and measures them end to end (extracted from a
    randomly initialised SuperNet, `measure_latency`), timed,
  * prints Pearson r, Kendall tau and the mean ratio table / end-to-end, and how many Archs per
    second `latency_indices` scores once the table is warm against end-to-end measurement.

The table and `measure_end_to_end` take the fastest of interleaved runs: on a machine busy with
other work a forward pass of a few ms is often preempted while a layer's fraction of a ms rarely
is. A second comparison times each layer and model alone, not interleaved (its fastest run).
Last, two tables are built one after the other as `supernas search --cost latency` builds one (`build_latency_table`:
interleaved rounds, the per-Arch overhead fitted end to end) and compared with each other and with
the end-to-end figures. The targets (Kendall tau >= 0.9 between the two tables, a mean ratio
within 10 % of end to end) hold for a quiet 2-core machine; figures taken while other processes
ran are not those conditions.
"""
from __future__ import annotations

import argparse
import time
from typing import Sequence

import numpy as np
import torch

from common import add_small_flag, parse_small
from supernas import get_space
from supernas.evaluation import (WINDOW_S, LatencyTable, build_latency_table, compare_latency, measure_end_to_end,
                                 time_forward)
from supernas.nn import SuperNet


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--space", default="attentivenas-tiny")
    ap.add_argument("--num-classes", type=int, default=10)
    ap.add_argument("--n", type=int, default=30, help="Archs compared with end-to-end measurement")
    ap.add_argument("--build-archs", type=int, default=2000, help="random Archs whose layers build the table")
    ap.add_argument("--check-archs", type=int, default=8,
                    help="Archs measured end to end to fit a built table's per-Arch overhead")
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--window", type=float, default=WINDOW_S,
                    help="seconds of timed runs each set of interleaved rounds spans at least")
    ap.add_argument("--threads", type=int, help="CPU threads (default: torch's); part of the device description")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    add_small_flag(ap)
    return ap


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The arguments; --small: a table from 8 Archs compared with 3 measured ones, two timed runs each."""
    return parse_small(build_parser(), argv, {"n": 3, "build_archs": 8, "check_archs": 3, "warmup": 1, "repeats": 2,
                                              "device": "cpu", "window": 0.0})


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    space = get_space(args.space)
    table = LatencyTable(space, args.num_classes, args.batch_size, args.warmup, args.repeats, args.device,
                         window_s=args.window)
    print(f"{space.name}, {args.num_classes} classes, batch {args.batch_size}, warm-up {args.warmup}, "
          f"fastest of {args.repeats}+ interleaved runs over {args.window:g}+ s; {table.device_name}; "
          f"torch {torch.__version__}")

    build = np.concatenate([space.sample_indices(args.seed, args.build_archs),
                            space.to_indices([space.smallest(), space.largest()])])
    t = time.perf_counter()
    lo, hi = table.latency_indices(build)[-2:]
    build_s = time.perf_counter() - t
    print(f"table: {table.measured} layers measured in {build_s:.1f} s ({build_s / table.measured * 1e3:.0f} ms "
          f"a layer); smallest Arch {lo:.3f} ms, largest {hi:.3f} ms")

    archs = space.sample(args.seed + 1, args.n)
    before = table.measured
    est = table.latency(archs)
    t = time.perf_counter()
    e2e = measure_end_to_end(space, archs, args.num_classes, args.batch_size, args.warmup, args.repeats,
                             args.device, args.seed, window_s=args.window)
    e2e_rate = args.n / (time.perf_counter() - t)
    cmp = compare_latency(est, e2e)
    print(f"{args.n} other Archs ({table.measured - before} new layers): table {est.mean():.3f} ms, "
          f"end to end {e2e.mean():.3f} ms on average")
    _report("interleaved", cmp)
    _report("not interleaved", _compare_alone(space, archs, args))
    _repeatability(space, archs, e2e, args)

    warm = space.sample_indices(args.seed + 2, 20_000)
    table.latency_indices(warm)  # any layer not seen yet is measured here, outside the timing
    best = min(_seconds(lambda: table.latency_indices(warm)) for _ in range(3))
    rate = len(warm) / best
    print(f"speed: latency_indices {rate:,.0f} Archs/s (warm table), end to end {e2e_rate:.2f} Archs/s "
          f"(extract + measure): {rate / e2e_rate:,.0f}x")


def _repeatability(space, archs, e2e, args) -> None:
    """Two tables built one after the other as a search builds one (layers in interleaved rounds,
    the fastest of their runs, the per-Arch overhead fitted end to end), against each other and
    against the end-to-end figures above."""
    tables = []
    for i in range(2):
        t = time.perf_counter()
        tables.append(build_latency_table(LatencyTable(space, args.num_classes, args.batch_size, args.warmup,
                                                       args.repeats, args.device, window_s=args.window),
                                          args.seed, build_archs=args.build_archs, check_archs=args.check_archs))
        print(f"built table {i + 1} in {time.perf_counter() - t:.1f} s: {tables[-1].describe_fit()}")
    first, second = (table.latency(archs) for table in tables)
    _report("table 1 vs 2", compare_latency(first, second))
    for i, estimate in enumerate((first, second), 1):
        _report(f"table {i} vs e2e", compare_latency(estimate, e2e))
    # the same Archs end to end once more: how far the machine's speed moved while the tables were built
    later = measure_end_to_end(space, archs, args.num_classes, args.batch_size, args.warmup, args.repeats,
                               args.device, args.seed, window_s=args.window)
    _report("e2e again vs e2e", compare_latency(later, e2e))
    _report("table 2 vs e2e again", compare_latency(second, later))
    print("targets, on a quiet 2-core machine: Kendall tau >= 0.9 between the two tables and a mean ratio within "
          "10% of end to end; figures taken while other processes ran are not those conditions")


def _report(what: str, cmp: dict) -> None:
    print(f"{what:>13}: Pearson r {cmp['pearson_r']:.3f}  Kendall tau {cmp['kendall_tau']:.3f}  "
          f"mean ratio table / end-to-end {cmp['mean_ratio']:.3f}")


def _compare_alone(space, archs, args) -> dict:
    """Table of each layer's fastest run against each whole model's, each timed alone (not interleaved)."""
    table = LatencyTable(space, args.num_classes, args.batch_size, args.warmup, args.repeats, args.device,
                         timer=lambda m, x: time_forward(m, x, args.warmup, args.repeats)[0])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        net = SuperNet(space, args.num_classes).eval()
    e2e = []
    for arch in archs:
        model = net.extract(arch).to(table.device).eval()
        x = torch.randn(args.batch_size, 3, model.resolution, model.resolution, device=table.device)
        e2e.append(time_forward(model, x, args.warmup, args.repeats)[0])
    return compare_latency(table.latency(archs), e2e)


def _seconds(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
