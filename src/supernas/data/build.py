"""From a DataConfig to the train, val, search and calibration splits."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Union

import numpy as np
from PIL import Image

from ..errors import SupernasError, SupernasWarning
from . import (
    readers,  # noqa: F401  (registers the built-in formats)
    splits,
)
from .config import DataConfig, as_data_config
from .datasets import BadImages, ImageFiles, View
from .formats import FORMATS, detect_format, is_builtin, locate
from .transforms import Recipe, eval_transform, recipe, train_transform

DEFAULT_VAL_FRACTION = 0.2  # carved from train when the data has no official val/test split
SIZE_SAMPLES = 15  # images whose size is read (spread over the training files) to infer image_size
MIN_IMAGE_SIZE = 3  # pixels a side the stem's 3x3 convolution (every space's) needs to see a neighbourhood


@dataclass
class Datasets:
    """The splits of one dataset; each yields (float tensor 3 x image_size x image_size, int label).

    `train` has the training transforms; `val` (the official val/test split, or one carved from
    train) and `search` (held out of train by the seed; None without a search_size) have the
    evaluation transforms. `calibration` is `train` without AutoAugment, for re-estimating batch-norm
    statistics of a sub-network (it is `train` itself when AutoAugment is off).
    """

    train: View
    val: View
    search: Optional[View]
    calibration: View
    classes: list
    format: str
    recipe: Recipe
    config: Optional[DataConfig] = None  # what built it: an export records it for `supernas eval`

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_size(self) -> int:
        return self.recipe.image_size

    @property
    def mean(self) -> tuple:
        return self.recipe.mean

    @property
    def std(self) -> tuple:
        return self.recipe.std

    def describe(self) -> str:
        """One line for logs."""
        search = f", {len(self.search)} search" if self.search is not None else ""
        return (f"{self.format}: {len(self.train)} train, {len(self.val)} val{search}, {self.num_classes} classes, "
                f"{self.image_size} px")


def build_datasets(config: Union[DataConfig, Mapping[str, Any], None] = None) -> Datasets:
    """Read the data `config` names (a DataConfig or its dict; None is the built-in digits) and split it."""
    cfg = as_data_config(config)
    fmt, train_src, val_src = read_sources(cfg)
    bad = BadImages() if cfg.on_bad_image == "skip" else None  # one record for every split
    for source in (train_src, val_src):
        if isinstance(source, ImageFiles):
            source.on_bad_image, source.bad = cfg.on_bad_image, bad
    if len(train_src.classes) == 1:
        warnings.warn(f"the data at '{cfg.path}' has one class ({train_src.classes[0]!r}): every prediction is "
                      "right, so accuracy and the search say nothing; give data with two classes or more",
                      UserWarning, stacklevel=2)
    r = recipe(FORMATS.get(fmt), _native_size(train_src, cfg.image_size is None), cfg.image_size, cfg.train_crop,
               cfg.pad, cfg.flip, cfg.autoaugment, cfg.mean, cfg.std)
    if r.image_size < MIN_IMAGE_SIZE:
        given = "data.image_size" if cfg.image_size is not None else "the images' size (data.image_size: null)"
        raise SupernasError(f"{given} is {r.image_size} px, below the {MIN_IMAGE_SIZE} px a side the stem's 3x3 "
                            "convolution needs; set data.image_size (e.g. 32), or remove the tiny images")
    train_t, eval_t = train_transform(r), eval_transform(r)
    train_idx = np.arange(len(train_src), dtype=np.int64)

    if val_src is None:
        size = DEFAULT_VAL_FRACTION if cfg.val_size is None else cfg.val_size
        count = splits.count_of(size, len(train_src), "val_size")
        # Seed 0, not cfg.seed: a carved val split stays the same across runs, as an official one would.
        held, rest = splits.stratified(train_src.targets, count, splits.VAL, 0)
        val, train_idx = View(train_src, held, eval_t), train_idx[rest]
    elif cfg.val_size is not None:
        raise SupernasError(f"this {fmt} data has an official val split, so val_size does not apply; remove it "
                            "(val_subset keeps a smaller seeded part of val)")
    else:
        val = View(val_src, None, eval_t)

    search = None
    if cfg.search_size:
        count = splits.count_of(cfg.search_size, len(train_idx), "search_size")
        held, rest = splits.stratified(train_src.targets[train_idx], count, splits.SEARCH, cfg.seed)
        search, train_idx = View(train_src, train_idx[held], eval_t), train_idx[rest]
    if cfg.train_subset:
        held, _ = splits.stratified(train_src.targets[train_idx], cfg.train_subset, splits.TRAIN_SUBSET, cfg.seed)
        train_idx = train_idx[held]
    if cfg.val_subset:
        val = val.subset(splits.stratified(val.targets, cfg.val_subset, splits.VAL_SUBSET, cfg.seed)[0])

    train = View(train_src, train_idx, train_t)
    calibration = train.with_transform(train_transform(r, autoaugment=False)) if r.autoaugment else train
    return Datasets(train=train, val=val, search=search, calibration=calibration, classes=list(train_src.classes),
                    format=fmt, recipe=r, config=cfg)


def read_sources(cfg: DataConfig):
    """(format name, train source, val source or None): the data as read, before any split."""
    if is_builtin(cfg.path):
        if cfg.format != "auto" and FORMATS.get(cfg.format, "data.format").locate is not None:
            raise SupernasError(f"data format '{cfg.format}' needs a path; set data path to the dataset's folder "
                                "(or leave it null for the built-in digits)")
        fmt = "digits" if cfg.format == "auto" else cfg.format
        return (fmt,) + FORMATS.get(fmt).read(None)
    assert cfg.path is not None  # is_builtin is true for None
    fmt = detect_format(cfg.path) if cfg.format == "auto" else cfg.format
    return (fmt,) + FORMATS.get(fmt).read(locate(cfg.path, fmt))


def _native_size(source, inferred: bool = True) -> int:
    """The larger side of the training images: the median over SIZE_SAMPLES files spread over the
    split (reading only their headers), so that one stray image (a 1x1 that sorts first) does not
    decide it; with `inferred` (data.image_size null) a warning says when they differ. With
    on_bad_image skip, unreadable files are passed over."""
    if not isinstance(source, ImageFiles):
        return int(max(source.images.shape[-2:]))
    count = len(source.samples)
    picks = sorted({round(i * (count - 1) / max(1, SIZE_SAMPLES - 1)) for i in range(min(SIZE_SAMPLES, count))})
    sides, tried = [], set(picks)
    for index in picks:
        # the first file stops the run when unreadable (on_bad_image error), as training would at it;
        # an unreadable one among the others is met, and handled by the policy, when training reads it
        side = _side(source, index, strict=index == 0 and source.on_bad_image != "skip")
        while side is None and index + 1 < count and index + 1 not in tried:  # the next file instead
            index += 1
            tried.add(index)
            side = _side(source, index, strict=False)
        if side is not None:
            sides.append(side)
    if not sides:
        raise SupernasError("no image of the training split is readable; check the data with "
                            "`supernas data check PATH`")
    median = int(np.median(sides))
    if inferred and min(sides) != max(sides):
        warnings.warn(f"the training images differ in size ({min(sides)} to {max(sides)} px a side among "
                      f"{len(sides)} read); data.image_size null takes their median, {median} px: set "
                      "data.image_size to choose", SupernasWarning, stacklevel=3)
    return median


def _side(source: ImageFiles, index: int, strict: bool) -> "int | None":
    """The larger side of the image file `index` (its header only); when it does not open, an error
    naming it with `strict`, else None."""
    path = source.samples[index][0]
    try:
        with Image.open(path) as image:
            return max(image.size)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        if strict:
            raise SupernasError(f"'{path}' is not a readable image ({e}); remove or replace it, or set "
                                "data.on_bad_image: skip") from None
        return None
