"""Architecture samplers for supernet training: uniform, FLOPs-constrained, attentive (BestUp /
WorstUp, online or from an offline Pareto set), and a run-ahead prefetcher.

Every sampler takes an explicit numpy Generator (or seed) and checkpoints through
``state_dict()`` / ``load_state_dict()``, so a resumed run draws the Archs it would have drawn.
Give every DDP rank the same seed and they draw the same Archs at each step.
"""
from .attentive import AttentiveSampler, Candidates, LossScorer, PredictorScorer, Scorer, as_scorer
from .base import Sampler, UniformSampler
from .constrained import FlopsConstrainedSampler, SamplerStats, sample_in_range
from .flops_tables import FlopsPrior, ProposalTable, bin_of, estimate_flops_tables
from .pareto_set import ParetoSetSampler, read_pareto_set
from .prefetch import Prefetcher
from .registry import SAMPLERS, SCORERS, SamplerContext, build_sampler

__all__ = ["AttentiveSampler", "Candidates", "FlopsConstrainedSampler", "FlopsPrior", "LossScorer",
           "ParetoSetSampler", "PredictorScorer", "Prefetcher", "ProposalTable", "SAMPLERS", "SCORERS", "Sampler",
           "SamplerContext", "SamplerStats", "Scorer", "UniformSampler", "as_scorer", "bin_of", "build_sampler",
           "estimate_flops_tables", "read_pareto_set", "sample_in_range"]
