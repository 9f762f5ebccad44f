"""How the search's weight step combines the gradients of its K sampled Archs.

* ``uniform``: the mean of the K Archs' loss gradients (a Monte-Carlo estimate of the expected
  loss under the distribution, as one-shot supernets train).
* ``importance``: the gradient of the log marginal likelihood log P(y | X, w, alpha), which PARSEC
  derives and FP-NAS's Section F uses for alpha: with the K samples,
  grad_w log P(y | X, w, alpha) ~= sum_k m_k grad_w log P(y | X, w, A_k), m_k the normalised
  likelihoods, i.e. a softmax of the batch log-likelihoods (minus the summed cross-entropy,
  divided by ``search.temperature``). Archs that explain the batch better get more of the step.

:class:`ImportanceWeightedGrads` forms that weighted sum one Arch at a time, so that only one
Arch's activations live at once and each Arch runs forward once: the softmax is accumulated
online (as a running maximum and a running normaliser), rescaling the gradients summed so far
whenever a better log-likelihood arrives.
"""
from __future__ import annotations

from typing import Sequence

import torch

WEIGHT_STEPS = ("uniform", "importance")


class ImportanceWeightedGrads:
    """Accumulates sum_k softmax(l)_k * grad L_k into the parameters' ``.grad``, Arch by Arch.

    Call :meth:`add` with each Arch's training loss (a scalar with a graph) and its batch
    log-likelihood (a scalar tensor, equal on every rank: under torchrun the search all-reduces
    each Arch's loss, one scalar per Arch), then :meth:`finish` once: the ``.grad`` then holds the
    weighted gradient and it returns the K weights. Nothing leaves the device.
    """

    def __init__(self, params: Sequence[torch.nn.Parameter]):
        self.params = list(params)
        self.max: torch.Tensor | None = None  # the largest log-likelihood so far
        self.norm: torch.Tensor | None = None  # sum_k exp(l_k - max)
        self.logliks: list[torch.Tensor] = []

    def add(self, loss: torch.Tensor, loglik: torch.Tensor) -> None:
        loglik = loglik.detach().float().reshape(())
        new_max = loglik if self.max is None else torch.maximum(self.max, loglik)
        if self.max is not None:
            shrink = torch.exp(self.max - new_max)  # earlier terms, relative to the new maximum
            grads = [p.grad for p in self.params if p.grad is not None]
            if grads:
                torch._foreach_mul_(grads, shrink)
            assert self.norm is not None  # set together with self.max
            self.norm = self.norm * shrink
        weight = torch.exp(loglik - new_max)
        (loss * weight.to(loss.dtype)).backward()
        self.norm = weight if self.norm is None else self.norm + weight
        self.max = new_max
        self.logliks.append(loglik)

    def finish(self) -> torch.Tensor:
        """Divide the summed gradients by the normaliser; returns the K weights (they sum to 1)."""
        if self.max is None:
            raise ValueError("no Arch was added")
        assert self.norm is not None  # set together with self.max
        grads = [p.grad for p in self.params if p.grad is not None]
        if grads:
            torch._foreach_mul_(grads, 1.0 / self.norm)
        return torch.softmax(torch.stack(self.logliks), 0)
