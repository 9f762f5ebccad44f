"""The samplers stage 1 can train with and the scores attentive sampling can rank by, each chosen
by name in the config (`sampler.kind`, `sampler.score`). A new one is a function registered here
or in any module imported before training (see docs/architecture.md, "Extending")."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import SupernasError
from ..registry import Registry
from ..spaces import Arch, CostModel, SearchSpace
from .attentive import AttentiveSampler, LossScorer, PredictorScorer, Scorer
from .base import UniformSampler
from .constrained import FlopsConstrainedSampler
from .flops_tables import estimate_flops_tables
from .pareto_set import ParetoSetSampler, read_pareto_set


@dataclass
class SamplerContext:
    """What a sampler may be built from: the space, its cost model, the run's seed (every rank builds
    its sampler from the same seed, so all draw the same Archs), and the trainer's minibatch loss of
    a list of candidates (the `loss` score)."""

    space: SearchSpace
    cost: CostModel
    seed: int
    losses_of: Callable[[Sequence[Arch]], Sequence[float]] | None = None

    def rng(self) -> np.random.Generator:
        return np.random.default_rng([self.seed, 1])


SAMPLERS: Registry[Callable[[Any, SamplerContext], Any]] = Registry("sampler")
SCORERS: Registry[Callable[[Any, SamplerContext], Scorer]] = Registry("scorer")


def build_sampler(cfg: Any, context: SamplerContext) -> Any:
    """The sampler `cfg.kind` names (cfg: the `sampler` section of the stage-1 config)."""
    return SAMPLERS.get(cfg.kind, "sampler.kind")(cfg, context)


def _flops(cfg: Any, context: SamplerContext) -> FlopsConstrainedSampler:
    return FlopsConstrainedSampler(context.space, context.cost, context.rng(), bin_width=cfg.bin_width,
                                   n_prior=cfg.n_prior, cache_dir=cfg.cache_dir)


SAMPLERS.register("uniform")(lambda cfg, context: UniformSampler(context.space, context.rng()))
SAMPLERS.register("flops")(_flops)


@SAMPLERS.register("attentive")
def _attentive(cfg: Any, context: SamplerContext) -> AttentiveSampler:
    scorer = SCORERS.get(cfg.score, "sampler.score")(cfg, context)
    return AttentiveSampler(_flops(cfg, context), scorer, k=cfg.k, mode=cfg.mode)


@SAMPLERS.register("pareto")
def _pareto(cfg: Any, context: SamplerContext) -> ParetoSetSampler:
    if not cfg.pareto_set:
        raise SupernasError("sampler.kind=pareto needs sampler.pareto_set, the path of a pareto.json")
    members = read_pareto_set(cfg.pareto_set, context.space, context.cost)
    # Eqn (6)/(7): targets from the space's FLOPs prior, the same tables online sampling uses
    prior, _ = estimate_flops_tables(context.space, context.cost, cfg.n_prior, bin_width=cfg.bin_width,
                                     cache_dir=cfg.cache_dir)
    return ParetoSetSampler(context.space, members, prior, context.rng(), mode=cfg.mode)


@SCORERS.register("loss")
def _loss(cfg: Any, context: SamplerContext) -> LossScorer:
    if context.losses_of is None:
        raise SupernasError("sampler.score=loss needs the training loop's minibatch loss")
    return LossScorer(context.losses_of, batched=True)


@SCORERS.register("predictor")
def _predictor(cfg: Any, context: SamplerContext) -> PredictorScorer:
    if not cfg.predictor:
        raise SupernasError("sampler.score=predictor needs sampler.predictor, the path of a saved predictor")
    from ..predictors import load_predictor

    return PredictorScorer(load_predictor(cfg.predictor), context.space)
