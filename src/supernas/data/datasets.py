"""Raw images (files on disk or uint8 tensors in memory) and the transformed views of them.

A split is a :class:`View`: a source, the indices it keeps, and a transform. Views share their
source, so the train, search and calibration splits cost one copy of the data between them.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.datasets.folder import default_loader


class ImageFiles:
    """Image files with their labels; an image loads as an RGB PIL image (grey is converted)."""

    def __init__(self, samples: Sequence[tuple[str, int]], classes: Sequence[str]):
        self.samples = list(samples)
        self.classes = list(classes)
        self.targets = np.fromiter((t for _, t in self.samples), dtype=np.int64, count=len(self.samples))

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> Any:
        return default_loader(self.samples[index][0])


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
        image = self.transform(self.source.load(index))
        # v2 transforms return a tv_tensors.Image; a plain tensor collates and moves with less overhead.
        return image.as_subclass(torch.Tensor), int(self.source.targets[index])

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
