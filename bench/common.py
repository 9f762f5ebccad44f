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
import json
import math
import os
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
import yaml

import supernas
from supernas.data import DataConfig, build_datasets
from supernas.nn import SuperNet
from supernas.runtime import ResumableLoader, ResumableSampler
from supernas.train import SupernetTrainer

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
                 recompute: bool = False):
    """The product's stage-1 trainer with a `s.classes`-way supernet (its data are the built-in
    digits, never loaded here: the suite feeds synthetic batches to `train_step`); `recompute`:
    train.recompute_bn_act."""
    amp, cl = PRECISIONS[precision]
    cfg = {"run": {"device": str(device), "amp": "bf16" if amp else "fp32", "channels_last": cl, "dir": run_dir},
           "space": s.space, "data": {"path": None, "image_size": 8},
           "train": {"num_arch_training": 4, "batch_size": 4, "workers": 0},
           "sampler": {"kind": sampler, "k": 3, "n_prior": 20_000 if s.max_batch else 2_000},
           "log": {"progress": False, "tensorboard": False}}
    t = SupernetTrainer(cfg)
    t.net = SuperNet(t.space, s.classes).to(device)
    t.net.set_recompute_bn_act(recompute)
    if t.channels_last:
        t.net = t.net.to(memory_format=torch.channels_last)
    t.optimizer = torch.optim.SGD(t.net.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    t.scheduler = torch.optim.lr_scheduler.LambdaLR(t.optimizer, lambda _: 1.0)
    return t


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
