"""torchvision (v2) transforms for training and evaluation, at one fixed output size.

The same pipeline takes PIL images (files) and uint8 CHW tensors (in-memory data): geometry and
AutoAugment run on the input as it is, then it becomes a float tensor and is normalised.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

import torch
from torchvision.transforms import v2

from .formats import DataFormat

SMALL = 64  # images of at most this many pixels a side get the CIFAR-style recipe
EVAL_CROP = 0.875  # evaluation resizes to size / 0.875, then center-crops size (224 from 256)
POLICIES = {"imagenet": v2.AutoAugmentPolicy.IMAGENET, "cifar10": v2.AutoAugmentPolicy.CIFAR10,
            "svhn": v2.AutoAugmentPolicy.SVHN}


@dataclass(frozen=True)
class Recipe:
    """The resolved augmentation choices of a dataset (after the per-dataset defaults)."""

    image_size: int
    small: bool
    train_crop: str
    pad: int
    flip: bool
    autoaugment: Optional[str]
    mean: tuple
    std: tuple


def recipe(fmt: DataFormat, native: int, image_size: Optional[int] = None, train_crop: str = "auto",
           pad: Optional[int] = None, flip: Optional[bool] = None, autoaugment: Union[bool, str] = False,
           mean: Optional[Sequence[float]] = None, std: Optional[Sequence[float]] = None) -> Recipe:
    """Fill the per-dataset defaults of the format `fmt`: `native` is the larger side of its images."""
    small = native <= SMALL
    size = image_size or (native if small else 224)
    crop = train_crop if train_crop != "auto" else ("pad" if small else "resized")
    if autoaugment is True:
        autoaugment = "svhn" if fmt.glyphs else ("cifar10" if small else "imagenet")
    return Recipe(image_size=size, small=small, train_crop=crop, pad=size // 8 if pad is None else pad,
                  flip=not fmt.glyphs if flip is None else flip, autoaugment=autoaugment or None,
                  mean=tuple(mean or fmt.mean), std=tuple(std or fmt.std))


def train_transform(r: Recipe, autoaugment: bool = True) -> Callable:
    """Random crop (resized, or padded for small images), flip, AutoAugment; `autoaugment=False`
    drops the latter (for BN calibration)."""
    size = r.image_size
    if r.train_crop == "resized":
        ops = [v2.RandomResizedCrop(size, antialias=True)]
    else:  # the Resize is a no-op when the images already have this size
        ops = [v2.Resize((size, size), antialias=True), v2.RandomCrop(size, padding=r.pad)]
    if r.flip:
        ops.append(v2.RandomHorizontalFlip())
    if r.autoaugment and autoaugment:
        ops.append(v2.AutoAugment(POLICIES[r.autoaugment]))
    return v2.Compose(ops + _to_tensor(r))


def eval_transform(r: Recipe) -> Callable:
    """Resize to size / 0.875 and center-crop for large images; plain resize for small ones."""
    size = r.image_size
    if r.small:
        ops = [v2.Resize((size, size), antialias=True)]
    else:
        ops = [v2.Resize(int(size / EVAL_CROP), antialias=True), v2.CenterCrop(size)]
    return v2.Compose(ops + _to_tensor(r))


def _to_tensor(r: Recipe) -> list:
    return [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(r.mean), list(r.std))]
