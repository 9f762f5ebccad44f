"""Step metrics that stay on the device until they are logged.

Reading a GPU tensor on the host (`.item()`, `float(t)`, `.tolist()`) waits for every kernel
queued before it, so a loop that reads its loss each step cannot queue step t+1 while step t
runs. The loops add each step's losses here as device tensors and read all of them in one
transfer every `log.every_steps` (and before a checkpoint, so a non-finite loss is caught
before it is saved).
"""
from __future__ import annotations

import math

import torch

from ..errors import SupernasError


class DeviceMeans:
    """Running sums of scalar tensors, read as means in one host transfer."""

    def __init__(self) -> None:
        self._sums: dict[str, torch.Tensor] = {}
        self._count = 0

    def add(self, **values: torch.Tensor) -> None:
        """One step's values (0-dim tensors, any device); counted once per call."""
        for name, v in values.items():
            v = v.detach().float()
            self._sums[name] = self._sums[name] + v if name in self._sums else v.clone()
        self._count += 1

    def __len__(self) -> int:
        return self._count

    def read(self, reset: bool = True) -> dict[str, float]:
        """The means since the last reset (one device-to-host copy for all); `reset` starts afresh."""
        if not self._count:
            return {}
        names = list(self._sums)
        values = torch.stack([self._sums[n] for n in names]).cpu().tolist()
        out = {n: v / self._count for n, v in zip(names, values)}
        if reset:
            self._sums, self._count = {}, 0
        return out


def require_finite(values: dict[str, float], step: int, lr_key: str) -> None:
    """Stop a run whose logged losses are no longer finite, naming the setting to lower."""
    for name, v in values.items():
        if not math.isfinite(v):
            raise SupernasError(f"the {name} became {v} by step {step}; lower {lr_key} or check the data")
