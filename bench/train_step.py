"""Images/s and peak memory of one sandwich step (largest + sampled + smallest, in-place
distillation) through the supernet, against the same Archs as extracted static models trained
one after another on the same batch. Prints the ratio (target on CPU: at most 1.2).

    python bench/train_step.py                         # CPU: attentivenas-tiny-free defaults below
    python bench/train_step.py --device cuda --batch 64 --input 224   # the issue's GPU setting (fp32)
    python bench/train_step.py --device cuda --amp bf16 --channels-last
    python bench/train_step.py --small                 # seconds (a test runs it)
"""
from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from typing import Sequence

import torch
import torch.nn.functional as F

from common import add_small_flag, parse_small
from supernas import get_space
from supernas.runtime import label_smoothing_ce, soft_target_ce
from supernas.nn import SuperNet
from supernas.train import SupernetTrainer, WeightParts


def peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--space", default="attentivenas")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--input", type=int, default=224, help="size at which the batch is loaded")
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--subnets", type=int, default=4)
    ap.add_argument("--amp", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0)
    add_small_flag(ap)
    return ap


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The arguments; --small: attentivenas-tiny at 32 px, batch 2, one warm-up and one timed step."""
    return parse_small(build_parser(), argv, {"space": "attentivenas-tiny", "batch": 2, "input": 32, "classes": 10, "steps": 1, "warmup": 1})


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cfg = {"run": {"device": args.device, "amp": args.amp, "channels_last": args.channels_last,
                   "dir": tempfile.mkdtemp(prefix="train-step-bench-")},
           "space": args.space, "data": {"path": "digits", "image_size": 8},
           "train": {"num_arch_training": args.subnets, "batch_size": args.batch, "drop_path": 0.0, "dropout": 0.0,
                     "workers": 0},  # batches are made here: no loader workers
           "sampler": {"kind": "uniform"}, "log": {"progress": False, "tensorboard": False}}
    # the bench measures the paper's 1000-way head, not the digits' 10: the trainer is given its supernet
    net = SuperNet(args.space, args.classes).to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    t = SupernetTrainer(cfg, parts=WeightParts(net, optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer,
                                                                                               lambda _: 1.0)))
    if t.channels_last:
        net.to(memory_format=torch.channels_last)  # in place: the optimizer keeps the same parameters
    space = get_space(args.space)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, args.input, args.input, generator=g).to(device)
    if t.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, args.classes, (args.batch,), generator=g).to(device)
    steps = [[space.sample(rng=1000 * s + i) for i in range(args.subnets - 2)]
             for s in range(args.warmup + args.steps)]

    def supernet_step(middle):
        t.train_step(x, y, middle)

    statics = {}

    def static_step(middle):
        archs = [space.largest()] + middle + [space.smallest()]
        teacher = None
        for a in archs:
            m, opt = statics[a]
            xi = F.interpolate(x, size=(m.resolution,) * 2, mode="bicubic", align_corners=False) \
                if m.resolution != args.input else x
            with torch.autocast(t.device.type, dtype=t.amp_dtype, enabled=t.amp_dtype is not None):
                out = m(xi)
                loss = label_smoothing_ce(out, y) if teacher is None else soft_target_ce(out, teacher)
            loss.backward()
            if teacher is None:
                teacher = torch.softmax(out.detach().float(), -1)
            opt.step()
            opt.zero_grad(set_to_none=True)

    def timed(step_fn, prepare=None):
        times = []
        reset_peak(device)
        base = peak_mb(device)
        for i, middle in enumerate(steps):
            if prepare:
                prepare(middle)
            sync(device)
            t0 = time.perf_counter()
            step_fn(middle)
            sync(device)
            if i >= args.warmup:
                times.append(time.perf_counter() - t0)
        return statistics.median(times), peak_mb(device) - (0 if device.type == "cuda" else base)

    def prepare(middle):
        statics.clear()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        for a in [space.largest()] + middle + [space.smallest()]:
            m = t.net.extract(a).train()
            if t.channels_last:
                m = m.to(memory_format=torch.channels_last)
            statics[a] = (m, torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, nesterov=True))

    sup_s, sup_mb = timed(supernet_step)
    sta_s, sta_mb = timed(static_step, prepare)
    print(f"space {args.space}, device {device}, amp {args.amp}, channels_last {t.channels_last}, batch {args.batch} "
          f"at {args.input} px, {args.subnets} subnets per step (uniform), {args.classes} classes, "
          f"median of {args.steps} steps after {args.warmup}, torch {torch.__version__}")
    print(f"{'':<22}{'images/s':>10}{'step ms':>10}{'peak MB':>10}")
    print(f"{'supernet (sandwich)':<22}{args.batch / sup_s:>10.1f}{sup_s * 1e3:>10.1f}{sup_mb:>10.0f}")
    print(f"{'extracted, in turn':<22}{args.batch / sta_s:>10.1f}{sta_s * 1e3:>10.1f}{sta_mb:>10.0f}")
    print(f"ratio supernet/extracted step time: {sup_s / sta_s:.2f} (target <= 1.2 on CPU)")
    if device.type != "cuda":
        print("peak MB on CPU: growth of the process's max RSS (the static run follows the supernet run)")


if __name__ == "__main__":
    main()
