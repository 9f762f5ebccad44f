"""Raw images (files on disk or uint8 tensors in memory) and the transformed views of them.

A split is a :class:`View`: a source, the indices it keeps, and a transform. Views share their
source, so the train, search and calibration splits cost one copy of the data between them.
"""
from __future__ import annotations

import multiprocessing
import os
import queue
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..errors import SupernasError

BAD_IMAGE_POLICIES = ("error", "skip")


class UnreadableImage(SupernasError):
    """An image file that does not decode, named in the message. Raised in a DataLoader worker, it
    reaches the main process rebuilt from the worker's traceback text: the message is taken back
    out of it, so the user still reads one line."""

    def __init__(self, message: str):
        if "\nOriginal Traceback" in message:  # torch's ExceptionWrapper: our line is the traceback's last
            last = [line for line in message.splitlines() if line.strip()][-1]
            message = last.split(f"{type(self).__name__}: ", 1)[-1]
        super().__init__(message)


def to_rgb(image: Any) -> Any:
    """A PIL image as 8-bit RGB. 16-bit grey (modes I;16*, and I as older Pillow opens 16-bit PNGs)
    is scaled from 0..65535 to 0..255: PIL's convert would clip every value above 255 to white.
    Modes whose range is unknown (32-bit integers, floats) are refused (ValueError naming the mode)."""
    mode = image.mode
    if mode.startswith("I;16") or (mode == "I" and image.format == "PNG"):
        wide = np.asarray(image).astype(np.int64)
        if mode == "I" and (wide.min() < 0 or wide.max() > 65535):
            raise ValueError("a PNG of mode I with values outside 0..65535; save it with 8 or 16 bits a channel")
        narrow = ((wide * 255 + 32767) // 65535).astype(np.uint8)  # rounded: 65535 -> 255, 128 -> 0
        return Image.fromarray(narrow, "L").convert("RGB")
    if mode in ("I", "F"):
        kind = "32-bit integer" if mode == "I" else "floating-point"
        raise ValueError(f"a {kind} image (PIL mode {mode}) whose range is unknown; convert it to 8 or 16 bits a "
                         "channel")
    return image.convert("RGB")


def decode_image(path: str) -> tuple[Any, Optional[str]]:
    """(the image at `path` as an RGB PIL image, decoded whole so that a truncated file fails here
    and not later, None), or (None, why it does not decode)."""
    try:
        with open(path, "rb") as f:
            image = Image.open(f)
            image.load()
            return to_rgb(image), None
    except Image.DecompressionBombError as e:  # a small file that would decode to billions of pixels
        return None, f"a decompression bomb, refused before decoding ({str(e).split(' could be')[0].strip()})"
    except (OSError, ValueError, SyntaxError) as e:  # PIL's errors of a damaged or foreign file
        if "cannot identify image file" in str(e):  # PIL names its file object, not the file
            size = os.path.getsize(path) if os.path.isfile(path) else None
            return None, "an empty file" if size == 0 else f"not an image format PIL knows ({size} bytes)"
        return None, str(e).strip() or type(e).__name__


def read_image(path: str) -> Any:
    """The image at `path` as an RGB PIL image, or UnreadableImage naming the file."""
    image, reason = decode_image(path)
    if reason is not None:
        raise UnreadableImage(f"'{path}' is not a readable image ({reason}); remove or replace it, check the data "
                              "with `supernas data check PATH`, or set data.on_bad_image: skip")
    return image


class BadImages:
    """The unreadable files a dataset skipped, gathered in the process that trains from every
    DataLoader worker (a queue made before the workers start), each counted once."""

    def __init__(self) -> None:
        self._owner = os.getpid()
        self._queue = multiprocessing.get_context().Queue()
        self._sent: set[str] = set()  # per process: a worker reports a file once
        self.seen: list[str] = []  # in the owner: every file reported, in order
        self._told = 0  # how many of `seen` `new` has returned

    def report(self, path: str) -> None:
        if path in self._sent:
            return
        self._sent.add(path)
        if os.getpid() == self._owner:
            self._add(path)
        else:
            self._queue.put(path)

    def _add(self, path: str) -> bool:
        if path in self.seen:
            return False
        self.seen.append(path)
        return True

    def new(self) -> list[str]:
        """The files reported since the last call (in the owner process)."""
        while True:
            try:
                self._add(self._queue.get_nowait())
            except queue.Empty:
                break
        fresh, self._told = self.seen[self._told:], len(self.seen)
        return fresh

    def restore(self, seen: Sequence[str]) -> None:
        """The files a resumed run had skipped already: counted, not reported again."""
        self.seen, self._told = list(seen), len(seen)
        self._sent.update(seen)


class ImageFiles:
    """Image files with their labels; an image loads as an RGB PIL image (grey is converted).

    `on_bad_image`: 'error' (an unreadable file stops the run, named) or 'skip' (the views of this
    source replace it, see `View`, and report it to `bad`)."""

    def __init__(self, samples: Sequence[tuple[str, int]], classes: Sequence[str], on_bad_image: str = "error"):
        self.samples = list(samples)
        self.classes = list(classes)
        self.targets = np.fromiter((t for _, t in self.samples), dtype=np.int64, count=len(self.samples))
        self.on_bad_image = on_bad_image
        self.bad: Optional[BadImages] = None

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> Any:
        return read_image(self.samples[index][0])


class ImageTensors:
    """Images held in memory as one uint8 tensor N x 3 x H x W, and int64 labels."""

    def __init__(self, images: torch.Tensor, targets: torch.Tensor, classes: Sequence[str]):
        assert images.dtype == torch.uint8 and images.ndim == 4 and images.shape[1] == 3, images.shape
        self.images = images
        self.targets = targets.numpy().astype(np.int64)
        self.classes = list(classes)

    def __len__(self) -> int:
        return len(self.images)

    def load(self, index: int) -> torch.Tensor:
        return self.images[index]


class View(Dataset):
    """The images `indices` of a source (all when None), through `transform`: (float CHW tensor, label)."""

    def __init__(self, source: Any, indices: Optional[np.ndarray], transform: Callable[[Any], torch.Tensor]):
        self.source = source
        self.indices = None if indices is None else np.asarray(indices, dtype=np.int64)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.source) if self.indices is None else len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for a split of {len(self)} images")
        index = i if self.indices is None else int(self.indices[i])
        try:
            raw = self.source.load(index)
        except UnreadableImage:
            if getattr(self.source, "on_bad_image", "error") != "skip":
                raise
            index, raw = self._replacement(i)
        image = self.transform(raw)
        # v2 transforms return a tv_tensors.Image; a plain tensor collates and moves with less overhead.
        return image.as_subclass(torch.Tensor), int(self.source.targets[index])

    def _replacement(self, i: int) -> tuple[int, Any]:
        """For an unreadable image at position `i` (data.on_bad_image: skip): the next readable
        image of this view, wrapping around. The files do not change during a run, so the same
        position always gets the same image and a resumed run sees what an unbroken one saw."""
        for k in range(len(self)):
            position = (i + k) % len(self)
            index = position if self.indices is None else int(self.indices[position])
            try:
                raw = self.source.load(index)
            except UnreadableImage:
                if self.source.bad is not None:
                    self.source.bad.report(self.source.samples[index][0])
                continue
            return index, raw
        raise SupernasError(f"no image of this split is readable ({len(self)} images); check the data with "
                            "`supernas data check PATH`")

    @property
    def targets(self) -> np.ndarray:
        """The labels of this split, in order (for samplers and class counts)."""
        return self.source.targets if self.indices is None else self.source.targets[self.indices]

    @property
    def classes(self) -> list[str]:
        return self.source.classes

    def with_transform(self, transform: Callable[[Any], torch.Tensor]) -> "View":
        """The same images through another transform."""
        return View(self.source, self.indices, transform)

    def subset(self, positions: np.ndarray) -> "View":
        """The images at `positions` of this view (positions, not source indices)."""
        positions = np.asarray(positions, dtype=np.int64)
        indices = positions if self.indices is None else self.indices[positions]
        return View(self.source, indices, self.transform)

    def __repr__(self) -> str:
        return f"View({type(self.source).__name__}, {len(self)} images, {len(self.classes)} classes)"
