"""What data to train and search on, as a dataclass built from a plain (YAML) dict."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, Mapping, Optional, Sequence, Union

from ..errors import SupernasError, require_int

CROPS = ("auto", "resized", "pad")
POLICIES = ("imagenet", "cifar10", "svhn")


@dataclass
class DataConfig:
    """Where the data is and how it is split and augmented.

    `path` None or "digits" is scikit-learn's built-in digits. `format` "auto" detects the layout.
    `image_size` None is the native size of small images (CIFAR 32, MNIST 28, digits 8) and 224 for
    large ones. `search_size` (an int count or a fraction of train) is held out of train for the
    search; `val_size` carves val out of train for data without an official val/test split (default
    0.2). `train_crop` "auto" is the CIFAR-style padded crop for images of at most 64 px and
    RandomResizedCrop otherwise; `pad` None is image_size // 8 (4 at 32 px). `flip` None is on except
    for digits and MNIST. `autoaugment` True picks the policy for the data (ImageNet for large
    images, CIFAR10 for small ones, SVHN for digits and MNIST) or names one. `mean`/`std` None are
    the dataset's statistics (ImageNet's for image folders). `train_subset`/`val_subset` keep a
    fixed seeded subset for quick runs. `seed` fixes the search split and the subsets.
    `on_bad_image` "error" stops at an image file that does not decode, naming it; "skip" replaces
    it by the next readable image of its split (the same one every time, so a resumed run stays
    exact) and reports it once in the run's log and metrics.
    """

    path: Optional[str] = None
    format: str = "auto"
    image_size: Optional[int] = None
    search_size: Union[int, float, None] = None
    val_size: Union[int, float, None] = None
    train_crop: str = "auto"
    pad: Optional[int] = None
    flip: Optional[bool] = None
    autoaugment: Union[bool, str] = False
    mean: Optional[Sequence[float]] = None
    std: Optional[Sequence[float]] = None
    train_subset: Optional[int] = None
    val_subset: Optional[int] = None
    seed: int = 0
    on_bad_image: Literal["error", "skip"] = "error"

    def __post_init__(self) -> None:
        from .formats import FORMATS

        if isinstance(self.path, str) and not self.path.strip():  # would read the current folder
            raise SupernasError("data.path is empty; give the dataset's folder, or digits (or null) for the "
                                "built-in digits")

        if self.format != "auto" and self.format not in FORMATS:
            raise SupernasError(f"data format '{self.format}' is unknown; use auto or one of: {', '.join(FORMATS)}")
        if self.on_bad_image not in ("error", "skip"):
            raise SupernasError(f"data.on_bad_image={self.on_bad_image!r} is not allowed: one of error, skip")
        if self.train_crop not in CROPS:
            raise SupernasError(f"data train_crop '{self.train_crop}' is unknown; use one of: {', '.join(CROPS)}")
        if not isinstance(self.autoaugment, bool) and self.autoaugment not in POLICIES:
            raise SupernasError(f"data autoaugment '{self.autoaugment}' is unknown; use true, false or one of: "
                                f"{', '.join(POLICIES)}")
        for name in ("image_size", "train_subset", "val_subset"):
            require_int(f"data {name}", getattr(self, name), 1, optional=True)
        require_int("data pad", self.pad, 0, optional=True)
        require_int("data seed", self.seed, 0, optional=True)
        for name in ("search_size", "val_size"):
            _check_size(name, getattr(self, name))
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is not None:
                if (isinstance(value, (str, bytes)) or len(value) != 3
                        or not all(isinstance(v, (int, float)) for v in value)):
                    raise SupernasError(f"data {name} must be 3 numbers (one per RGB channel), got {value!r}")
                if name == "std" and min(value) <= 0:
                    raise SupernasError(f"data std must be positive, got {list(value)}")
                setattr(self, name, tuple(float(v) for v in value))

    # one line per field for `supernas config show` (the class docstring says the rest)
    DOCS = {
        "path": "the dataset's folder; null or digits: scikit-learn's built-in digits",
        "format": "auto (detected), or a registered format: imagefolder, cifar10, cifar100, mnist, digits",
        "image_size": "pixels a side of every image; null: native for small images, 224 for large ones",
        "search_size": "held out of train for the search: a count, or a fraction in (0, 1)",
        "val_size": "carved out of train as val when the data has no val/test split (default 0.2)",
        "train_crop": "auto, resized (RandomResizedCrop) or pad (CIFAR-style padded crop)",
        "pad": "padding of the padded crop; null: image_size // 8",
        "flip": "horizontal flips; null: on except for digits and MNIST",
        "autoaugment": "true (the data's policy), false, or a policy: imagenet, cifar10, svhn",
        "mean": "per-channel mean in 0..1; null: the dataset's",
        "std": "per-channel std in 0..1; null: the dataset's",
        "train_subset": "train on a seeded subset of this many images (quick runs)",
        "val_subset": "validate on a seeded subset of this many images",
        "seed": "fixes the search split and the subsets",
        "on_bad_image": "an image file that does not decode: error (stop, naming it) or skip (replace it by the "
                        "next readable image of its split, logged once)",
    }

    @classmethod
    def from_dict(cls, values: Optional[Mapping[str, Any]]) -> "DataConfig":
        """From the `data:` section of a YAML config; unknown keys are an error, not ignored."""
        values = dict(values or {})
        allowed = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(allowed))
        if unknown:
            raise SupernasError(f"unknown data key(s) {', '.join(map(repr, unknown))}; "
                                f"allowed keys: {', '.join(allowed)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for name in ("mean", "std"):
            if out[name] is not None:
                out[name] = list(out[name])
        return out


def _check_size(name: str, value: Any) -> None:
    # An int is a count of images, a float strictly between 0 and 1 a fraction of train.
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        return
    if isinstance(value, float) and 0.0 < value < 1.0:
        return
    raise SupernasError(f"data {name} must be a count of images (an integer >= 0) or a fraction strictly "
                        f"between 0 and 1, got {value!r}")
