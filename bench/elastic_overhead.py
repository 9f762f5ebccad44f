"""What weight sharing costs in training: forward + backward of `supernet(x, arch)` over that of
the model `supernet.extract(arch)`, for the smallest and largest Archs of a space.

    python bench/elastic_overhead.py [--space attentivenas] [--device cpu|cuda] [--amp bf16]
                                     [--channels-last] [--batch 8] [--profile]
    python bench/elastic_overhead.py --small   # seconds (a test runs it)

Both run in train mode (batch statistics, running-stat updates) on the same images, already at
the Arch's resolution so that the supernet does no resize. Each step is forward, a mean loss,
backward and setting gradients to None; after warm-up steps the median of timed steps is kept,
the two models taking turns so that load from elsewhere weighs on both alike.
`--profile` prints the operators where each spends its time (torch.profiler).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from typing import Callable, Sequence

import torch
from torch import nn

from common import add_small_flag, parse_small
from supernas import get_space
from supernas.nn import SuperNet


def step_fn(module: nn.Module, forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
            amp: torch.dtype | None) -> Callable[[], None]:
    def step() -> None:
        ctx = torch.autocast(x.device.type, dtype=amp) if amp is not None else contextlib.nullcontext()
        with ctx:
            loss = forward(x).float().mean()
        loss.backward()
        module.zero_grad(set_to_none=True)
    return step


def median_seconds(steps: list[Callable[[], None]], device: torch.device, warmup: int,
                   repeats: int) -> list[float]:
    """Median step time of each of `steps`, timed in turns so that other load on the machine
    weighs on all of them alike."""
    for _ in range(warmup):
        for step in steps:
            step()
    times: list[list[float]] = [[] for _ in steps]
    for _ in range(repeats):
        for step, out in zip(steps, times):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t = time.perf_counter()
            step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            out.append(time.perf_counter() - t)
    return [statistics.median(t) for t in times]


def profile(step: Callable[[], None], device: torch.device, title: str, rows: int) -> None:
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    step()
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(3):
            step()
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(f"\n--- {title}: top operators over 3 steps (self time)")
    print(prof.key_averages().table(sort_by=key, row_limit=rows))


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--space", default="attentivenas")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--amp", choices=["none", "bf16"], default="none")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--num-classes", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--archs", nargs="+", choices=["smallest", "largest"], default=["smallest", "largest"])
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--profile-rows", type=int, default=18)
    add_small_flag(ap)
    return ap


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The arguments; --small: attentivenas-tiny, batch 2, one timed step each, and the profile."""
    return parse_small(build_parser(), argv, {"space": "attentivenas-tiny", "batch": 2, "warmup": 1, "repeats": 1, "num_classes": 10, "profile": True, "profile_rows": 3})


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    amp = torch.bfloat16 if args.amp == "bf16" else None
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    torch.manual_seed(0)
    space = get_space(args.space)
    net = SuperNet(space, args.num_classes).to(device=device, memory_format=fmt).train()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"space {space.name}, device {device}, amp {args.amp}, channels_last {args.channels_last}, "
          f"batch {args.batch}, median of {args.repeats} steps after {args.warmup}, "
          f"{torch.get_num_threads()} CPU threads, load average {load:.2f}, torch {torch.__version__}")
    header = f"{'arch':<9} {'res':>4} {'supernet ms':>11} {'extracted ms':>12} {'ratio':>6}"
    print(header)
    print("-" * len(header))
    for label in args.archs:
        arch = space.smallest() if label == "smallest" else space.largest()
        model = net.extract(arch).to(device=device, memory_format=fmt).train()
        res = model.resolution
        x = torch.randn(args.batch, 3, res, res, device=device).contiguous(memory_format=fmt)
        sup = step_fn(net, lambda t: net(t, arch), x, amp)
        ext = step_fn(model, model, x, amp)
        t_sup, t_ext = median_seconds([sup, ext], device, args.warmup, args.repeats)
        print(f"{label:<9} {res:>4} {t_sup * 1e3:>11.1f} {t_ext * 1e3:>12.1f} {t_sup / t_ext:>6.2f}")
        if args.profile:
            profile(sup, device, f"supernet, {label}", args.profile_rows)
            profile(ext, device, f"extracted, {label}", args.profile_rows)
    print("ratio: supernet time over extracted-model time (target <= 1.15)")


if __name__ == "__main__":
    main()
