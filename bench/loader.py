"""Can the training loader feed a GPU? Images/s of supernas's training loader per number of
DataLoader workers, against the images/s a GPU step consumes.

    python bench/loader.py --data ~/data/cifar10 [--workers 1,2,4] [--images 2048] [--gpu-images-per-s 402]
    python bench/loader.py --data ../shared/data/cifar10-jpg.tar.gz      # an archive is unpacked to a temp folder

Two kinds of files, both read through the product's path (ImageFolder, the stage-1 recipe at
224 px: RandomResizedCrop + flip + ImageNet AutoAugment, per-image seeds of the resumable loader):

- `cifar10`: the CIFAR-10 JPEG tree as it is (32 px files: decoding is nearly free, the
  augmentation at 224 px is the cost);
- `imagenet-sized`: the first images of each CIFAR-10 class upscaled to 500x375 and saved as
  JPEG quality 90 (the size of an average ImageNet photo, so decoding costs what it costs there).

Each setting is timed in steady state: from the moment the workers' prefetch queue has drained,
over `--images` images (worker start-up is not counted). The
last lines say how many workers (CPU cores) one GPU needs at `--gpu-images-per-s`: by default the
reference implementation's 134 images/s on an H100, or the suite's own figure when given.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch

REFERENCE_IMAGES_PER_S = 134.0  # the reference AttentiveNAS sandwich step, batch 64 fp32, one H100


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
    from supernas.data import DataConfig, build_datasets

    return build_datasets(DataConfig(path=str(folder), image_size=image_size, train_crop="resized",
                                     autoaugment="imagenet")).train


def throughput(train, workers: int, images: int, batch: int) -> float:
    """Images/s of the stage-1 training loader over the split `train`, in steady state.

    The workers fill a queue of `workers * 4` batches before the first is read; reading faster than
    they produce drains it, so batches arrive at the rate they are made only once it is empty.
    The rate is taken from then on, over at least `images` images (epochs repeat as needed)."""
    from supernas.runtime.data_order import ResumableLoader, ResumableSampler

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


def workers_needed(per_worker_images_per_s: float, gpu_images_per_s: float) -> int:
    return max(1, math.ceil(gpu_images_per_s / per_worker_images_per_s))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="CIFAR-10 JPEG tree (train/<class>/*.jpg) or its .tar.gz")
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    ap.add_argument("--images", type=int, default=1024)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--per-class", type=int, default=40, help="ImageNet-sized copies made per class")
    ap.add_argument("--gpu-images-per-s", type=float, default=REFERENCE_IMAGES_PER_S)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the main process")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    workers = [int(w) for w in args.workers.split(",")]
    with resolve_data(args.data) as folder:
        res = loader_throughput(folder, workers, args.images, args.image_size, per_class=args.per_class)
    print(f"{res['what']}; {len(os.sched_getaffinity(0))} CPU cores here")
    print(f"{'files, workers':<32}{'images/s':>10}{'per worker':>12}")
    for name, v in res["per_workers"].items():
        w = max(int(name.rsplit(",", 1)[1].split()[0]), 1)
        print(f"{name:<32}{v:>10.1f}{v / w:>12.1f}")
    for kind in ("cifar10", "imagenet-sized"):
        rates = [(int(k.rsplit(",", 1)[1].split()[0]), v) for k, v in res["per_workers"].items() if k.startswith(kind)]
        w, v = max(rates, key=lambda r: r[1] / max(r[0], 1))
        per = v / max(w, 1)
        print(f"{kind}: one worker loads {per:.0f} images/s; a GPU step at {args.gpu_images_per_s:.0f} images/s needs "
              f"{workers_needed(per, args.gpu_images_per_s)} workers (CPU cores)")


if __name__ == "__main__":
    main()
