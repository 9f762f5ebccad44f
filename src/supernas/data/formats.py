"""Which standard on-disk layout a path holds, and where in it the files are."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Union

from ..errors import SupernasError

# What each format expects, for error messages; `root` is the path the user gave.
LAYOUTS = {
    "imagefolder": "root/train/<class>/*.jpg|png|... with root/val/<class>/... or root/test/<class>/... "
                   "(ImageNet, Tiny-ImageNet, image folders of CIFAR)",
    "cifar10": "root/cifar-10-batches-py/{data_batch_1..5,test_batch} (root may be that folder itself)",
    "cifar100": "root/cifar-100-python/{train,test} (root may be that folder itself)",
    "mnist": "root/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] "
             "(root may be MNIST/, raw/ or the folder holding the files)",
    "digits": "no path: scikit-learn's built-in digits (path null or 'digits')",
}
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def layouts_text(formats: Optional[list[str]] = None) -> str:
    return "; ".join(f"{name}: {LAYOUTS[name]}" for name in (formats or LAYOUTS))


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


LOCATORS = {"cifar10": cifar10_dir, "cifar100": cifar100_dir, "mnist": mnist_dir, "imagefolder": imagefolder_dir}


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
    """The layout at `path`: 'cifar10', 'cifar100', 'mnist', 'imagefolder', or 'digits' for no path.

    Checked in that order, so a folder holding several datasets gives the first; pass the
    dataset's own folder or force `format` to choose another.
    """
    if is_builtin(path):
        return "digits"
    root = resolve(path)
    for name, locate in LOCATORS.items():
        if locate(root) is not None:
            return name
    seen = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())
    found = f"it holds {', '.join(seen[:8])}{', ...' if len(seen) > 8 else ''}" if seen else "it is empty"
    raise SupernasError(f"no dataset found at '{root}' ({found}); expected one of these layouts: {layouts_text()}")


def locate(path: Union[str, Path], fmt: str) -> Path:
    """The folder holding the files of `fmt` under `path`; an error naming both when it is not there."""
    root = resolve(path)
    folder = LOCATORS[fmt](root)
    if folder is None:
        raise SupernasError(f"data path '{root}' is not in the {fmt} layout; expected {LAYOUTS[fmt]} "
                            "(or set format: auto to detect the layout)")
    return folder
