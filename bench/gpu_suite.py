"""Everything worth measuring on a GPU, in one command (under 8 minutes on one H100):

    python bench/gpu_suite.py [--data CIFAR10_DIR_OR_ARCHIVE] [--out DIR]
    python bench/gpu_suite.py --small --device cpu      # the same code on tiny settings (a test runs it)

Writes DIR/gpu_suite.json and DIR/gpu_suite.md (a table for docs/performance.md) and prints the
table. Sections, each timed on its own so that one failure (an out-of-memory, say) is recorded
and the rest still run:

- sandwich: stage 1's training step (largest + 2 sampled + smallest, in-place distillation) on
  `attentivenas` with 1000 classes, the batch loaded at 224 px and resized per Arch; images/s and
  peak memory at batch 64 for fp32 and bf16 autocast, NCHW and channels_last, uniform and
  BestUp-3 (loss) sampling; then the largest batch that fits in 80 GiB;
- static: the same Archs as extracted static models trained in turn (no weight sharing), and
  torchvision's mobilenet_v3_large at the same batch (a static net of similar cost that cuDNN
  serves well, with cudnn.benchmark on as a static net runs);
- stage 2: BN re-calibration (64 batches) + evaluation, in Archs per minute, on batches held on
  the device (the GPU's share; loading is the `loader` section's); latency-table build time; an
  FP-NAS weight step and architecture step on `fpnas-l0`;
- loader: images/s of the training loader (224 px, RandomResizedCrop + flip + AutoAugment) per
  number of workers, on the CIFAR-10 JPEG tree when `--data` gives it (see bench/loader.py);
- reference (with `--reference PATH`, the AttentiveNAS reference code's archive or folder): its
  own sandwich step and ours interleaved in one process on the same batch and Archs, fp32 and
  bf16, at batch 64 and at its config's per-GPU batch of 32 (bench/reference_step.py alone);
- the device, torch / CUDA / cuDNN versions and the cudnn.benchmark setting of each section.

Steps run back to back without a host synchronisation in between (as training runs); the clock
is read after a synchronisation at both ends. Every step draws its Archs from fixed seeds, so all
settings train the same Archs.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from common import (PRECISIONS, Settings, add_small_flag, batch_of, loader_throughput, make_trainer,
                    reference_side_by_side, reference_table, resolve_data, sampled_archs, tiny_image_tree)
from supernas import CostModel, get_space
from supernas.evaluation import Evaluator, LatencyTable
from supernas.fpnas import ProbabilisticSearch
from supernas.nn import SuperNet
from supernas.runtime import is_out_of_memory, label_smoothing_ce, soft_target_ce
from supernas.train import WeightParts

GiB = 2**30
KERNELS = {"pointwise_kernel": "gemm", "depthwise_kernel": "native"}
GRAPHS = {"cuda_graphs": True}
MEMORY_CAP = 80 * GiB  # "the largest batch that fits in 80 GB", also on a larger card


# ---------------------------------------------------------------------------- timing
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        sync(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / GiB if device.type == "cuda" else None


def timed_steps(step: Callable[[int], None], device: torch.device, warmup: int, steps: int,
                limit_s: float) -> tuple[float, int]:
    """Seconds per step over up to `steps` steps after up to `warmup`, back to back (no host sync
    between steps); the warm-up and the timed steps each stop early, after one step, once
    `limit_s` has passed (a slow path is measured, not waited out)."""
    t0 = time.perf_counter()
    for i in range(warmup):
        step(i)
        if time.perf_counter() - t0 > limit_s:
            break
    sync(device)
    t0 = time.perf_counter()
    done = 0
    while done < steps:
        step(warmup + done)
        done += 1
        if time.perf_counter() - t0 > limit_s:
            break
    sync(device)
    return (time.perf_counter() - t0) / done, done


# ---------------------------------------------------------------------------- sections
def sandwich(s: Settings, device: torch.device, precision: str, sampler: str, batch: int, tmp: str,
             steps: int | None = None, warmup: int | None = None, recompute: bool = False,
             train: dict | None = None) -> dict[str, Any]:
    """Images/s and peak memory of the product's sandwich step; `train`: other train.* settings."""
    t = make_trainer(s, device, precision, sampler, batch, tmp, recompute, train)
    x, y = batch_of(s, device, batch, t.channels_last)
    attentive = sampler == "attentive"

    def step(i: int) -> None:
        # attentive: k = 3 candidates per sampled Arch, drawn by the product's sampler (None)
        t.train_step(x, y, None if attentive else sampled_archs(t.space, i))

    reset_peak(device)
    try:
        sec, n = timed_steps(step, device, s.warmup if warmup is None else warmup,
                             s.steps if steps is None else steps, s.limit_s)
    finally:
        t.close()
    return {"images_per_s": batch / sec, "step_ms": 1e3 * sec, "steps": n, "peak_gib": peak_gib(device),
            "batch": batch, "cudnn_benchmark": torch.backends.cudnn.benchmark,
            **({"graphed_passes": t.passes.replays, "graphs_failed": t.passes.failed} if t.passes.enabled else {})}


def max_batch(s: Settings, device: torch.device, precision: str, tmp: str, at_64: dict[str, Any],
              recompute: bool = False) -> dict[str, Any]:
    """The largest batch (a multiple of 16) whose sandwich step fits in 80 GiB: memory grows about
    linearly with the batch, so two measured batches predict it; then it is tried (and lowered by
    10 % on an out-of-memory, up to three times)."""
    if device.type != "cuda" or not at_64.get("peak_gib"):
        return {"skipped": "needs a GPU and the batch-64 figure"}
    total = torch.cuda.get_device_properties(device).total_memory
    cap = min(MEMORY_CAP, total)
    if total > MEMORY_CAP:
        torch.cuda.set_per_process_memory_fraction(MEMORY_CAP / total, torch.cuda.current_device())
    try:
        b2 = 2 * at_64["batch"]
        at_2 = sandwich(s, device, precision, "uniform", b2, tmp, steps=1, warmup=1, recompute=recompute)
        per_image = (at_2["peak_gib"] - at_64["peak_gib"]) * GiB / (b2 - at_64["batch"])
        fixed = at_64["peak_gib"] * GiB - per_image * at_64["batch"]
        guess = int((0.94 * cap - fixed) / per_image) // 16 * 16
        tries = []
        for _ in range(4):
            try:
                r = sandwich(s, device, precision, "uniform", guess, tmp, steps=3, warmup=1, recompute=recompute)
                return {**r, "predicted_gib_per_image": per_image / GiB, "tries": tries + [guess]}
            except RuntimeError as e:
                if not is_out_of_memory(e):
                    raise
                tries.append(guess)
                guess = int(guess * 0.9) // 16 * 16
                torch.cuda.empty_cache()
        return {"error": f"out of memory at batches {tries}"}
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, torch.cuda.current_device())
        torch.cuda.empty_cache()


def static_in_turn(s: Settings, device: torch.device, precision: str, batch: int, tmp: str) -> dict[str, Any]:
    """The sandwich's Archs as extracted static models, each with its own optimizer, trained in
    turn on the same batch: what the step costs without weight sharing."""
    t = make_trainer(s, device, precision, "uniform", batch, tmp)
    x, y = batch_of(s, device, batch, t.channels_last)
    space = t.space
    n = s.warmup + s.steps
    models = []
    for i in range(n):  # extracted up front, so the timed loop runs training only
        per_step = []
        for a in [space.largest()] + sampled_archs(space, i) + [space.smallest()]:
            m = t.net.extract(a).train()
            if t.channels_last:
                m = m.to(memory_format=torch.channels_last)
            per_step.append((m, torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, nesterov=True)))
        models.append(per_step)

    def step(i: int) -> None:
        teacher = None
        for m, opt in models[i]:
            xi = F.interpolate(x, size=(m.resolution,) * 2, mode="bicubic", align_corners=False) \
                if m.resolution != s.input else x
            with torch.autocast(t.device.type, dtype=t.amp_dtype, enabled=t.amp_dtype is not None):
                out = m(xi)
                loss = label_smoothing_ce(out, y, 0.1) if teacher is None else soft_target_ce(out, teacher)
            loss.backward()
            if teacher is None:
                teacher = torch.softmax(out.detach().float(), -1)
            opt.step()
            opt.zero_grad(set_to_none=True)

    reset_peak(device)
    sec, done = timed_steps(step, device, s.warmup, s.steps, s.limit_s)
    return {"images_per_s": batch / sec, "step_ms": 1e3 * sec, "steps": done, "peak_gib": peak_gib(device),
            "batch": batch, "cudnn_benchmark": torch.backends.cudnn.benchmark}


def mobilenet(s: Settings, device: torch.device, precision: str, batch: int) -> dict[str, Any]:
    from torchvision.models import mobilenet_v3_large

    amp, cl = PRECISIONS[precision]
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True  # fixed shapes: how a static net is trained
    try:
        m = mobilenet_v3_large(num_classes=s.classes).to(device).train()
        if cl:
            m = m.to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, nesterov=True)
        x, y = batch_of(s, device, batch, cl)

        def step(i: int) -> None:
            with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                loss = label_smoothing_ce(m(x), y, 0.1)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        reset_peak(device)
        sec, done = timed_steps(step, device, s.warmup, s.steps, s.limit_s)
        return {"images_per_s": batch / sec, "step_ms": 1e3 * sec, "steps": done, "peak_gib": peak_gib(device),
                "batch": batch, "cudnn_benchmark": True}
    finally:
        torch.backends.cudnn.benchmark = before


def stage2(s: Settings, device: torch.device, precision: str) -> dict[str, Any]:
    """BN re-calibration on `bn_batches` batches and top-1 on `eval_batches`, per Arch, by the
    product's Evaluator, over synthetic batches already on the device."""
    from torch.utils.data import TensorDataset


    amp, cl = PRECISIONS[precision]
    g = torch.Generator(device=device).manual_seed(0)
    n_cal, n_eval = s.bn_batches * s.eval_batch, s.eval_batches * s.eval_batch
    images = torch.randn(n_cal + n_eval, 3, s.input, s.input, device=device, generator=g)
    labels = torch.randint(0, s.classes, (n_cal + n_eval,), device=device, generator=g)

    class Data:  # the two splits the Evaluator reads
        calibration = TensorDataset(images[:n_cal], labels[:n_cal])
        search = TensorDataset(images[n_cal:], labels[n_cal:])
        val = search

    net = SuperNet(get_space(s.space), s.classes).to(device)
    if cl:
        net = net.to(memory_format=torch.channels_last)
    ev = Evaluator(net, Data(), device, bn_batches=s.bn_batches, batch_size=s.eval_batch, split="search",
                   amp_dtype=amp, channels_last=cl)
    space = net.space
    reset_peak(device)  # not the sections' before
    ev.evaluate(space.sample(rng=99))  # warm-up
    archs = [space.sample(rng=i) for i in range(s.archs_stage2)]
    sync(device)
    t0 = time.perf_counter()
    ev.evaluate_many(archs)
    sync(device)
    sec = (time.perf_counter() - t0) / len(archs)
    mflops = CostModel(space, s.classes).mflops(archs)
    return {"archs_per_min": 60.0 / sec, "s_per_arch": sec, "bn_batches": s.bn_batches, "batch": s.eval_batch,
            "eval_batches": s.eval_batches, "mean_mflops": float(mflops.mean()), "peak_gib": peak_gib(device)}


def latency_table(s: Settings, device: torch.device) -> dict[str, Any]:

    space = get_space(s.space)
    table = LatencyTable(space, s.classes, batch_size=1, device=device)
    idx = space.to_indices([space.sample(rng=i) for i in range(s.latency_archs)])
    t0 = time.perf_counter()
    ms = table.latency_indices(idx)
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    table.latency_indices(idx)
    warm = time.perf_counter() - t0
    return {"layers": len(table.entries), "build_s": build, "archs": s.latency_archs,
            "warm_archs_per_s": s.latency_archs / max(warm, 1e-9), "mean_ms": float(ms.mean())}


def fpnas_steps(s: Settings, device: torch.device, precision: str, tmp: str) -> dict[str, Any]:
    """One weight step and one architecture step of FP-NAS with K Archs, through the product's
    ProbabilisticSearch (its data, the built-in digits, are not loaded: synthetic batches)."""

    amp, _ = PRECISIONS[precision]
    cfg = {"run": {"device": str(device), "amp": "bf16" if amp else "fp32", "dir": tmp},
           "space": s.fpnas_space, "data": {"path": None, "image_size": 8, "search_size": 0.2},
           "train": {"batch_size": 4, "workers": 0}, "log": {"progress": False, "tensorboard": False}}
    net = SuperNet(s.fpnas_space, s.classes).to(device)  # its own head: the suite's synthetic classes
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    search = ProbabilisticSearch(cfg, parts=WeightParts(net, optimizer,
                                                        torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)))
    x, y = batch_of(s, device, s.batch, False)
    idx = search.distribution.sample(s.fpnas_k, search.gen)
    reset_peak(device)
    weight_s, n1 = timed_steps(lambda i: search.weight_step(x, y, idx), device, s.warmup, s.steps, s.limit_s)
    arch_s, n2 = timed_steps(lambda i: search.arch_step(x, y, idx), device, s.warmup, s.steps, s.limit_s)
    return {"k": s.fpnas_k, "batch": s.batch, "weight_step_ms": 1e3 * weight_s, "arch_step_ms": 1e3 * arch_s,
            "steps": min(n1, n2), "peak_gib": peak_gib(device)}


def loader(s: Settings, data: str | None) -> dict[str, Any]:
    if not data:
        return {"skipped": "no --data given"}
    with resolve_data(data) as folder:
        return loader_throughput(folder, s.loader_workers, s.loader_images, image_size=224 if s.max_batch else 32,
                                 batch=s.batch)


# ---------------------------------------------------------------------------- report
def environment(device: torch.device) -> dict[str, Any]:
    env = {"torch": torch.__version__, "python": platform.python_version(), "device": str(device),
           "cpu_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()}
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        env.update({"gpu": p.name, "gpu_memory_gib": round(p.total_memory / GiB, 1), "cuda": torch.version.cuda,
                    "cudnn": torch.backends.cudnn.version(), "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
                    "tf32_cudnn": torch.backends.cudnn.allow_tf32})
    return env


def s_batch(res: dict[str, Any]) -> str:
    return str(res["settings"]["batch"])


def fmt(v: Any, digits: int = 1) -> str:
    return "-" if v is None else f"{v:,.{digits}f}" if isinstance(v, float) else str(v)


def table(res: dict[str, Any]) -> str:
    env = res["environment"]
    lines = [f"Device: {env.get('gpu', env['device'])}; torch {env['torch']}, CUDA {env.get('cuda', '-')}, "
             f"cuDNN {env.get('cudnn', '-')}; {env['cpu_cores']} CPU cores.", "",
             "| training step | batch | images/s | step ms | peak GiB | cudnn.benchmark |",
             "| --- | ---: | ---: | ---: | ---: | --- |"]
    for name, r in res.get("train", {}).items():
        if "error" in r or "skipped" in r:
            lines.append(f"| {name} | | {r.get('error', r.get('skipped'))} | | | |")
            continue
        if "first_ms" in r:  # per-step timings
            lines.append(f"| {name} | {s_batch(res)} | {fmt(r['images_per_s_last'])} (last third) | "
                         f"{fmt(r['first_ms'])} first third, {fmt(r['last_ms'])} last third of {r['steps']} | | "
                         f"{'on' if r['cudnn_benchmark'] else 'off'} |")
            continue
        if r.get("graphs_failed"):  # the row ran eager: say so where the figure is
            name += f" (capture failed, eager: {r['graphs_failed'][:80]})"
        lines.append(f"| {name} | {r['batch']} | {fmt(r['images_per_s'])} | {fmt(r['step_ms'])} | "
                     f"{fmt(r['peak_gib'], 2)} | {'on' if r['cudnn_benchmark'] else 'off'} |")
    st = res.get("stage2", {})
    lines += ["", "| stage 2 and FP-NAS | figure |", "| --- | --- |"]
    for name, r in st.items():
        if "error" in r or "skipped" in r:
            lines.append(f"| {name} | {r.get('error', r.get('skipped'))} |")
        elif "archs_per_min" in r:
            lines.append(f"| {name} | {fmt(r['archs_per_min'])} Archs/min ({r['bn_batches']} calibration batches "
                         f"+ {r['eval_batches']} eval batches of {r['batch']}, mean {fmt(r['mean_mflops'])} MFLOPs) |")
        elif "build_s" in r:
            lines.append(f"| {name} | {r['layers']} layers timed in {fmt(r['build_s'])} s; a warm table scores "
                         f"{fmt(r['warm_archs_per_s'], 0)} Archs/s |")
        elif "weight_step_ms" in r:
            lines.append(f"| {name} | K={r['k']}, batch {r['batch']}: weight step {fmt(r['weight_step_ms'])} ms, "
                         f"architecture step {fmt(r['arch_step_ms'])} ms |")
    for name, r in res.get("profile", {}).items():
        lines += ["", f"Profile, {name} (device time by kernel):", ""]
        lines += [f"- {row}" for row in r.get("top", [r.get("error", r.get("skipped", ""))])]
    for name, r in res.get("reference", {}).items():
        lines += ["", f"Against the reference ({name}):", ""]
        lines += [reference_table(r)] if "precisions" in r else [f"- {r.get('error', r.get('skipped', ''))}"]
    ld = res.get("loader", {})
    if "per_workers" in ld:
        lines += ["", f"Loader ({ld['what']}):", "", "| workers | images/s |", "| ---: | ---: |"]
        lines += [f"| {w} | {fmt(v)} |" for w, v in ld["per_workers"].items()]
    return "\n".join(lines) + "\n"


def run_section(res: dict[str, Any], group: str, name: str, fn: Callable[[], dict[str, Any]],
                deadline: float) -> None:
    if time.perf_counter() > deadline:  # keep inside the caller's time: what is left is named, not run
        res.setdefault(group, {})[name] = {"skipped": "past --deadline-s"}
        return
    t0 = time.perf_counter()
    try:
        r = fn()
    except Exception as e:  # recorded, and the suite goes on: one failure must not cost the whole run
        r = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"}
        traceback.print_exc()
    r["seconds"] = round(time.perf_counter() - t0, 1)
    res.setdefault(group, {})[name] = r
    print(f"[{time.strftime('%H:%M:%S')}] {group}/{name}: "
          + ", ".join(f"{k}={fmt(v, 3) if isinstance(v, float) else v}" for k, v in r.items()), flush=True)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def per_step_times(s: Settings, device: torch.device, precision: str, run_dir: str, steps: int,
                   benchmark: bool) -> dict[str, Any]:
    """Each step timed alone (synchronised), new Archs every step: how a cost that falls as shapes
    recur (cudnn.benchmark's tuning) evolves."""
    t = make_trainer(s, device, precision, "uniform", s.batch, run_dir)
    torch.backends.cudnn.benchmark = benchmark  # after the trainer, which applies run.cudnn_benchmark
    x, y = batch_of(s, device, s.batch, t.channels_last)
    times, t_end = [], time.perf_counter() + 2 * s.limit_s
    for i in range(steps):
        sync(device)
        t0 = time.perf_counter()
        t.train_step(x, y, sampled_archs(t.space, 700 + i))
        sync(device)
        times.append(time.perf_counter() - t0)
        if time.perf_counter() > t_end:
            break
    tenth = max(1, len(times) // 3)
    return {"steps": len(times), "first_ms": 1e3 * sum(times[:tenth]) / tenth,
            "last_ms": 1e3 * sum(times[-tenth:]) / tenth, "images_per_s_last": s.batch * tenth / sum(times[-tenth:]),
            "all_ms": [round(1e3 * v, 1) for v in times], "cudnn_benchmark": torch.backends.cudnn.benchmark}


def profile_step(s: Settings, device: torch.device, precision: str, run_dir: str, batch: int) -> dict[str, Any]:
    """The kernels that take the time in one sandwich step (its Archs run once before, so that
    per-shape set-up is not what is profiled)."""
    from torch.profiler import ProfilerActivity, profile

    t = make_trainer(s, device, precision, "uniform", batch, run_dir)
    x, y = batch_of(s, device, batch, t.channels_last)
    middle = sampled_archs(t.space, 0)

    def step() -> None:
        t.train_step(x, y, middle)
    step()
    sync(device)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        step()
        sync(device)
    rows = []
    for e in prof.key_averages():
        dev = getattr(e, "self_device_time_total", None)
        dev = getattr(e, "self_cuda_time_total", 0) if dev is None else dev
        rows.append((dev, e.key, e.count))
    total = sum(r[0] for r in rows)
    rows.sort(reverse=True)
    return {"batch": batch, "device_ms_total": total / 1e3,
            "top": [f"{ms / 1e3:.1f} ms x{n}: {name[:90]}" for ms, name, n in rows[:14]]}


def sections(s: Settings, device: torch.device, data: str | None, tmp: str, reference: str | None = None):
    """(group, name, thunk) in the order they run: what the issue's targets need first, so that a
    run cut short by the deadline still answers them."""
    run = lambda name: str(Path(tmp) / name.replace(" ", "_"))  # noqa: E731
    fp_name = s.fpnas_space if isinstance(s.fpnas_space, str) else s.fpnas_space["name"]
    out = []
    for p in ("fp32", "bf16+cl"):
        out.append(("train", f"sandwich {p} uniform", lambda p=p: sandwich(s, device, p, "uniform", s.batch, run(p))))
    if reference:  # the ratio against the reference, measured side by side, comes right after
        small = dict(classes=s.classes, resolutions=(32, 48)) if s.space != "attentivenas" else {}
        for batch in (s.batch, s.batch // 2):  # ours at 64, and the reference's own 32 per GPU
            out.append(("reference", f"batch {batch}", lambda b=batch: reference_side_by_side(
                reference, device, b, steps=s.steps, warmup=s.warmup, rounds=3 if s.max_batch else 1,
                precisions=["fp32", "bf16"], image_size=s.input, **small)))
    # the paths without a per-shape plan (issue 23 items 2 and 3): 1x1 convolutions as matrix products,
    # PyTorch's own depthwise kernel, and the largest and smallest Archs replayed from CUDA graphs
    paths = [("bf16", "gemm + native depthwise", KERNELS), ("bf16+cl", "gemm + native depthwise", KERNELS),
             ("fp32", "gemm + native depthwise", KERNELS), ("fp32", "cuda graphs", GRAPHS)]
    if device.type != "cuda":  # a CPU has neither kernel nor graphs: one row keeps the code running
        paths = []
    for p, kind, train in paths + [("bf16", "gemm + native depthwise + cuda graphs", {**KERNELS, **GRAPHS})]:
        out.append(("train", f"sandwich {p} uniform, {kind}", lambda p=p, kind=kind, train=train: sandwich(
            s, device, p, "uniform", s.batch, run(p + kind.replace(" ", "")), train=train)))
    for p in ("fp32", "bf16+cl"):  # the memory target: BatchNorm + activation storing only its input
        out.append(("train", f"sandwich {p} uniform, recompute_bn_act",
                    lambda p=p: sandwich(s, device, p, "uniform", s.batch, run("r" + p), recompute=True)))
    for p in ("fp32", "bf16"):  # NCHW: channels_last costs static models the same per-shape plans
        out.append(("train", f"extracted static, in turn {p}",
                    lambda p=p: static_in_turn(s, device, p, s.batch, run("s" + p))))
    for p in ("fp32", "bf16+cl"):
        out.append(("train", f"torchvision mobilenet_v3_large {p}", lambda p=p: mobilenet(s, device, p, s.batch)))
    for p in ("fp32", "bf16+cl"):
        out.append(("train", f"sandwich {p} BestUp-3",
                    lambda p=p: sandwich(s, device, p, "attentive", s.batch, run("a" + p))))
    if s.max_batch:
        for p in ("fp32", "bf16+cl"):
            out.append(("train", f"sandwich {p} uniform, largest batch in 80 GiB",
                        lambda p=p: max_batch(s, device, p, run("m" + p), _measured.get(f"sandwich {p} uniform", {}))))
        # half the memory per image: twice the batch, over which the host's per-step cost spreads
        out.append(("train", "sandwich fp32 uniform, recompute_bn_act, largest batch in 80 GiB",
                    lambda: max_batch(s, device, "fp32", run("mr"),
                                      _measured.get("sandwich fp32 uniform, recompute_bn_act", {}), recompute=True)))
    for p in ("fp32", "bf16+cl"):
        out.append(("stage2", f"BN re-calibration + evaluation {p}", lambda p=p: stage2(s, device, p)))
    out.append(("stage2", "latency table (batch 1)", lambda: latency_table(s, device)))
    for p in ("fp32", "bf16"):  # the FP-NAS search runs NCHW
        out.append(("stage2", f"FP-NAS {fp_name} steps {p}", lambda p=p: fpnas_steps(s, device, p, run("f" + p))))
    out.append(("loader", "loader", lambda: loader(s, data)))
    # diagnostics: the other precisions, where the time goes, and what cudnn.benchmark costs
    for p in ("bf16", "fp32+cl"):
        out.append(("train", f"sandwich {p} uniform", lambda p=p: sandwich(s, device, p, "uniform", s.batch, run(p))))
    for p in ("fp32", "bf16+cl"):
        out.append(("profile", f"sandwich {p}", lambda p=p: profile_step(s, device, p, run("p" + p), s.batch)))

    def tuned():
        try:
            return per_step_times(s, device, "fp32", run("t"), 3, benchmark=True)
        finally:
            torch.backends.cudnn.benchmark = False
    out.append(("train", "sandwich fp32 uniform, cudnn.benchmark on, per step", tuned))
    # does a long run get faster as layer shapes recur (a bounded set: ~900 distinct layers)?
    out.append(("train", "sandwich fp32 uniform, per step over a longer run",
                lambda: per_step_times(s, device, "fp32", run("l"), 4 * s.steps * s.warmup, benchmark=False)))
    return out


_measured: dict[str, dict[str, Any]] = {}  # results so far, for the sections that build on them


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default=".", help="folder for gpu_suite.json and gpu_suite.md")
    ap.add_argument("--data", default=None, help="CIFAR-10 JPEG tree (or its .tar.gz) for the loader section")
    add_small_flag(ap)
    ap.add_argument("--only", default=None, help="comma-separated groups: train,stage2,loader")
    ap.add_argument("--deadline-s", type=float, default=420.0, help="start no section after this many seconds")
    ap.add_argument("--skip", default="", help="';'-separated section names (as printed) not to run")
    ap.add_argument("--reference", default=None, help="the AttentiveNAS reference code (its .tar.gz or folder): "
                    "time its sandwich step beside ours (the 'reference' group)")
    return ap


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The arguments (--small is read by `Settings`: tiny sizes for every section)."""
    return build_parser().parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    s = Settings(args.small)
    groups = set((args.only or "train,reference,stage2,profile,loader").split(","))
    res: dict[str, Any] = {"environment": environment(device), "settings": {k: str(v) for k, v in vars(s).items()}}
    print(json.dumps(res["environment"]), flush=True)
    t_all = time.perf_counter()
    deadline = t_all + args.deadline_s
    _measured.clear()
    with tempfile.TemporaryDirectory() as tmp:
        skip = {k.strip() for k in args.skip.split(";")}
        data = args.data or (str(tiny_image_tree(Path(tmp) / "images")) if args.small else None)
        for group, name, fn in sections(s, device, data, tmp, args.reference):
            if group in groups and name not in skip:
                run_section(res, group, name, fn, deadline)
                _measured[name] = res[group][name]
    res["loader"] = res.get("loader", {}).get("loader", {})
    res["seconds"] = round(time.perf_counter() - t_all, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_suite.json").write_text(json.dumps(res, indent=2, default=str) + "\n")
    md = table(res)
    (out / "gpu_suite.md").write_text(md)
    print(md)
    print(f"suite: {res['seconds']} s; {out / 'gpu_suite.json'}")
    return res


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
