"""Rank agreement between predicted and measured accuracies (the paper reports Kendall's tau)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import SupernasError


def kendall_tau(pred: "Sequence[float] | np.ndarray", true: "Sequence[float] | np.ndarray") -> float:
    """Kendall's tau-b of two score vectors (1: same order, -1: reversed, 0: unrelated)."""
    a = np.asarray(pred, dtype=np.float64).reshape(-1)
    b = np.asarray(true, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise SupernasError(f"kendall_tau needs two vectors of one length, got {a.size} and {b.size}")
    if a.size < 2:
        raise SupernasError("kendall_tau needs at least two pairs of scores")
    try:
        from scipy.stats import kendalltau
    except ImportError:  # scipy comes with scikit-learn, but keep the metric usable without it
        return _tau_b(a, b)
    tau = kendalltau(a, b).statistic
    return float(tau) if np.isfinite(tau) else 0.0


def pearson_r(a: "Sequence[float] | np.ndarray", b: "Sequence[float] | np.ndarray") -> float:
    """Pearson's correlation of two score vectors; 0 when either is constant (no linear relation to see)."""
    x = np.asarray(a, dtype=np.float64).reshape(-1)
    y = np.asarray(b, dtype=np.float64).reshape(-1)
    if x.shape != y.shape or x.size < 2:
        raise SupernasError(f"pearson_r needs two vectors of one length (at least 2), got {x.size} and {y.size}")
    if x.std() == 0 or y.std() == 0:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])


def _tau_b(a: np.ndarray, b: np.ndarray) -> float:
    """O(n^2) tau-b over all pairs; fine for the few thousand Archs a predictor is checked on."""
    da = np.sign(a[:, None] - a[None, :])
    db = np.sign(b[:, None] - b[None, :])
    iu = np.triu_indices(a.size, 1)
    da, db = da[iu], db[iu]
    concord = float((da * db).sum())
    denom = np.sqrt(float((da != 0).sum()) * float((db != 0).sum()))
    return concord / denom if denom > 0 else 0.0
