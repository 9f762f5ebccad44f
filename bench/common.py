"""What several bench scripts share, so that no bench imports another: the stage-1 trainer and
synthetic batches of the GPU suite (used by bench/activation_memory.py), the training-loader
measurement (bench/loader.py and the suite's loader section), the resumable runs of the FP-NAS
benches, and the tiny inputs of their `--small` modes (tests/test_benches.py runs every bench so).

Benches import only this module and supernas's public API (names in a subpackage's `__all__`),
so that a refactor of the package shows in tests/test_benches.py first.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import math
import os
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterator, Sequence

import torch
import yaml

import supernas
from supernas import get_space
from supernas.config import SupernetConfig, load_config
from supernas.data import DataConfig, build_datasets
from supernas.nn import SuperNet
from supernas.runtime import ResumableLoader, ResumableSampler
from supernas.spaces import to_reference
from supernas.train import SupernetTrainer, WeightParts

CONFIGS = Path(supernas.__file__).resolve().parent / "configs"


def add_small_flag(ap: argparse.ArgumentParser) -> None:
    """--small, as every bench takes it: its own code end to end on tiny settings, in seconds on a
    CPU (what tests/test_benches.py runs); the figures it prints mean nothing."""
    ap.add_argument("--small", action="store_true", help="tiny settings, seconds on a CPU (the test's mode; "
                    "the figures mean nothing)")


def parse_small(ap: argparse.ArgumentParser, argv: Sequence[str] | None, small: dict[str, Any]) -> argparse.Namespace:
    """`ap`'s arguments; with --small, the values of `small` replace the defaults (what the command
    line gives still wins)."""
    args = ap.parse_args(argv)
    if args.small:
        ap.set_defaults(**small)
        args = ap.parse_args(argv)
    return args


# ---------------------------------------------------------------------------- GPU suite: trainer and batches
# ---------------------------------------------------------------------------- settings
class Settings:
    def __init__(self, small: bool):
        self.space = "attentivenas-tiny" if small else "attentivenas"
        # small: the per-block space of the digits quick-start config (FP-NAS's choices, two stages)
        self.fpnas_space: Any = quick_fpnas_space() if small else "fpnas-l0"
        self.classes = 10 if small else 1000
        self.input = 32 if small else 224
        self.batch = 4 if small else 64
        self.warmup = 1 if small else 3
        self.steps = 2 if small else 10
        self.limit_s = 20.0 if small else 25.0
        self.bn_batches = 2 if small else 64
        self.eval_batch = 4 if small else 256
        self.eval_batches = 1 if small else 8
        self.archs_stage2 = 2 if small else 4
        self.latency_archs = 4 if small else 16
        self.fpnas_k = 2 if small else 8
        self.loader_images = 16 if small else 3072
        self.loader_workers = [0, 1] if small else [1, 2, 4, 8, 16]
        self.max_batch = not small


def quick_fpnas_space() -> dict[str, Any]:
    return yaml.safe_load((CONFIGS / "fpnas_digits_quick.yaml").read_text())["space"]


PRECISIONS = {  # name: (autocast dtype, channels_last)
    "fp32": (None, False),
    "fp32+cl": (None, True),
    "bf16": (torch.bfloat16, False),
    "bf16+cl": (torch.bfloat16, True),
}


def make_trainer(s: Settings, device: torch.device, precision: str, sampler: str, batch: int, run_dir: str,
                 recompute: bool = False, train: dict | None = None):
    """The product's stage-1 trainer with a `s.classes`-way supernet (its data are the built-in
    digits, never loaded here: the suite feeds synthetic batches to `train_step`); `recompute`:
    train.recompute_bn_act; `train`: other train.* settings (kernels, cuda_graphs)."""
    amp, cl = PRECISIONS[precision]
    cfg = load_config(SupernetConfig, data={
        "run": {"device": str(device), "amp": "bf16" if amp else "fp32", "channels_last": cl, "dir": run_dir},
        "space": s.space, "data": {"path": None, "image_size": 8},
        "train": {"num_arch_training": 4, "batch_size": 4, "workers": 0, "recompute_bn_act": recompute,
                  **(train or {})},
        "sampler": {"kind": sampler, "k": 3, "n_prior": 20_000 if s.max_batch else 2_000},
        "log": {"progress": False, "tensorboard": False}})
    net = SuperNet(get_space(s.space), s.classes).to(device)  # its own head: the suite's synthetic classes
    net.set_recompute_bn_act(cfg.train.recompute_bn_act)
    net.set_conv_kernels(cfg.train.pointwise_kernel, cfg.train.depthwise_kernel)
    if cl:
        net = net.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    return SupernetTrainer(cfg, parts=WeightParts(net, optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer,
                                                                                                   lambda _: 1.0)))


def batch_of(s: Settings, device: torch.device, batch: int, channels_last: bool, classes: int | None = None):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, s.input, s.input, generator=g).to(device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, classes or s.classes, (batch,), generator=g).to(device)
    return x, y


def sampled_archs(space, step: int):
    return [space.sample(rng=1000 * step + i) for i in range(2)]


# ---------------------------------------------------------------------------- training loader
@contextlib.contextmanager
def resolve_data(path: str) -> Iterator[Path]:
    """A folder holding train/<class>/*.jpg: `path` itself, or an archive unpacked for the run."""
    p = Path(path).expanduser()
    if p.is_dir():
        yield p
        return
    if not p.is_file() or not tarfile.is_tarfile(p):
        raise SystemExit(f"--data '{path}' is neither a folder nor a .tar.gz archive")
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(p) as tar:
            tar.extractall(tmp, filter="data") if hasattr(tarfile, "data_filter") else tar.extractall(tmp)
        roots = [d for d in Path(tmp).rglob("train") if d.is_dir()]
        if not roots:
            raise SystemExit(f"no train/ folder inside '{path}'")
        yield roots[0].parent


def imagenet_sized(folder: Path, out: Path, per_class: int, links: int = 1) -> Path:
    """`per_class` images of each class of `folder`/train upscaled to 500x375, JPEG quality 90,
    each file present `links` times (hard links: the same bytes to decode, fewer to make)."""
    from PIL import Image

    for cls in sorted(d for d in (folder / "train").iterdir() if d.is_dir()):
        dst = out / "train" / cls.name
        dst.mkdir(parents=True, exist_ok=True)
        for f in sorted(cls.iterdir())[:per_class]:
            first = dst / (f.stem + ".jpg")
            with Image.open(f) as im:
                im.convert("RGB").resize((500, 375), Image.BICUBIC).save(first, quality=90)
            for i in range(1, links):
                with contextlib.suppress(OSError):
                    os.link(first, dst / f"{f.stem}-{i}.jpg")
    return out


def training_split(folder: Path, image_size: int):
    """The training split of `folder` with the stage-1 recipe at `image_size` px."""
    return build_datasets(DataConfig(path=str(folder), image_size=image_size, train_crop="resized",
                                     autoaugment="imagenet")).train


def throughput(train, workers: int, images: int, batch: int) -> float:
    """Images/s of the stage-1 training loader over the split `train`, in steady state.

    The workers fill a queue of `workers * 4` batches before the first is read; reading faster than
    they produce drains it, so batches arrive at the rate they are made only once it is empty.
    The rate is taken from then on, over at least `images` images (epochs repeat as needed)."""
    rows = ResumableSampler(train, batch)
    loader = ResumableLoader(train, rows, seed=0, batch_size=batch, workers=workers,
                             pin_memory=torch.cuda.is_available())
    queued = workers * 4  # ResumableLoader's prefetch_factor
    arrivals: list[float] = []  # when each batch came
    timed = 0  # images of the batches after the queued ones (and the one that drains them)
    epoch = 0
    while len(arrivals) <= queued or timed < images:
        for x, _ in loader.epoch(epoch, 0):
            arrivals.append(time.perf_counter())
            if len(arrivals) > queued + 1:
                timed += x.shape[0]
            if len(arrivals) > queued and timed >= images:
                break
        epoch += 1
    loader.close()
    return timed / (arrivals[-1] - arrivals[queued])


def loader_throughput(folder: Path, workers: Sequence[int], images: int, image_size: int = 224,
                      batch: int = 64, per_class: int = 40) -> dict[str, Any]:
    """images/s per worker count for the CIFAR-10 tree and its ImageNet-sized copy."""
    out: dict[str, Any] = {"what": f"stage-1 training loader, {image_size} px, RandomResizedCrop + flip + "
                                   f"AutoAugment, batch {batch}", "per_workers": {}}
    # an epoch restarts the workers' queues: make one last several times longer than those queues
    needed = max(images, 3 * max(workers) * 4 * batch)
    with tempfile.TemporaryDirectory() as tmp:
        classes = sum(1 for d in (folder / "train").iterdir() if d.is_dir())
        big = imagenet_sized(folder, Path(tmp), per_class, links=math.ceil(needed / (classes * per_class)))
        for name, root in (("cifar10", folder), ("imagenet-sized", big)):
            train = training_split(root, image_size)
            for w in workers:
                out["per_workers"][f"{name}, {w} workers"] = throughput(train, w, images, batch)
    return out


# ---------------------------------------------------------------------------- runs that resume (FP-NAS benches)
def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (DataLoader workers)."""
    t = os.times()
    return time.process_time() + t.children_user + t.children_system


def check_same_config(run_dir: Path, cfg: Any) -> None:
    """An earlier run in `run_dir` must have had these settings, or the comparison would mix two."""
    saved = run_dir / "config.yaml"
    if saved.is_file() and yaml.safe_load(saved.read_text()) != yaml.safe_load(yaml.safe_dump(cfg.to_dict())):
        raise SystemExit(f"'{run_dir}' holds a run with other settings; pass --fresh to redo it, or choose "
                         "another --out")


def resumable(run_dir: Path, cfg: Any, start: Callable[[bool], Any]) -> tuple[dict[str, Any], dict]:
    """(result.json of the run in `run_dir`, how it was obtained): reused when finished, else
    `start(resume)` runs it, resuming from a checkpoint when there is one."""
    check_same_config(run_dir, cfg)
    timing_file = run_dir / "bench_timing.json"
    if (run_dir / "result.json").is_file():
        timing = json.loads(timing_file.read_text()) if timing_file.is_file() else {"cpu_seconds": None}
        return json.loads((run_dir / "result.json").read_text()), {**timing, "reused": True}
    resume = (run_dir / "checkpoint.pt").is_file()
    cpu0 = cpu_seconds()
    start(resume)
    # the CPU time of a resumed run misses its earlier part: record none rather than a part
    timing = {"cpu_seconds": None if resume else round(cpu_seconds() - cpu0, 3), "resumed": resume}
    timing_file.write_text(json.dumps(timing) + "\n")
    return json.loads((run_dir / "result.json").read_text()), {**timing, "reused": False}


def retrain_config_path(args: argparse.Namespace) -> Path:
    if args.retrain_config:
        return Path(args.retrain_config)
    name = "retrain_digits_quick.yaml" if str(args.data).strip().lower() == "digits" else "retrain_cifar10.yaml"
    path = CONFIGS / name
    if not path.is_file():
        raise SystemExit(f"no packaged retrain config {path}; pass --retrain-config FILE, or --retrain-epochs 0 "
                         "to skip the retrain")
    return path


def cell(v: Any, fmt: str, unit: str = "") -> str:
    return "-" if v is None else format(v, fmt) + unit


# ---------------------------------------------------------------------------- tiny inputs of --small
def tiny_image_tree(root: Path, classes: int = 2, per_class: int = 4, size: int = 32) -> Path:
    """A CIFAR-10-like JPEG tree root/train/<class>/*.jpg of a few plain images (loader benches)."""
    from PIL import Image

    for c in range(classes):
        folder = root / "train" / f"c{c}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.new("RGB", (size, size), (30 * i % 256, 90 * c % 256, 60)).save(folder / f"{i}.jpg")
    return root


def tiny_supernet_run(run_dir: Path) -> Path:
    """A supernet of attentivenas-tiny trained for a few steps on the built-in digits: a stage-1 run
    directory for the stage-2 benches (reused when it is there)."""
    if (run_dir / "checkpoint.pt").is_file():
        return run_dir
    SupernetTrainer({
        "run": {"dir": str(run_dir), "device": "cpu"}, "space": "attentivenas-tiny",
        "data": {"path": "digits", "image_size": 12, "train_subset": 128, "search_size": 64},
        "train": {"epochs": 1, "batch_size": 32, "workers": 0, "max_steps": 2},
        "sampler": {"kind": "uniform"}, "eval": {"bn_batches": 1, "max_batches": 1},
        "log": {"progress": False, "tensorboard": False},
    }).fit()
    return run_dir


# Settings of the FP-NAS benches' --small mode: a few steps of the digits config, retrained for one
# epoch (both searches and both retrains end to end, in seconds).
TINY_FPNAS_OVERRIDES = ["data.train_subset=96", "train.batch_size=16", "train.epochs=2", "search.arch_warmup_epochs=1",
                        "search.switch_epoch=1", "search.k_min=2", "search.k_max=3", "search.k_fixed=3",
                        "search.mc_samples=8", "log.progress=false", "checkpoint.every_steps=1000"]
TINY_RETRAIN_SETS = ["data.train_subset=64", "data.val_subset=64", "train.batch_size=32", "eval.every_epochs=0",
                     "log.progress=false"]


# ---------------------------------------------------------------------------- the reference, side by side
REFERENCE_PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


# ---------------------------------------------------------------------------- the reference code
@contextlib.contextmanager
def reference_code(path: "str | Path") -> Iterator[SimpleNamespace]:
    """The reference's modules, imported from `path` (its archive, unpacked for the run, or its
    folder); removed from `sys.modules` afterwards, since its top-level names (`models`, `utils`)
    are generic."""
    p = Path(path).expanduser()
    with contextlib.ExitStack() as stack:
        if p.is_file() and tarfile.is_tarfile(p):
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            with tarfile.open(p) as tar:
                tar.extractall(tmp, filter="data") if hasattr(tarfile, "data_filter") else tar.extractall(tmp)
            p = tmp
        roots = [d.parent for d in sorted(p.rglob("train_attentive_nas.py"))]
        if not roots:
            raise SystemExit(f"--reference '{path}' holds no AttentiveNAS code (no train_attentive_nas.py)")
        root = roots[0]
        before = set(sys.modules)
        sys.path.insert(0, str(root))  # the reference implementation's own folder
        try:
            yield SimpleNamespace(
                root=root,
                setup=importlib.import_module("utils.config").setup,
                create_model=importlib.import_module("models.model_factory").create_model,
                loss_ops=importlib.import_module("utils.loss_ops"),
                build_optimizer=importlib.import_module("solver").build_optimizer)
        finally:
            sys.path.remove(str(root))  # the reference implementation's own folder
            for name in set(sys.modules) - before:
                del sys.modules[name]


class ReferenceStep:
    """The reference's sandwich step on its own model, optimizer and losses."""

    def __init__(self, ref: SimpleNamespace, device: torch.device, classes: int, amp: torch.dtype | None,
                 resolutions: Sequence[int] | None = None):
        cfg = ref.setup(str(ref.root / "configs" / "train_attentive_nas_models.yml"))
        cfg.n_classes = classes
        if resolutions:
            cfg.supernet_config.resolutions = list(resolutions)
        self.cfg, self.device, self.amp = cfg, device, amp
        self.model = ref.create_model(cfg).to(device)
        self.model.set_dropout_rate(cfg.dropout, cfg.drop_connect, cfg.drop_connect_only_last_two_stages)
        self.optimizer = ref.build_optimizer(cfg, self.model)
        self.criterion = ref.loss_ops.CrossEntropyLossSmooth(cfg.label_smoothing)
        self.soft_criterion = ref.loss_ops.KLLossSoft()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None):
            return self.model(x)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, middle: Sequence[dict[str, Any]]) -> None:
        self.model.train()
        self.optimizer.zero_grad()
        self.model.sample_max_subnet()
        out = self.forward(x)
        self.criterion(out.float(), y).backward()
        soft_logits = out.detach().float()
        for arch in list(middle) + [None]:
            if arch is None:
                self.model.sample_min_subnet()
            else:
                self.model.set_active_subnet(**arch)
            self.soft_criterion(self.forward(x).float(), soft_logits).backward()
        torch.nn.utils.clip_grad_value_(self.model.parameters(), self.cfg.grad_clip_value)
        self.optimizer.step()


# ---------------------------------------------------------------------------- timing
def sync_device(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_round(step: Callable[[int], None], device: torch.device, first: int, steps: int) -> float:
    sync_device(device)
    t0 = time.perf_counter()
    for i in range(steps):
        step(first + i)
    sync_device(device)
    return (time.perf_counter() - t0) / steps


def middle_archs(space, step: int) -> list:
    return [space.sample(rng=1000 * step + i) for i in range(2)]


def reference_side_by_side(reference: "str | Path", device: torch.device, batch: int, steps: int, warmup: int, rounds: int,
                 precisions: Sequence[str], classes: int = 1000, image_size: int = 224,
                 resolutions: Sequence[int] | None = None) -> dict[str, Any]:
    """Per precision: images/s and peak memory of ours and of the reference, and the ratios.
    `resolutions` replaces the space's (192..288) on both sides: smaller inputs for a CPU check."""
    definition: Any = {"base": "attentivenas", "resolution": list(resolutions)} if resolutions else "attentivenas"
    space = get_space(definition)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, image_size, image_size, generator=g).to(device)
    y = torch.randint(0, classes, (batch,), generator=g).to(device)
    out: dict[str, Any] = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                           "batch": batch, "classes": classes, "input_px": image_size, "steps": steps,
                           "rounds": rounds, "resolutions": list(space.spec.resolution.choices), "precisions": {}}
    settings = Settings(small=False)
    settings.classes, settings.space = classes, definition
    with reference_code(reference) as ref, tempfile.TemporaryDirectory() as tmp:
        for name in precisions:
            amp = REFERENCE_PRECISIONS[name]
            ours = make_trainer(settings, device, "bf16" if amp else "fp32", "uniform", batch, tmp)
            theirs = ReferenceStep(ref, device, classes, amp, resolutions)
            steps_of = {
                "supernas": lambda i: ours.train_step(x, y, middle_archs(space, i)),
                "reference": lambda i: theirs(x, y, [to_reference(space, a) for a in middle_archs(space, i)]),
            }
            times: dict[str, list[float]] = {k: [] for k in steps_of}
            peaks: dict[str, float | None] = {k: None for k in steps_of}
            for k, step in steps_of.items():  # warm-up, each on its own
                timed_round(step, device, 0, warmup)
            for r in range(rounds):
                order = list(steps_of) if r % 2 == 0 else list(reversed(steps_of))
                for k in order:
                    if device.type == "cuda":
                        torch.cuda.reset_peak_memory_stats(device)
                    times[k].append(timed_round(steps_of[k], device, warmup + r * steps, steps))
                    if device.type == "cuda":
                        peak = torch.cuda.max_memory_allocated(device) / 2**30
                        peaks[k] = max(peaks[k] or 0.0, peak)
            ours.close()
            row = {k: {"images_per_s": batch / statistics.median(v), "step_ms": 1e3 * statistics.median(v),
                       "peak_gib": peaks[k]} for k, v in times.items()}
            row["speed_ratio"] = row["supernas"]["images_per_s"] / row["reference"]["images_per_s"]
            if peaks["supernas"] and peaks["reference"]:
                row["memory_ratio"] = peaks["supernas"] / peaks["reference"]
            out["precisions"][name] = row
            steps_of.clear()  # frees both models before the next precision's are built
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return out


def reference_table(result: dict[str, Any]) -> str:
    lines = [f"Sandwich step against the reference: {result['device']}, batch {result['batch']}, "
             f"{result['classes']} classes, input {result['input_px']} px resized to the Arch's "
             f"{'/'.join(map(str, result['resolutions']))}, median of {result['rounds']} rounds of "
             f"{result['steps']} steps", "",
             "| precision | supernas images/s | reference images/s | speed ratio | supernas peak GiB | "
             "reference peak GiB | memory ratio |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
    for name, row in result["precisions"].items():
        ours, ref = row["supernas"], row["reference"]
        lines.append(f"| {name} | {ours['images_per_s']:.1f} | {ref['images_per_s']:.1f} | {row['speed_ratio']:.2f} | "
                     f"{fmt(ours['peak_gib'], '.2f')} | {fmt(ref['peak_gib'], '.2f')} | "
                     f"{fmt(row.get('memory_ratio'), '.2f')} |")
    return "\n".join(lines)
