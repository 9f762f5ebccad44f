"""Offline attentive sampling (AttentiveNAS BestUp-1M / WorstUp-1M): train only Archs of a Pareto
set precomputed offline (e.g. by a predictor over a million random Archs).

How a member is picked: with a FLOPs prior, a target bin is drawn from it (as online sampling
does) and the member whose FLOPs lie nearest the bin's centre is returned, ties at random; the
set is then trained in proportion to the space's FLOPs distribution, as Eqn. (6) weights it,
rather than in proportion to how densely the front was tabulated. Without a prior, members are
drawn uniformly.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import SupernasError
from ..spaces import Arch, SearchSpace, as_generator
from .base import check_state, rng_state, set_rng_state
from .flops_tables import FlopsPrior


class ParetoSetSampler:
    """Draws from a fixed list of (Arch, MFLOPs): nearest to a prior-drawn target, or uniformly."""

    kind = "pareto"

    def __init__(self, space: SearchSpace, archs_with_flops: Sequence[tuple[Arch, float]],
                 rng: "np.random.Generator | int | None" = None, prior: FlopsPrior | None = None):
        pairs = list(archs_with_flops)
        if not pairs:
            raise SupernasError("the Pareto set is empty; give a non-empty list of (Arch, MFLOPs) pairs")
        try:
            self.archs = [space.arch(a) for a, _ in pairs]
            self.mflops = np.array([float(f) for _, f in pairs], dtype=np.float64)
        except (TypeError, ValueError) as e:
            if isinstance(e, SupernasError):
                raise
            raise SupernasError(f"the Pareto set must be a list of (Arch, MFLOPs) pairs ({e})") from None
        if not np.all(np.isfinite(self.mflops)):
            raise SupernasError("the Pareto set has non-finite MFLOPs; score its Archs with CostModel.mflops")
        self.space, self.prior = space, prior
        self.rng = as_generator(rng)

    def sample(self) -> Arch:
        if self.prior is None:
            return self.archs[int(self.rng.integers(len(self.archs)))]
        target = self.prior.centre(self.prior.sample_target(self.rng))
        gap = np.abs(self.mflops - target)
        nearest = np.flatnonzero(gap == gap.min())
        return self.archs[int(nearest[self.rng.integers(len(nearest))])]

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "size": len(self.archs), "rng": rng_state(self.rng)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        state = check_state(state, self.kind)
        if state.get("size") != len(self.archs):
            raise SupernasError(f"the sampler state is for a Pareto set of {state.get('size')} Archs, this one has "
                                f"{len(self.archs)}; load the Pareto set of the run being resumed")
        set_rng_state(self.rng, state["rng"])
