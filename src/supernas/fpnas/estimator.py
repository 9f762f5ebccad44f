"""The architecture gradient of FP-NAS (supplementary Section F, Eqn (2)).

For the cost-aware loss  L(w, alpha) = -log P(y | X, w, alpha) + beta log C(alpha),
with K Archs A_k sampled from P(A | alpha), Eqn (2) approximates

    grad_alpha L  ~=  sum_k m_k grad_alpha[-log P(A_k | alpha)],
    m_k = P(y_val | X_val, w, A_k) / sum_k' P(y_val | X_val, w, A_k')  -  beta C(A_k) / sum_k' C(A_k').

The likelihood term is a softmax of the validation log-likelihoods (the self-normalised
importance weight of PARSEC: P(y | alpha) is estimated by the mean over the samples, whose 1/K
cancels); the cost term divides each cost by the sum over the K samples (C(alpha) estimated the
same way). :func:`arch_loss` is the surrogate sum_k m_k * (-log P(A_k | alpha)) with m_k
detached, so its backward is exactly that gradient and any torch optimizer can step alpha.

The cost term has three forms (``cost_mode``): the paper's ``linear`` one, a per-sample ``hinge``
(only the part of each C_k above the budget T), and ``hinge_expected``, a hinge on the expected
cost of the distribution, beta * max(E[C] - T, 0) / T, whose score-function gradient gives
m_k -= beta * [mean C > T] * (C_k - mean of the other C) / (K * T).
"""
from __future__ import annotations

import math
from typing import Any, Optional, cast

import numpy as np
import torch

from ..errors import SupernasError
from .distribution import ArchDistribution

COST_MODES = ("linear", "hinge", "hinge_expected")
COST_NORMS = ("sum", "target")


def _vector(x: Any, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x.detach().to(torch.float64).cpu()
    else:
        try:
            t = torch.as_tensor(np.asarray(x, dtype=np.float64))
        except (TypeError, ValueError):
            raise SupernasError(f"{name} must be a 1-D sequence of numbers, got {type(x).__name__}") from None
    if t.dim() != 1 or t.numel() == 0:
        raise SupernasError(f"{name} must be a non-empty 1-D sequence (one value per sampled Arch), "
                            f"got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise SupernasError(f"{name} contains NaN or infinite values; check the validation pass")
    return t


def loglik_from_losses(mean_losses: Any, n_examples: int) -> torch.Tensor:
    """Validation log-likelihoods from mean cross-entropy losses over ``n_examples`` examples.

    P(y_val | X_val, w, A) is a product over the validation examples, so its log is minus the
    *summed* loss. Passing mean losses as log-likelihoods instead tempers the softmax by n.
    """
    if not isinstance(n_examples, int) or n_examples < 1:
        raise SupernasError(f"n_examples must be a positive integer, got {n_examples!r}")
    return -_vector(mean_losses, "mean_losses") * n_examples


def arch_weights(val_loglik: Any, costs: Any = None, beta: float = 0.0, cost_target: Optional[float] = None,
                 cost_mode: str = "linear", cost_norm: str = "sum", temperature: float = 1.0) -> torch.Tensor:
    """The weights m_k of Eqn (2), float64 (K,), detached.

    * ``val_loglik``: log P(y_val | X_val, w, A_k) per sample (see :func:`loglik_from_losses`).
    * ``costs``: C(A_k), e.g. MFLOPs from ``CostModel.mflops_indices``; needed when beta != 0.
    * ``cost_mode="linear"``: the paper's term beta * C_k / sum C.
      ``"hinge"``: only the part above ``cost_target`` is penalised: beta * max(C_k - T, 0) / sum C,
      which is zero for Archs within budget and equals the linear term when T = 0.
      ``"hinge_expected"``: the loss beta * max(E[C] - T, 0) / T on the distribution's expected
      cost; while the K samples' mean cost is above T its score-function gradient subtracts
      beta * (C_k - b_k) / (K * T), b_k the mean cost of the other samples (a leave-one-out
      baseline: unbiased, and Archs cheaper than their batch-mates gain probability); within
      budget the term is zero. Relative to T by definition, so ``cost_norm`` does not apply.
    * ``cost_norm``: ``"sum"`` (the paper's sum over the K samples) or ``"target"`` (divide by
      K * cost_target instead, so the penalty of an Arch does not depend on its batch-mates).
    * ``temperature``: divides the log-likelihoods before the softmax (1 = the paper).
    """
    ll = _vector(val_loglik, "val_loglik")
    if not (isinstance(temperature, (int, float)) and temperature > 0):
        raise SupernasError(f"temperature must be a positive number, got {temperature!r}")
    w = torch.softmax(ll / float(temperature), 0)
    if not isinstance(beta, (int, float)) or not math.isfinite(beta) or beta < 0:
        raise SupernasError(f"beta must be a finite number >= 0, got {beta!r}")
    if beta == 0:
        return w
    if costs is None:
        raise SupernasError("costs are needed when beta > 0; pass CostModel(space).mflops_indices(idx)")
    c = _vector(costs, "costs")
    if c.numel() != ll.numel():
        raise SupernasError(f"costs has {c.numel()} values but val_loglik has {ll.numel()}; give one per sampled Arch")
    if bool((c < 0).any()):
        raise SupernasError("costs must be >= 0")
    if cost_mode not in COST_MODES:
        raise SupernasError(f"unknown cost_mode '{cost_mode}'; choose one of {', '.join(COST_MODES)}")
    if cost_norm not in COST_NORMS:
        raise SupernasError(f"unknown cost_norm '{cost_norm}'; choose one of {', '.join(COST_NORMS)}")
    needs_target = cost_mode != "linear" or cost_norm == "target"
    if needs_target and (cost_target is None or not cost_target > 0):
        raise SupernasError(f"cost_mode='{cost_mode}', cost_norm='{cost_norm}' need a positive cost_target "
                            f"(e.g. the MFLOPs budget), got {cost_target!r}")
    # (the casts: cost_target is read in the modes that need it only, so there it is a positive number)
    if cost_mode == "hinge_expected":
        return w - float(beta) * expected_hinge_grad_weights(c, float(cast(float, cost_target)))
    excess = (c - float(cast(float, cost_target))).clamp(min=0) if cost_mode == "hinge" else c
    if cost_norm == "sum":
        total = c.sum()
        if not total > 0:
            raise SupernasError("the costs sum to zero, so they cannot be normalised; check the cost model")
    else:
        total = torch.tensor(c.numel() * float(cast(float, cost_target)), dtype=torch.float64)
    return w - float(beta) * excess / total


def expected_hinge_grad_weights(costs: torch.Tensor, cost_target: float) -> torch.Tensor:
    """Per-sample weights g_k with sum_k g_k grad log P(A_k) an unbiased estimate of
    grad max(E[C] - T, 0) / T while the samples' mean cost exceeds T (zero otherwise)."""
    k = costs.numel()
    if not float(costs.mean()) > cost_target:
        return torch.zeros_like(costs)
    others = (costs.sum() - costs) / (k - 1) if k > 1 else torch.zeros_like(costs)
    return (costs - others) / (k * cost_target)


def arch_loss(dist: ArchDistribution, idx: Any, val_loglik: Any, costs: Any = None, beta: float = 0.0,
              cost_target: Optional[float] = None, cost_mode: str = "linear", cost_norm: str = "sum",
              temperature: float = 1.0) -> torch.Tensor:
    """Scalar surrogate whose gradient in alpha is Eqn (2): sum_k m_k * (-log P(A_k | alpha)).

    ``idx`` are the K sampled rows exactly as :meth:`ArchDistribution.sample` returned them;
    the other arguments are those of :func:`arch_weights`. Minimising it (gradient descent)
    raises the probability of Archs with a high validation likelihood and a low cost.
    The value itself is not a loss to monitor; log ``dist.entropy()`` or the mean likelihood.
    """
    if not isinstance(dist, ArchDistribution):
        raise SupernasError(f"dist must be a FactorizedDistribution or JointDistribution, got {type(dist).__name__}")
    nll = -dist.log_prob(idx)
    w = arch_weights(val_loglik, costs, beta, cost_target, cost_mode, cost_norm, temperature)
    if w.numel() != nll.numel():
        raise SupernasError(f"{nll.numel()} sampled Archs but {w.numel()} log-likelihoods; give one per Arch")
    return (w.to(device=nll.device, dtype=nll.dtype) * nll).sum()


def beta_for_target(costs: Any, cost_target: float, overshoot: float = 0.1, cost_norm: str = "sum") -> float:
    """A beta for ``cost_mode='hinge'`` that makes exceeding the budget by ``overshoot`` cost as
    much as an average sample's likelihood weight (1/K).

    With the "sum" norm an Arch at (1 + overshoot) * T is penalised beta * overshoot * T / (K * mean C),
    so beta = mean C / (overshoot * T); with the "target" norm, beta = 1 / overshoot, which is also
    the beta of ``cost_mode='hinge_expected'`` (an Arch costing overshoot * T more than its
    batch-mates loses beta * overshoot / K there, while the mean is over budget). Pass costs
    sampled from the current distribution (mean C is their mean). Archs further above the
    budget are pushed down harder than the likelihood can pull them up; re-estimate as it moves.
    """
    c = _vector(costs, "costs")
    if not (isinstance(cost_target, (int, float)) and cost_target > 0):
        raise SupernasError(f"cost_target must be a positive number (the budget), got {cost_target!r}")
    if not (isinstance(overshoot, (int, float)) and overshoot > 0):
        raise SupernasError(f"overshoot must be a positive fraction such as 0.1, got {overshoot!r}")
    if cost_norm not in COST_NORMS:
        raise SupernasError(f"unknown cost_norm '{cost_norm}'; choose one of {', '.join(COST_NORMS)}")
    if cost_norm == "target":
        return 1.0 / overshoot
    return float(c.mean()) / (overshoot * float(cost_target))
