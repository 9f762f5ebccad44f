"""Dataset formats: the registry of on-disk layouts (each: how to find it under a path, read it,
and normalise it), which layout a path holds, and where in it the files are. The built-in formats
register in `readers.py`; a new one is a module with a reader and one `FORMATS.register(name)`
(docs/architecture.md, "Extending")."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Union

from ..errors import SupernasError
from ..registry import Registry

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@dataclass(frozen=True)
class DataFormat:
    """A dataset layout. `read(folder)` gives (train source, val source or None): sources are
    `datasets.ImageFiles` (image paths) or `datasets.ImageTensors` (uint8 images in memory);
    `locate(root)` is the folder holding the files under the user's path, or None when they are
    not there (`locate` None: a built-in dataset, which takes no path and is read with folder None).
    `mean`/`std` normalise it; `glyphs`: digits, which are not mirror-invariant (no flips, SVHN's
    AutoAugment policy)."""

    layout: str
    read: Callable[[Any], tuple[Any, Any]]  # a Path; None for a built-in (locate None)
    locate: Optional[Callable[[Path], Optional[Path]]]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    glyphs: bool = False


FORMATS: Registry[DataFormat] = Registry("data format")


def layouts_text(formats: Optional[list[str]] = None) -> str:
    return "; ".join(f"{name}: {FORMATS.get(name).layout}" for name in (formats or FORMATS.names()))


def _first_dir(candidates: list[Path], test: Callable[[Path], bool]) -> Optional[Path]:
    return next((d for d in candidates if d.is_dir() and test(d)), None)


def cifar10_dir(root: Path) -> Optional[Path]:
    return _first_dir([root, root / "cifar-10-batches-py"], lambda d: (d / "data_batch_1").is_file())


def cifar100_dir(root: Path) -> Optional[Path]:
    return _first_dir([root, root / "cifar-100-python"], lambda d: (d / "train").is_file() and (d / "test").is_file())


def mnist_dir(root: Path) -> Optional[Path]:
    return _first_dir([root, root / "raw", root / "MNIST" / "raw", root / "MNIST"],
                      lambda d: mnist_file(d, MNIST_FILES[0]) is not None)


def mnist_file(folder: Path, name: str) -> Optional[Path]:
    """The idx file `name` in `folder`, plain or gzipped."""
    return next((p for p in (folder / name, folder / f"{name}.gz") if p.is_file()), None)


def imagefolder_dir(root: Path) -> Optional[Path]:
    return root if (root / "train").is_dir() else None


def is_builtin(path: Union[str, Path, None]) -> bool:
    return path is None or str(path) == "digits"


def resolve(path: Union[str, Path]) -> Path:
    """The user's path, with `~` expanded; an error naming it when there is nothing there."""
    root = Path(path).expanduser()
    if not root.exists():
        raise SupernasError(f"data path '{root}' does not exist; give a folder in one of these layouts: "
                            f"{layouts_text()}")
    if not root.is_dir():
        raise SupernasError(f"data path '{root}' is a file, not a folder (extract an archive first); "
                            f"expected layouts: {layouts_text()}")
    return root


def detect_format(path: Union[str, Path, None]) -> str:
    """The layout at `path` ('digits' for no path): the first registered format that finds its
    files there (cifar10, cifar100, mnist, imagefolder, then formats users registered), so a folder
    holding several datasets gives the first; pass the dataset's own folder or force `format`."""
    if is_builtin(path):
        return "digits"
    assert path is not None  # is_builtin is true for None
    root = resolve(path)
    for name in FORMATS:
        locator = FORMATS.get(name).locate
        if locator is not None and locator(root) is not None:
            return name
    seen = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())
    found = f"it holds {', '.join(seen[:8])}{', ...' if len(seen) > 8 else ''}" if seen else "it is empty"
    raise SupernasError(f"no dataset found at '{root}' ({found}); expected one of these layouts: {layouts_text()}")


def locate(path: Union[str, Path], fmt: str) -> Path:
    """The folder holding the files of `fmt` under `path`; an error naming both when it is not there."""
    root = resolve(path)
    entry = FORMATS.get(fmt, "data.format")
    if entry.locate is None:
        raise SupernasError(f"the {fmt} data is built in and takes no path, but path is '{path}'; set path: null, "
                            "or format: auto to read the path")
    folder = entry.locate(root)
    if folder is None:
        raise SupernasError(f"data path '{root}' is not in the {fmt} layout; expected {entry.layout} "
                            "(or set format: auto to detect the layout)")
    return folder
