"""What data to train and search on: the `data:` section of every config, usable on its own."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Mapping, Optional, Union

from ..errors import SupernasError
from ..utils.settings import Section, setting

SIZE_RULE = "a count of images (an integer >= 0) or a fraction strictly between 0 and 1 (or null)"


@dataclass
class DataConfig(Section):
    """Where the data is and how it is split and augmented (`supernas config show train` prints every
    setting with its doc). `search_size` is held out of train for the search; `val_size` carves val
    out of train for data without an official val/test split. `on_bad_image` "skip" replaces an
    image file that does not decode by the next readable image of its split (the same one every
    time, so a resumed run stays exact) and reports it once in the run's log and metrics."""

    prefix = "data."

    path: Optional[str] = setting(None, "the dataset's folder; null or digits: scikit-learn's built-in digits")
    format: str = setting("auto", "auto (detected), or a registered format: imagefolder, cifar10, cifar100, mnist, "
                                  "digits")
    image_size: Optional[int] = setting(None, "pixels a side of every image; null: native for small images (CIFAR "
                                              "32, MNIST 28, digits 8), 224 for large ones", low=1)
    search_size: Union[int, float, None] = setting(None, "held out of train for the search: a count, or a fraction "
                                                         "in (0, 1)", low=0, allows=SIZE_RULE)
    val_size: Union[int, float, None] = setting(None, "carved out of train as val when the data has no val/test "
                                                      "split (null: 0.2)", low=0, allows=SIZE_RULE)
    train_crop: Literal["auto", "resized", "pad"] = setting(
        "auto", "resized (RandomResizedCrop), pad (CIFAR-style padded crop), or auto: pad for images of at most "
                "64 px, resized otherwise")
    pad: Optional[int] = setting(None, "padding of the padded crop; null: image_size // 8", low=0)
    flip: Optional[bool] = setting(None, "horizontal flips; null: on except for digits and MNIST")
    autoaugment: Union[bool, Literal["imagenet", "cifar10", "svhn"]] = setting(
        False, "true (the data's policy: imagenet for large images, cifar10 for small ones, svhn for digits and "
               "MNIST), false, or a policy")
    mean: Optional[list[float]] = setting(None, "per-channel mean in 0..1 (3 numbers); null: the dataset's")
    std: Optional[list[float]] = setting(None, "per-channel std in 0..1 (3 positive numbers); null: the dataset's")
    train_subset: Optional[int] = setting(None, "train on a seeded subset of this many images (quick runs)", low=1)
    val_subset: Optional[int] = setting(None, "validate on a seeded subset of this many images", low=1)
    seed: int = setting(0, "fixes the search split and the subsets", low=0)
    on_bad_image: Literal["error", "skip"] = setting(
        "error", "an image file that does not decode: error (stop, naming it) or skip (replace it by the next "
                 "readable image of its split, logged once)")

    def check(self) -> None:
        from .formats import FORMATS  # the registry, which plug-ins extend after this module loads

        if isinstance(self.path, str) and not self.path.strip():  # would read the current folder
            raise SupernasError("data.path is empty; give the dataset's folder, or digits (or null) for the "
                                "built-in digits")
        if self.format != "auto" and self.format not in FORMATS:
            raise SupernasError(f"data format '{self.format}' is unknown; use auto or one of: {', '.join(FORMATS)}")
        for name in ("search_size", "val_size"):
            value = getattr(self, name)
            if isinstance(value, float) and not 0.0 < value < 1.0:
                raise SupernasError(f"data.{name}={value} is out of range: {SIZE_RULE}")
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is not None and len(value) != 3:
                raise SupernasError(f"data.{name} must be 3 numbers (one per RGB channel), got {value!r}")
        if self.std is not None and min(self.std) <= 0:
            raise SupernasError(f"data.std must be positive, got {list(self.std)}")


def as_data_config(config: Union[DataConfig, Mapping[str, Any], None]) -> DataConfig:
    """A validated DataConfig from one built in code (whose settings nothing has checked yet), a
    plain mapping, or None (the built-in digits)."""
    return DataConfig.from_dict(config.to_dict() if isinstance(config, DataConfig) else config)
