"""FP-NAS and PARSEC: learn a distribution over Archs, sampling K of them per architecture step."""
from .distribution import (ArchDistribution, FactorizedDistribution, JointDistribution, block_groups,
                           dimension_groups, parameter_counts)
from .estimator import arch_loss, arch_weights, beta_for_target, loglik_from_losses
from .num_samples import RULES, adaptive_num_samples

__all__ = ["ArchDistribution", "FactorizedDistribution", "JointDistribution", "RULES", "adaptive_num_samples",
           "arch_loss", "arch_weights", "beta_for_target", "block_groups", "dimension_groups",
           "loglik_from_losses", "parameter_counts"]
