"""From a DataConfig to the train, val, search and calibration splits."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Union

import numpy as np
from PIL import Image

from ..errors import SupernasError
from . import splits
from .config import DataConfig
from .datasets import BadImages, ImageFiles, View
from . import readers  # noqa: F401  (registers the built-in formats)
from .formats import FORMATS, detect_format, is_builtin, locate
from .transforms import Recipe, eval_transform, recipe, train_transform

DEFAULT_VAL_FRACTION = 0.2  # carved from train when the data has no official val/test split


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
    cfg = config if isinstance(config, DataConfig) else DataConfig.from_dict(config)
    fmt, train_src, val_src = read_sources(cfg)
    bad = BadImages() if cfg.on_bad_image == "skip" else None  # one record for every split
    for source in (train_src, val_src):
        if isinstance(source, ImageFiles):
            source.on_bad_image, source.bad = cfg.on_bad_image, bad
    if len(train_src.classes) == 1:
        warnings.warn(f"the data at '{cfg.path}' has one class ({train_src.classes[0]!r}): every prediction is "
                      "right, so accuracy and the search say nothing; give data with two classes or more",
                      UserWarning, stacklevel=2)
    r = recipe(FORMATS.get(fmt), _native_size(train_src), cfg.image_size, cfg.train_crop, cfg.pad, cfg.flip, cfg.autoaugment,
               cfg.mean, cfg.std)
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
                    format=fmt, recipe=r)


def read_sources(cfg: DataConfig):
    """(format name, train source, val source or None): the data as read, before any split."""
    if is_builtin(cfg.path):
        if cfg.format != "auto" and FORMATS.get(cfg.format, "data.format").locate is not None:
            raise SupernasError(f"data format '{cfg.format}' needs a path; set data path to the dataset's folder "
                                "(or leave it null for the built-in digits)")
        fmt = "digits" if cfg.format == "auto" else cfg.format
        return (fmt,) + FORMATS.get(fmt).read(None)
    fmt = detect_format(cfg.path) if cfg.format == "auto" else cfg.format
    return (fmt,) + FORMATS.get(fmt).read(locate(cfg.path, fmt))


def _native_size(source) -> int:
    # Files: the larger side of the first readable image decides small vs large (reading only its
    # header); with on_bad_image skip, unreadable ones before it are passed over.
    if isinstance(source, ImageFiles):
        for path, _ in source.samples:
            try:
                with Image.open(path) as image:
                    return max(image.size)
            except (OSError, ValueError, SyntaxError) as e:
                if source.on_bad_image != "skip":
                    raise SupernasError(f"'{path}' is not a readable image ({e}); remove or replace it, or set "
                                        "data.on_bad_image: skip") from None
        raise SupernasError("no image of the training split is readable; check the data with "
                            "`supernas data check PATH`")
    return int(max(source.images.shape[-2:]))
