"""Distributions over the Archs of a space, with learnable logits (the architecture parameters).

Both parameterisations are products of independent categoricals over *groups* of dimensions:

* :class:`FactorizedDistribution` - one group per searched dimension (FP-NAS's coarse stage).
* :class:`JointDistribution` - one group per block (all of ``sI.J.*`` together, one categorical
  over the product of the block's choices, FP-NAS's fine stage); dimensions outside blocks
  (resolution, depths, ...) keep a group each.

Sharing one implementation keeps sampling, log-probabilities, entropy and the mode identical
in behaviour; only the grouping differs. Archs travel as ``(N, D)`` int64 index matrices in the
space's dimension order (``space.from_indices(idx.numpy())`` turns them into Archs).

Elastic depth: samples are *raw* - the choices of blocks a sampled depth switches off are still
drawn. Pass the raw indices to :meth:`log_prob` / ``arch_loss``; canonicalising them first
would change their probability. The FP-NAS spaces have no elastic depth.
"""
from __future__ import annotations

import math
import re
from typing import Any, TypeAlias, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SupernasError
from ..spaces import SearchSpace, get_space

_BLOCK_DIM = re.compile(r"^(s\d+\.\d+)\.[A-Za-z_]+$")

IndexLike: TypeAlias = "torch.Tensor | np.ndarray"


def _resolve_space(space: Any) -> SearchSpace:
    if isinstance(space, SearchSpace):
        return space
    if isinstance(space, str):
        return get_space(space)
    raise SupernasError(f"a distribution needs a SearchSpace or a space name, got {type(space).__name__}; "
                        f"pass supernas.get_space('fpnas-l0') or the name itself")


def block_groups(space: SearchSpace) -> list[tuple[str, tuple[int, ...]]]:
    """(name, columns) per block: dims named ``sI.J.field`` share a group; others stand alone."""
    groups: dict[str, list[int]] = {}
    for col, d in enumerate(space.dims):
        m = _BLOCK_DIM.match(d.name)
        groups.setdefault(m.group(1) if m else d.name, []).append(col)
    return [(name, tuple(cols)) for name, cols in groups.items()]


def dimension_groups(space: SearchSpace) -> list[tuple[str, tuple[int, ...]]]:
    """One group per dimension: the factorized parameterisation."""
    return [(d.name, (col,)) for col, d in enumerate(space.dims)]


class ArchDistribution(nn.Module):
    """A product of independent categoricals, one per group of dimensions (see module doc).

    The logits start at zero (uniform over the space, maximal entropy). Within a group the
    flat choice index enumerates the group's columns in C order (first column most significant).
    """

    # buffers (registered in __init__)
    _group_of: torch.Tensor
    _stride: torch.Tensor
    _card: torch.Tensor

    def __init__(self, space: SearchSpace | str, groups: list[tuple[str, tuple[int, ...]]]):
        super().__init__()
        self.space = _resolve_space(space)
        self.group_names = [name for name, _ in groups]
        self.group_columns = [cols for _, cols in groups]
        card = self.space.cardinalities
        self.group_sizes = [int(np.prod(card[list(cols)])) for cols in self.group_columns]
        self.logits = nn.ParameterList(nn.Parameter(torch.zeros(s)) for s in self.group_sizes)
        # Per column: its group and its stride inside the group's flat index, to (un)ravel at once.
        group_of, stride = np.zeros(len(card), np.int64), np.zeros(len(card), np.int64)
        for g, cols in enumerate(self.group_columns):
            s = 1
            for c in reversed(cols):
                group_of[c], stride[c] = g, s
                s *= int(card[c])
        self.register_buffer("_group_of", torch.from_numpy(group_of), persistent=False)
        self.register_buffer("_stride", torch.from_numpy(stride), persistent=False)
        self.register_buffer("_card", torch.from_numpy(card.copy()), persistent=False)

    # ------------------------------------------------------------------ helpers
    def _log_probs(self) -> torch.Tensor:
        """(G, M) log-probabilities, padded with -inf to the largest group (never sampled)."""
        width = max(self.group_sizes)
        return torch.stack([F.pad(F.log_softmax(lg, 0), (0, width - lg.numel()), value=-math.inf)
                            for lg in self.logits])

    def _check_indices(self, idx: Any) -> torch.Tensor:
        if isinstance(idx, np.ndarray):
            idx = torch.from_numpy(idx)
        if not isinstance(idx, torch.Tensor):
            raise SupernasError(f"architecture indices must be a torch tensor or numpy array, got "
                                f"{type(idx).__name__}; use space.to_indices(archs)")
        D = len(self.space.dims)
        if idx.dim() == 1:
            idx = idx[None]
        if idx.dim() != 2 or idx.shape[1] != D or idx.dtype.is_floating_point:
            raise SupernasError(f"architecture indices must be an integer (N, {D}) matrix for space "
                                f"'{self.space.name}', got {tuple(idx.shape)} {idx.dtype}")
        idx = idx.to(device=self._card.device, dtype=torch.long)
        if bool(((idx < 0) | (idx >= self._card)).any()):
            bad = int(((idx < 0) | (idx >= self._card)).any(0).nonzero()[0])
            raise SupernasError(f"index out of range in column {bad} ('{self.space.dims[bad].name}', "
                                f"{int(self._card[bad])} choices); indices must come from this space")
        return idx

    def _flat(self, idx: torch.Tensor) -> torch.Tensor:
        """(N, G) flat choice index of every group."""
        flat = torch.zeros(idx.shape[0], len(self.group_sizes), dtype=torch.long, device=idx.device)
        return flat.index_add_(1, self._group_of, idx * self._stride)

    def _unflat(self, flat: torch.Tensor) -> torch.Tensor:
        """(N, G) flat group choices -> (N, D) column indices."""
        return (flat[:, self._group_of] // self._stride) % self._card

    # ------------------------------------------------------------------ API
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` Archs drawn independently, as an (n, D) int64 tensor (no gradient)."""
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
            raise SupernasError(f"the number of samples must be a positive integer, got {n!r}")
        with torch.no_grad():
            probs = self._log_probs().exp()
            flat = torch.multinomial(probs, int(n), replacement=True, generator=generator)  # (G, n)
        return self._unflat(flat.t())

    def log_prob(self, idx: IndexLike) -> torch.Tensor:
        """(N,) log P(A | alpha) of each row, differentiable in the logits."""
        idx = self._check_indices(idx)
        flat = self._flat(idx)
        lp = self._log_probs()
        rows = torch.arange(lp.shape[0], device=lp.device)
        return lp[rows[None], flat].sum(1)

    def entropy(self) -> torch.Tensor:
        """Exact entropy (nats): the sum of the groups' entropies, since groups are independent."""
        # a sum of tensors (there is at least one group), never the start value 0
        return cast(torch.Tensor, sum(-(F.softmax(lg, 0) * F.log_softmax(lg, 0)).sum() for lg in self.logits))

    def max_entropy(self) -> float:
        """Entropy of the uniform distribution: log of the number of (raw) index rows."""
        return float(sum(math.log(s) for s in self.group_sizes))

    def num_parameters(self) -> int:
        """Number of architecture parameters (logits)."""
        return int(sum(self.group_sizes))

    def most_likely(self, n: int = 1) -> torch.Tensor:
        """The ``n`` most probable distinct Archs, most probable first, as (n, D) int64.

        Beam search over groups with beam width ``n`` is exact here: log P is a sum of
        independent per-group terms, so a prefix outside the top ``n`` prefixes is beaten by
        ``n`` others sharing any suffix. Ties are broken by torch.topk order.
        """
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
            raise SupernasError(f"most_likely needs a positive integer n, got {n!r}")
        with torch.no_grad():
            lp = self._log_probs()
            scores = torch.zeros(1, device=lp.device, dtype=lp.dtype)
            beams = torch.zeros(1, 0, dtype=torch.long, device=lp.device)
            for g, size in enumerate(self.group_sizes):
                cand = (scores[:, None] + lp[g, :size][None]).reshape(-1)
                scores, pos = torch.topk(cand, min(int(n), cand.numel()))
                beams = torch.cat([beams[pos // size], (pos % size)[:, None]], 1)
        return self._unflat(beams)

    def probs_of_dim(self, name: str) -> torch.Tensor:
        """Marginal probabilities of one dimension's choices (detached), e.g. for plots."""
        try:
            col = self.space.column(name)
        except KeyError:
            shown = ", ".join(self.space.names[:6])
            raise SupernasError(f"unknown dimension '{name}' for space '{self.space.name}'; its dimensions "
                                f"are named like {shown}, ... (see space.names)") from None
        g = int(self._group_of[col])
        cols = self.group_columns[g]
        with torch.no_grad():
            p = F.softmax(self.logits[g], 0).reshape([int(self.space.cardinalities[c]) for c in cols])
            others = [i for i, c in enumerate(cols) if c != col]
            return p.sum(others) if others else p

    def archs(self, idx: IndexLike) -> list:
        """The Archs of an index matrix (canonical, ready for the supernet or the cost model)."""
        idx = self._check_indices(idx)
        return self.space.from_indices(idx.cpu().numpy())

    def extra_repr(self) -> str:
        return f"space={self.space.name!r}, groups={len(self.group_sizes)}, parameters={self.num_parameters()}"


class FactorizedDistribution(ArchDistribution):
    """An independent categorical per searched dimension: few parameters, fast early learning."""

    def __init__(self, space: SearchSpace | str):
        space = _resolve_space(space)
        super().__init__(space, dimension_groups(space))


class JointDistribution(ArchDistribution):
    """One categorical per block over the product of its choices; other dimensions factorized.

    Captures correlations inside a block (e.g. a large kernel only with a small expansion)
    at the price of many more parameters (see :func:`parameter_counts`).
    """

    def __init__(self, space: SearchSpace | str):
        space = _resolve_space(space)
        super().__init__(space, block_groups(space))

    @classmethod
    def from_factorized(cls, f: FactorizedDistribution) -> "JointDistribution":
        """The joint distribution equal to ``f``: logits = sum of the factorized log-probs.

        This is the coarse-to-fine switch: the search continues from exactly the distribution
        the factorized stage reached (same log_prob for every Arch, same entropy).
        """
        if not isinstance(f, FactorizedDistribution):
            raise SupernasError(f"from_factorized needs a FactorizedDistribution, got {type(f).__name__}")
        joint = cls(f.space)
        ref = f.logits[0]
        joint.to(device=ref.device, dtype=ref.dtype)
        with torch.no_grad():
            for g, cols in enumerate(joint.group_columns):
                table = torch.zeros((), dtype=ref.dtype, device=ref.device)
                for c in cols:  # outer sum in C order, matching the flat index's strides
                    table = table[..., None] + F.log_softmax(f.logits[c], 0)
                joint.logits[g].copy_(table.reshape(-1))
        return joint


def parameter_counts(space: SearchSpace | str) -> dict[str, Any]:
    """Architecture parameters of each parameterisation of ``space``, and their ratio."""
    space = _resolve_space(space)
    card = space.cardinalities
    fact = int(card.sum())
    joint = int(sum(np.prod(card[list(cols)]) for _, cols in block_groups(space)))
    return {"space": space.name, "factorized": fact, "joint": joint, "ratio": joint / fact,
            "blocks": sum(1 for _, cols in block_groups(space) if len(cols) > 1)}
