"""Exponential moving average (EMA) of a model's weights, the "EMA" of the FP-NAS training recipe.

After each optimizer step every parameter moves as `ema = d * ema + (1 - d) * weight`; buffers
(BatchNorm running statistics) are copied, not averaged, so the averaged model normalises with
the statistics the training model has just measured. With `warmup`, the decay starts low and
rises as `min(decay, (1 + n) / (10 + n))` after n updates, so that the average of a short run is
not dominated by the random initial weights.
"""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class ModelEma:
    """A frozen copy of `model` (in eval mode) that follows its weights with decay `decay` per update."""

    def __init__(self, model: nn.Module, decay: float, warmup: bool = True):
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA decay must lie in [0, 1], got {decay}")
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay, self.warmup = float(decay), warmup
        self.updates = 0

    def current_decay(self) -> float:
        """The decay the next update applies."""
        if not self.warmup:
            return self.decay
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold `model`'s current weights into the average (call after each optimizer step)."""
        d = self.current_decay()
        mine: list[torch.Tensor] = list(self.module.parameters())
        theirs = [p.detach() for p in model.parameters()]
        # mul then add (not lerp): decay 0 copies and decay 1 keeps, exactly
        torch._foreach_mul_(mine, d)
        torch._foreach_add_(mine, theirs, alpha=1.0 - d)
        for b, src in zip(self.module.buffers(), model.buffers()):
            b.copy_(src)
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.module.state_dict(), "updates": self.updates, "decay": self.decay,
                "warmup": self.warmup}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["model"])
        self.updates = int(state["updates"])
