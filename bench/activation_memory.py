"""What `train.recompute_bn_act` saves and costs: the bytes a supernet's forward stores for
backward, and the time of forward + backward, with and without it, in the same run.

    python bench/activation_memory.py [--space attentivenas] [--batch 4] [--input 224]
                                      [--precision fp32,bf16] [--repeats 3] [--device cpu]
                                      [--step-peak] [--host-steps 10] [--host-input 32]
    python bench/activation_memory.py --small          # seconds on a CPU (a test runs it)

The largest Arch of the space (the sandwich's largest member, whose activations set a step's
peak) on random images loaded at `--input` pixels and resized to its resolution. Stored bytes
are what the forward leaves allocated (every allocation and free recorded by the profiler on a
CPU, the allocator's count on a GPU), scaled to batch 64, the accelerator issue's reference
batch; a GPU step's peak adds the weights, their gradients and momentum, and cuDNN's workspace.
Times are medians of steps taken in turns. `--step-peak`: the most bytes live at once in one
whole sandwich step of the product's trainer at `--batch` (a GPU's peak memory). Then the
sandwich step at a tiny input (`--host-input`), where its time is the host's work that a GPU
step waits on.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import tempfile
import time
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from common import Settings, add_small_flag, batch_of, make_trainer, parse_small, sampled_archs  # the GPU suite's
from supernas import get_space
from supernas.nn import SuperNet


def stored_bytes(forward: Callable[[], torch.Tensor], device: torch.device) -> int:
    """Bytes `forward()` leaves allocated on `device`: what autograd stores for its backward (and
    the small output). Counted by the CUDA allocator, or on the CPU by the profiler's record of
    every allocation and free."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        out = forward()
        return torch.cuda.memory_allocated(device) - before
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = forward()
    del out
    return sum(e.self_cpu_memory_usage for e in prof.key_averages())


@contextlib.contextmanager
def sandwich_trainer(space: "str | dict", batch: int, size: int, device: torch.device):
    """The GPU suite's stage-1 trainer (sandwich of 4: largest + 2 uniform + smallest, in-place
    distillation; a 1000-way supernet of `space`, fp32, SGD) and its batch of random images at
    `size` px: yields (trainer, images, labels)."""
    s = Settings(small=False)
    s.space, s.input = space, size
    with tempfile.TemporaryDirectory() as run_dir:
        t = make_trainer(s, device, "fp32", "uniform", batch, run_dir)
        try:
            yield (t, *batch_of(s, device, batch, channels_last=False))
        finally:
            t.close()


def step_peak_bytes(space_name: str, batch: int, size: int, device: torch.device) -> dict[bool, int]:
    """The most bytes live at once during one whole sandwich step, above those before it (the
    weights' gradients, the largest Arch's stored activations, the teacher's predictions, ...),
    with and without the setting. On a CPU from the profiler's allocations in order, operator by
    operator (a peak inside one operator is not seen); on a GPU the allocator's peak."""
    peaks = {}
    with sandwich_trainer(space_name, batch, size, device) as (t, x, y):
        for on in (False, True):
            t.net.set_recompute_bn_act(on)
            t.train_step(x, y, sampled_archs(t.space, 0))  # the momentum buffers exist from here
            if device.type == "cuda":
                torch.cuda.synchronize(device)
                torch.cuda.reset_peak_memory_stats(device)
                before = torch.cuda.memory_allocated(device)
                t.train_step(x, y, sampled_archs(t.space, 1))
                peaks[on] = torch.cuda.max_memory_allocated(device) - before
                continue
            from torch.profiler import ProfilerActivity, profile

            with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
                t.train_step(x, y, sampled_archs(t.space, 1))
            live = peak = 0
            for e in sorted((e for e in prof.events() if e.self_cpu_memory_usage), key=lambda e: e.time_range.start):
                live += e.self_cpu_memory_usage
                peak = max(peak, live)
            peaks[on] = peak
    return peaks


def host_bound_steps(space_name: str, size: int, steps: int, device: torch.device) -> dict[bool, float]:
    """Median seconds of the product's sandwich step at `size` px and batch 2, with the space's
    resolutions set to `size`: the work is then mostly the host's (operator dispatch, autograd,
    Python), which a GPU step waits on. With and without the setting, in turns, new Archs each step."""
    definition = copy.deepcopy(get_space(space_name).definition)
    definition["resolution"], definition["name"] = [size], f"{space_name}-{size}px"
    times: dict[bool, list[float]] = {False: [], True: []}
    with sandwich_trainer(definition, 2, size, device) as (t, x, y):
        for i in range(steps + 2):
            for on in (False, True):
                t.net.set_recompute_bn_act(on)
                start = time.perf_counter()
                t.train_step(x, y, sampled_archs(t.space, i))
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if i >= 2:  # two warm-up steps each
                    times[on].append(time.perf_counter() - start)
    return {on: statistics.median(v) for on, v in times.items()}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--space", default="attentivenas")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--input", type=int, default=224)
    ap.add_argument("--precision", default="fp32,bf16")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--step-peak", action="store_true", help="also the peak of a whole sandwich step at --batch")
    ap.add_argument("--host-steps", type=int, default=10, help="sandwich steps at --host-input px; 0: skip")
    ap.add_argument("--host-input", type=int, default=32)
    add_small_flag(ap)
    return ap


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The arguments; --small: attentivenas-tiny at 32 px, batch 1, one repeat, fp32, the step peak
    and two host-bound steps."""
    return parse_small(build_parser(), argv, {"space": "attentivenas-tiny", "batch": 1, "input": 32,
                                              "precision": "fp32", "repeats": 1, "step_peak": True,
                                              "host_steps": 1, "host_input": 16})


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    device = torch.device(args.device)
    space = get_space(args.space)
    net = SuperNet(space, 1000).to(device).train()
    arch = space.largest()
    x = torch.randn(args.batch, 3, args.input, args.input, device=device)
    y = torch.randint(0, 1000, (args.batch,), device=device)
    print(f"{args.space}, largest Arch, batch {args.batch}, input {args.input} px, {device}, "
          f"{torch.get_num_threads()} threads")
    print("| precision | recompute_bn_act | stored GiB | at batch 64 | fwd+bwd s | ratio to off |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for precision in args.precision.split(","):
        amp = torch.bfloat16 if precision == "bf16" else None

        def forward() -> torch.Tensor:
            with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                return F.cross_entropy(net(x, arch).float(), y)

        def step(on: bool) -> float:
            net.set_recompute_bn_act(on)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t = time.perf_counter()
            forward().backward()
            net.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            return time.perf_counter() - t

        step(False), step(True)  # warm-up
        times: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.repeats):
            for on in (False, True):
                times[on].append(step(on))
        size = {}
        for on in (False, True):
            net.set_recompute_bn_act(on)
            size[on] = stored_bytes(forward, device)
        for on in (False, True):
            gib = size[on] / 2**30
            t = statistics.median(times[on])
            print(f"| {precision} | {'on' if on else 'off'} | {gib:.3f} | {gib * 64 / args.batch:.2f} | {t:.3f} | "
                  f"stored {size[on] / size[False]:.3f}, time {t / statistics.median(times[False]):.3f} |")
    if args.step_peak:
        peak = step_peak_bytes(args.space, args.batch, args.input, device)
        print(f"\nwhole sandwich step (fp32, batch {args.batch}): peak live GiB off {peak[False] / 2**30:.3f}, "
              f"on {peak[True] / 2**30:.3f} (at batch 64: {peak[False] * 64 / args.batch / 2**30:.2f}, "
              f"{peak[True] * 64 / args.batch / 2**30:.2f}), ratio {peak[True] / peak[False]:.3f}")
    if args.host_steps:
        host = host_bound_steps(args.space, args.host_input, args.host_steps, device)
        print(f"\nsandwich step at {args.host_input} px, batch 2 (the host's work), median of {args.host_steps}: "
              f"off {host[False]:.3f} s, on {host[True]:.3f} s, ratio {host[True] / host[False]:.3f}")


if __name__ == "__main__":
    main()
