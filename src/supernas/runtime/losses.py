"""Losses of supernet training: label-smoothed cross-entropy on labels, and the soft-target loss
of in-place distillation (the largest Arch teaches the others within the same step)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def label_smoothing_ce(logits: torch.Tensor, target: torch.Tensor, smoothing: float = 0.1) -> torch.Tensor:
    return F.cross_entropy(logits.float(), target, label_smoothing=smoothing)


def soft_target_ce(logits: torch.Tensor, teacher_probs: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against the teacher's probabilities (KL up to a constant in the student)."""
    return -(teacher_probs * F.log_softmax(logits.float(), dim=-1)).sum(-1).mean()
