"""How many Archs to sample per architecture step: FP-NAS's entropy-adaptive K, PARSEC's fixed K.

FP-NAS samples many Archs while the distribution is spread (exploration, a noisy gradient
otherwise) and fewer as it sharpens (samples then repeat, extra ones add little). The exact
schedule of the main paper is not in our sources, so the rule is pluggable. The default,
"proportional", is the plainest reading of "adaptive to the distribution entropy": K = lambda * H,
with lambda per nat of entropy either given (then a larger space, having more entropy, draws
more Archs by itself, which public summaries of the paper name as a property of the method) or
K_max / H_max (K_max at the uniform start).
"""
from __future__ import annotations

import math
from typing import Callable, Union

import numpy as np

from ..errors import SupernasError

# rule(entropy, max_entropy, k_min, k_max) -> K before rounding up and clamping
Rule = Callable[[float, float, int, int], float]


def _proportional(h: float, h_max: float, k_min: int, k_max: int) -> float:
    """K proportional to the entropy: K_max at the uniform distribution, down to the K_min floor."""
    return k_max * h / h_max


def _linear(h: float, h_max: float, k_min: int, k_max: int) -> float:
    """K grows linearly with the entropy: K_max at the uniform distribution, K_min at a point mass."""
    return k_min + (k_max - k_min) * h / h_max


def _perplexity(h: float, h_max: float, k_min: int, k_max: int) -> float:
    """K = exp(H), the effective number of equally likely Archs, capped to [K_min, K_max].

    Scale-free (needs no max entropy), but on large spaces exp(H) stays above K_max until the
    distribution is nearly concentrated, so K only drops late in the search.
    """
    return math.exp(min(h, 700.0))


def _fixed(h: float, h_max: float, k_min: int, k_max: int) -> float:
    """PARSEC: always K_max."""
    return k_max


RULES: dict[str, Rule] = {"proportional": _proportional, "linear": _linear, "perplexity": _perplexity, "fixed": _fixed}


def adaptive_num_samples(entropy: float, max_entropy: float, k_min: int, k_max: int,
                         rule: Union[str, Rule] = "proportional", per_nat: float | None = None) -> int:
    """Number of Archs K to sample this step, in [k_min, k_max], non-decreasing in the entropy.

    ``rule`` is a name in :data:`RULES` ("proportional" default, "linear", "perplexity", "fixed")
    or a callable ``rule(entropy, max_entropy, k_min, k_max) -> float``; its value is rounded up
    and clamped. ``per_nat`` (proportional only) fixes K = per_nat * entropy instead of scaling
    K_max by H / H_max. Pass the entropy as a float or a 0-d tensor (``dist.entropy()``), and
    ``dist.max_entropy()``.
    """
    h = float(entropy)
    h_max = float(max_entropy)
    ints = (int, np.integer)
    if not isinstance(k_min, ints) or not isinstance(k_max, ints) or k_min < 1 or k_max < k_min:
        raise SupernasError(f"need integers 1 <= k_min <= k_max, got k_min={k_min!r}, k_max={k_max!r}")
    if not (h_max > 0 and math.isfinite(h_max)):
        raise SupernasError(f"max_entropy must be a positive finite number, got {max_entropy!r}; "
                            f"use dist.max_entropy()")
    if not math.isfinite(h):
        raise SupernasError(f"entropy must be finite, got {entropy!r}")
    h = min(max(h, 0.0), h_max)  # rounding can leave it a hair outside [0, max]
    if isinstance(rule, str):
        if rule not in RULES:
            raise SupernasError(f"unknown sampling rule '{rule}'; choose one of {', '.join(RULES)} or pass a callable")
        fn = RULES[rule]
    elif callable(rule):
        fn = rule
    else:
        raise SupernasError(f"rule must be a name or a callable, got {type(rule).__name__}")
    if per_nat is not None:
        if rule != "proportional":
            raise SupernasError(f"per_nat (Archs per nat of entropy) goes with the 'proportional' rule, not {rule!r}")
        if not (isinstance(per_nat, (int, float)) and not isinstance(per_nat, bool) and per_nat > 0):
            raise SupernasError(f"per_nat must be a positive number of Archs per nat of entropy, got {per_nat!r}")
        k = per_nat * h
    else:
        k = fn(h, h_max, k_min, k_max)
    # a small tolerance so that exact values (e.g. K_max at the uniform) do not round up past them
    return int(min(max(math.ceil(float(k) - 1e-9), k_min), k_max))
