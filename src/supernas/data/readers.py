"""Readers of each layout into sources: image files for folders, uint8 tensors for the rest.

Each returns (train, val) where val is None when the data has no official val/test split.
CIFAR's python batches are pickles: they are read by an allowlist of numpy's array constructors,
so a planted payload is refused, never run.
"""
from __future__ import annotations

import gzip
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

from ..errors import SupernasError
from ..utils.safe_pickle import NUMPY_GLOBALS, read_restricted
from .datasets import ImageFiles, ImageTensors
from .formats import FORMATS, MNIST_FILES, DataFormat, cifar10_dir, cifar100_dir, imagefolder_dir, mnist_dir, mnist_file
from .walk import refuse_symlink_loops

# What each layout looks like, for error messages; `root` is the path the user gave.
IMAGEFOLDER = ("root/train/<class>/*.jpg|png|... with root/val/<class>/... or root/test/<class>/... "
               "(ImageNet, Tiny-ImageNet, image folders of CIFAR)")
CIFAR10 = "root/cifar-10-batches-py/{data_batch_1..5,test_batch} (root may be that folder itself)"
CIFAR100 = "root/cifar-100-python/{train,test} (root may be that folder itself)"
MNIST = ("root/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] "
         "(root may be MNIST/, raw/ or the folder holding the files)")
DIGITS = "no path: scikit-learn's built-in digits (path null or 'digits')"

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


# ---- image folders ----------------------------------------------------------------------------

def read_imagefolder(root: Path) -> tuple[ImageFiles, Optional[ImageFiles]]:
    """root/train/<class>/..., and root/val/<class>/... (else root/test/...) when there is one."""
    train_dir = root / "train"
    try:
        classes, class_to_idx = find_classes(train_dir)
        refuse_symlink_loops(train_dir)  # make_dataset follows links: a loop would never end
        samples = make_dataset(train_dir, class_to_idx, IMG_EXTENSIONS)
    except FileNotFoundError as e:
        raise SupernasError(f"no images in class folders under '{train_dir}' ({e}); expected "
                            f"{IMAGEFOLDER}") from None
    train = ImageFiles(samples, classes)
    val_dir = next((root / name for name in ("val", "test") if (root / name).is_dir()), None)
    if val_dir is None:
        return train, None
    if (val_dir / "val_annotations.txt").is_file() and (val_dir / "images").is_dir():
        return train, ImageFiles(_tiny_imagenet_val(val_dir, class_to_idx), classes)
    try:
        val_classes, _ = find_classes(val_dir)
    except FileNotFoundError:
        raise SupernasError(f"no class folders under '{val_dir}'; expected {val_dir}/<class>/ with the "
                            f"class folders of '{train_dir}'") from None
    extra = sorted(set(val_classes) - set(classes))
    if extra:
        raise SupernasError(f"'{val_dir}' has class folders that '{train_dir}' lacks ({', '.join(extra[:5])}); "
                            "val and train must use the same class folder names")
    refuse_symlink_loops(val_dir)
    try:
        val = make_dataset(val_dir, {c: class_to_idx[c] for c in val_classes}, IMG_EXTENSIONS)
    except FileNotFoundError as e:
        raise SupernasError(f"a class folder under '{val_dir}' holds no images ({e}); remove it or add its "
                            "images") from None
    return train, ImageFiles(val, classes)


def _tiny_imagenet_val(val_dir: Path, class_to_idx: dict[str, int]) -> list[tuple[str, int]]:
    # Tiny-ImageNet ships val as val/images/*.JPEG with labels in val_annotations.txt (name, wnid, box).
    samples = []
    for n, line in enumerate((val_dir / "val_annotations.txt").read_text().splitlines(), 1):
        parts = line.split("\t")
        if not line.strip():
            continue
        if len(parts) < 2 or parts[1] not in class_to_idx:
            raise SupernasError(f"line {n} of '{val_dir / 'val_annotations.txt'}' is not '<file>\\t<train class>'")
        samples.append((str(val_dir / "images" / parts[0]), class_to_idx[parts[1]]))
    if not samples:
        raise SupernasError(f"'{val_dir / 'val_annotations.txt'}' lists no images")
    return samples


# ---- CIFAR python batches ---------------------------------------------------------------------

def read_cifar(folder: Path, hundred: bool) -> tuple[ImageTensors, ImageTensors]:
    """The CIFAR-10 (data_batch_1..5, test_batch) or CIFAR-100 (train, test) pickles in `folder`."""
    label_key = "fine_labels" if hundred else "labels"
    names = (["train"], ["test"]) if hundred else ([f"data_batch_{i}" for i in range(1, 6)], ["test_batch"])
    meta_path = folder / ("meta" if hundred else "batches.meta")
    meta = _unpickle(meta_path) if meta_path.is_file() else {}  # optional: the names are also known here
    classes = meta.get("fine_label_names" if hundred else "label_names") or (
        [str(i) for i in range(100)] if hundred else list(CIFAR10_CLASSES))
    splits = []
    for files in names:
        images, labels = [], []
        for name in files:
            path = folder / name
            if not path.is_file():
                raise SupernasError(f"'{path}' is missing; expected {CIFAR100 if hundred else CIFAR10}")
            batch = _unpickle(path)
            data, target = batch.get("data"), batch.get(label_key)
            if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3072 or target is None \
                    or len(target) != len(data):
                raise SupernasError(f"'{path}' is not a CIFAR batch: expected 'data' (N x 3072 uint8) and "
                                    f"'{label_key}' (N labels)")
            images.append(data.astype(np.uint8, copy=False).reshape(-1, 3, 32, 32))
            labels.append(np.asarray(target, dtype=np.int64))
        splits.append(_tensors(np.concatenate(images), np.concatenate(labels), classes, folder))
    return splits[0], splits[1]


def _unpickle(path: Path) -> dict:
    # The batches were pickled by Python 2: latin1 keeps their byte strings as str and numpy arrays
    # intact. Read with an allowlist of numpy's array constructors: a batch holds dicts, lists,
    # strings, numbers and arrays, and anything else the file names is refused before it runs.
    value = read_restricted(path, NUMPY_GLOBALS, "a CIFAR python batch", encoding="latin1")
    if not isinstance(value, dict):
        raise SupernasError(f"'{path}' is not a CIFAR pickle: it holds a {type(value).__name__}, not a dict")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in value.items()}


# ---- MNIST idx files --------------------------------------------------------------------------

def read_mnist(folder: Path) -> tuple[ImageTensors, ImageTensors]:
    """The four MNIST idx files in `folder` (plain or .gz); grey is replicated to 3 channels."""
    classes = [str(i) for i in range(10)]
    arrays = []
    for name in MNIST_FILES:
        path = mnist_file(folder, name)
        if path is None:
            raise SupernasError(f"'{folder / name}' (or .gz) is missing; expected {MNIST}")
        arrays.append(_read_idx(path, ndim=3 if "images" in name else 1))
    out = []
    for images, labels, path in ((arrays[0], arrays[1], folder / MNIST_FILES[0]),
                                 (arrays[2], arrays[3], folder / MNIST_FILES[2])):
        if len(images) != len(labels):
            raise SupernasError(f"'{path}' has {len(images)} images but its labels file {len(labels)} labels")
        grey = images[:, None]
        out.append(_tensors(np.repeat(grey, 3, axis=1), labels.astype(np.int64), classes, folder))
    return out[0], out[1]


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    # idx: two zero bytes, a type code (0x08 = uint8), the number of dims, then big-endian int32 sizes.
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise SupernasError(f"'{path}' cannot be read ({e})") from None
    header = 4 + 4 * ndim
    if len(raw) < header or raw[:4] != bytes([0, 0, 8, ndim]):
        raise SupernasError(f"'{path}' is not an idx file of uint8 with {ndim} dimension(s) "
                            f"(its header should start 00 00 08 0{ndim})")
    shape = tuple(int(v) for v in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    if len(raw) - header != int(np.prod(shape)):
        raise SupernasError(f"'{path}' holds {len(raw) - header} bytes of data but its header says {shape}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


# ---- scikit-learn digits ----------------------------------------------------------------------

def read_digits() -> tuple[ImageTensors, None]:
    """scikit-learn's 1,797 8x8 digits, 0..16 scaled to 0..255, in 3 channels; no official split."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    grey = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    classes = [str(c) for c in digits.target_names]
    return _tensors(np.repeat(grey, 3, axis=1), digits.target.astype(np.int64), classes, None), None


def _tensors(images: np.ndarray, labels: np.ndarray, classes: list, where: Optional[Path]) -> ImageTensors:
    if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
        raise SupernasError(f"labels in '{where}' run from {labels.min()} to {labels.max()}, outside the "
                            f"{len(classes)} classes")
    return ImageTensors(torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels),
                        [c.decode("latin1") if isinstance(c, bytes) else str(c) for c in classes])


# ---- the built-in formats, in the order `detect_format` tries them ------------------------------
# Per-channel mean and std of the training images, in 0..1 (image folders: ImageNet's).
FORMATS.register("cifar10")(DataFormat(CIFAR10, lambda d: read_cifar(d, hundred=False), cifar10_dir,
                                       (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)))
FORMATS.register("cifar100")(DataFormat(CIFAR100, lambda d: read_cifar(d, hundred=True), cifar100_dir,
                                        (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)))
FORMATS.register("mnist")(DataFormat(MNIST, read_mnist, mnist_dir, (0.1307,) * 3, (0.3081,) * 3, glyphs=True))
FORMATS.register("imagefolder")(DataFormat(IMAGEFOLDER, read_imagefolder, imagefolder_dir,
                                           (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)))
# load_digits() scaled to 0..255
FORMATS.register("digits")(DataFormat(DIGITS, lambda _: read_digits(), None, (0.3053,) * 3, (0.3759,) * 3,
                                      glyphs=True))
