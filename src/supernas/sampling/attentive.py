"""Attentive sampling (AttentiveNAS, Algorithm 1): of k candidates at one FLOPs target, train the
best (BestUp-k) or the worst (WorstUp-k) by a cheap performance estimate.

The estimate comes through the :class:`Scorer` seam, which this module does not fill in alone:

* :class:`PredictorScorer` -- predicted accuracy from any regressor with ``predict(X)`` over
  ``space.encode(archs)`` (higher is better; the paper's BestUp-50 (acc), so default k = 50);
* :class:`LossScorer` -- the minibatch loss of each candidate (lower is better; the paper's
  BestUp-3 (loss), default k = 3). The training loop supplies it: a closure that, under
  ``torch.no_grad()``, runs the supernet on the current batch with the candidate's Arch and
  returns the loss as a float. A bare callable passed as a scorer is taken as such a closure.

The loss scorer needs the live model, so it runs in the training loop; only the candidates can be
drawn ahead: ``Prefetcher(attentive.propose)`` then ``attentive.choose(candidates)`` per step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol, Sequence, cast, runtime_checkable

import numpy as np

from ..errors import SupernasError
from ..spaces import Arch
from .base import check_state
from .constrained import FlopsConstrainedSampler

MODES = ("best", "worst")


@runtime_checkable
class Scorer(Protocol):
    """Scores candidate Archs; ``higher_is_better`` says which way 'best' points."""

    higher_is_better: bool

    def score(self, archs: Sequence[Arch]) -> np.ndarray: ...


class LossScorer:
    """Wraps ``loss_of(arch) -> float`` (the trainer's no-grad minibatch loss); lower is better."""

    higher_is_better = False
    default_k = 3

    def __init__(self, loss_of: Callable[[Arch], float] | Callable[[Sequence[Arch]], Sequence[float]],
                 batched: bool = False):
        """`batched`: `loss_of` takes the list of candidates and returns one loss each (the trainer
        does, to average all of them over ranks in one all-reduce)."""
        if not callable(loss_of):
            raise SupernasError(f"LossScorer needs a callable arch -> loss, got {type(loss_of).__name__}")
        self.loss_of, self.batched = loss_of, batched

    def score(self, archs: Sequence[Arch]) -> np.ndarray:
        # `batched` says which of the two kinds of callable loss_of is
        if self.batched:
            return np.asarray(cast("Callable[[Sequence[Arch]], Sequence[float]]", self.loss_of)(list(archs)),
                              dtype=np.float64).reshape(-1)
        return np.array([float(cast("Callable[[Arch], float]", self.loss_of)(a)) for a in archs], dtype=np.float64)


class PredictorScorer:
    """Predicted accuracy of ``predictor.predict(space.encode(archs))``; higher is better."""

    higher_is_better = True
    default_k = 50

    def __init__(self, predictor: Any, space):
        if not callable(getattr(predictor, "predict", None)):
            raise SupernasError(f"the predictor must have a predict(X) method (scikit-learn style), "
                                f"got {type(predictor).__name__}")
        self.predictor, self.space = predictor, space

    def score(self, archs: Sequence[Arch]) -> np.ndarray:
        return np.asarray(self.predictor.predict(self.space.encode(list(archs))), dtype=np.float64).reshape(-1)


def as_scorer(scorer: "Scorer | Callable[[Arch], float]") -> Scorer:
    """A Scorer as is; a bare callable as a per-Arch loss (lower is better)."""
    if isinstance(scorer, Scorer):
        return scorer
    if callable(scorer):
        return LossScorer(scorer)
    raise SupernasError(f"a scorer must have score(archs) and higher_is_better, or be a callable arch -> loss; "
                        f"got {type(scorer).__name__}")


@dataclass(frozen=True)
class Candidates:
    """The k candidates of one attentive step, all inside one target FLOPs bin."""

    target_bin: int
    archs: list[Arch]
    mflops: np.ndarray


class AttentiveSampler:
    """BestUp-k / WorstUp-k over a :class:`FlopsConstrainedSampler`.

    Args:
        base: draws the target bin (from the FLOPs prior) and the candidates inside it.
        scorer: a :class:`Scorer`, or a callable arch -> minibatch loss.
        k: candidates per step (default: the scorer's ``default_k``, else 3).
        mode: 'best' keeps the best-scored candidate (BestUp), 'worst' the worst (WorstUp).
    Ties go to the first candidate drawn, so a step is deterministic.
    """

    kind = "attentive"

    def __init__(self, base: FlopsConstrainedSampler, scorer: "Scorer | Callable[[Arch], float]",
                 k: int | None = None, mode: str = "best"):
        if not isinstance(base, FlopsConstrainedSampler):
            raise SupernasError(f"AttentiveSampler needs a FlopsConstrainedSampler as base, got {type(base).__name__}")
        if mode not in MODES:
            raise SupernasError(f"mode must be 'best' (BestUp) or 'worst' (WorstUp), got {mode!r}")
        self.scorer = as_scorer(scorer)
        k = getattr(self.scorer, "default_k", 3) if k is None else k
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise SupernasError(f"k (candidates per step) must be a positive integer such as 3 or 50, got {k!r}")
        self.base, self.k, self.mode = base, int(k), mode
        self.last: Candidates | None = None
        self.last_scores: np.ndarray | None = None

    def propose(self, target_bin: int | None = None) -> Candidates:
        """k candidates in one bin (drawn from the prior unless given); no scoring yet."""
        b = self.base.sample_target() if target_bin is None else target_bin
        idx, mf = self.base.sample_indices_at(b, self.k)
        return Candidates(int(b), self.base.space.from_indices(idx), mf)

    def choose(self, candidates: Candidates) -> Arch:
        """Score the candidates and keep the best or the worst."""
        scores = np.asarray(self.scorer.score(candidates.archs), dtype=np.float64).reshape(-1)
        if scores.shape != (len(candidates.archs),):
            raise SupernasError(f"the scorer returned {scores.size} scores for {len(candidates.archs)} candidates; "
                                "it must return one score per Arch")
        if not np.all(np.isfinite(scores)):
            raise SupernasError(f"the scorer returned non-finite scores {scores.tolist()}; check the loss "
                                "(a diverged run gives nan) or the predictor's input")
        want_max = self.scorer.higher_is_better == (self.mode == "best")
        i = int(np.argmax(scores) if want_max else np.argmin(scores))
        self.last, self.last_scores = candidates, scores
        return candidates.archs[i]

    def sample(self, target_bin: int | None = None) -> Arch:
        return self.choose(self.propose(target_bin))

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "k": self.k, "mode": self.mode, "base": self.base.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        state = check_state(state, self.kind)
        if (state.get("k"), state.get("mode")) != (self.k, self.mode):
            raise SupernasError(f"the sampler state is for k={state.get('k')}, mode={state.get('mode')!r} but this "
                                f"sampler has k={self.k}, mode={self.mode!r}; build it with the resumed run's settings")
        self.base.load_state_dict(state["base"])
