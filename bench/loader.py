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
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

import torch

from common import add_small_flag, loader_throughput, parse_small, resolve_data, tiny_image_tree
from common import throughput, training_split  # noqa: F401  (tests/test_device_steps.py calls them as loader.*)

REFERENCE_IMAGES_PER_S = 134.0  # the reference AttentiveNAS sandwich step, batch 64 fp32, one H100


def workers_needed(per_worker_images_per_s: float, gpu_images_per_s: float) -> int:
    return max(1, math.ceil(gpu_images_per_s / per_worker_images_per_s))


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="CIFAR-10 JPEG tree (train/<class>/*.jpg) or its .tar.gz (required but with "
                    "--small: a few generated images)")
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    ap.add_argument("--images", type=int, default=1024)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=64, help="images per batch")
    ap.add_argument("--per-class", type=int, default=40, help="ImageNet-sized copies made per class")
    ap.add_argument("--gpu-images-per-s", type=float, default=REFERENCE_IMAGES_PER_S)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the main process")
    add_small_flag(ap)
    return ap


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = build_parser()
    args = parse_small(ap, argv, {"workers": "0", "images": 16, "image_size": 32, "per_class": 2, "batch": 2})
    if not args.data and not args.small:
        ap.error("--data is required (or --small)")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    workers = [int(w) for w in args.workers.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or str(tiny_image_tree(Path(tmp)))
        with resolve_data(data) as folder:
            res = loader_throughput(folder, workers, args.images, args.image_size, batch=args.batch,
                                    per_class=args.per_class)
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
    return res


if __name__ == "__main__":
    main()
