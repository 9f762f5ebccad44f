"""FP-NAS and PARSEC: learn a distribution over Archs, sampling K of them per architecture step."""
from typing import Any

from .distribution import (
    ArchDistribution,
    FactorizedDistribution,
    JointDistribution,
    block_groups,
    dimension_groups,
    parameter_counts,
)
from .estimator import arch_loss, arch_weights, beta_for_target, loglik_from_losses
from .num_samples import RULES, adaptive_num_samples

__all__ = ["ArchDistribution", "FactorizedDistribution", "JointDistribution", "ProbabilisticSearch", "RULES",
           "adaptive_num_samples", "arch_loss", "arch_weights", "beta_for_target", "block_groups", "dimension_groups",
           "loglik_from_losses", "parameter_counts"]


def __getattr__(name: str) -> Any:
    """ProbabilisticSearch (the `fpnas` command's search) on first use: it pulls in data, models and
    the training loop, which the distribution and estimator above do not need."""
    if name == "ProbabilisticSearch":
        from .probabilistic import ProbabilisticSearch

        return ProbabilisticSearch
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
