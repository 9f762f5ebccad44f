"""Analytic cost model: MFLOPs and parameters of Archs, from their choices alone.

Convention (the papers'): FLOPs are multiply-adds of convolutions and linear layers, the
squeeze-excitation and Split-Attention layers included; BatchNorm, activations, pooling and
additions are free. One multiply-add counts once, so the figures are half what
`torch.utils.flop_counter.FlopCounterMode` reports for the extracted model (it counts two).
Parameters are those of the extracted model, BatchNorm affine weights and biases included.

The formulas read the sizes that :func:`layout` gives, the ones the supernet runs. Scoring in
bulk does not evaluate them per Arch, though: the cost of a network is a sum of terms (stem,
blocks, head), each depending on a handful of choices (a block: the resolution, its input and
output widths, kernel, expansion, attention and its stage's depth). Each term is tabulated once
per space over the combinations of its choices, with those same formulas, and an Arch is then
scored by a few table lookups. Results are exact integers either way, so both paths agree to
the last bit (the tests check it).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from math import prod
from typing import Sequence, overload

import numpy as np

from ..errors import SupernasError
from .arch import Arch
from .layout import Layout, block_field_name, layout
from .space import SearchSpace

# Terms whose choices combine into more rows than this are not tabulated; such (unusual)
# spaces are scored through `layout` instead. Table indices must also stay exact in float32.
_MAX_TABLE = 1 << 18
# Neighbouring terms share one table while their joint choices stay this few: fewer lookups.
_MERGE_LIMIT = 1 << 12
_BUILD_CHUNK = 1 << 15  # rows of the enumeration fed to `layout` at a time, to bound memory


# ---------------------------------------------------------------------- formulas on a Layout
def block_costs(space: SearchSpace, L: Layout) -> tuple[np.ndarray, np.ndarray]:
    """(MACs, parameters) of every block, (N, B) float64 each; zero for inactive blocks."""
    f = np.float64
    hw_in2 = L.hw_in.astype(f) ** 2
    hw_out2 = L.hw_out.astype(f) ** 2
    cin, cout, mid = L.cin.astype(f), L.cout.astype(f), L.mid.astype(f)
    k2, r, inter = L.kernel.astype(f) ** 2, L.splits.astype(f), L.inter.astype(f)
    has_exp, has_attn = L.expand, L.attention > 0

    macs = np.where(has_exp, cin * mid * hw_in2, 0.0)
    params = np.where(has_exp, cin * mid + 2 * mid, 0.0)
    macs += r * mid * k2 * hw_out2  # depthwise conv, one branch per split
    params += r * mid * k2 + 2 * r * mid
    macs += np.where(has_attn, mid * inter + inter * mid * r, 0.0)  # attention MLP on pooled features
    params += np.where(has_attn, mid * inter + inter + inter * mid * r + mid * r, 0.0)
    macs += mid * cout * hw_out2  # projection
    params += mid * cout + 2 * cout
    if space.spec.shortcut == "projection":  # 1x1 conv on the shortcut when channels change
        proj = cin != cout
        macs += np.where(proj, cin * cout * hw_out2, 0.0)
        params += np.where(proj, cin * cout, 0.0)
    return macs * L.active, params * L.active


def stem_costs(L: Layout) -> tuple[np.ndarray, np.ndarray]:
    """(MACs, parameters) of the 3x3 stem conv + BN, (N,) each."""
    stem = L.stem_out.astype(np.float64)
    return 3 * stem * 9 * L.stem_hw.astype(np.float64) ** 2, 3 * stem * 9 + 2 * stem


def head_costs(space: SearchSpace, L: Layout, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(MACs, parameters) of the head and the classifier, (N,) each."""
    f = np.float64
    hin, hmid, hout = L.head_in.astype(f), L.head_mid.astype(f), L.head_out.astype(f)
    head_hw2 = L.head_hw.astype(f) ** 2
    if space.spec.head_kind == "mbpool":  # 1x1 expand + BN, pool, 1x1 conv without BN or bias
        macs = hin * hmid * head_hw2 + hmid * hout
        params = hin * hmid + 2 * hmid + hmid * hout
    else:  # 1x1 conv + BN, pool
        macs = hin * hout * head_hw2
        params = hin * hout + 2 * hout
    return macs + hout * num_classes, params + hout * num_classes + num_classes


def layout_costs(space: SearchSpace, idx: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(MACs, parameters) of an (N, D) index matrix, evaluating the formulas on every Arch's
    full layout: the reference that the tabulated path reproduces, and its fallback."""
    L = layout(space, idx)
    bm, bp = block_costs(space, L)
    sm, sp = stem_costs(L)
    hm, hp = head_costs(space, L, num_classes)
    return bm.sum(axis=1) + sm + hm, bp.sum(axis=1) + sp + hp


# ---------------------------------------------------------------------- tabulation
# A *source* is a choice index a term reads: column j < D of the index matrix, or D + k for
# the k-th derived one (the output width of a per-block stage with elastic depth, which is
# that of whichever block is last: a gather, not a fixed column).
@dataclass(frozen=True)
class _Derived:
    depth_col: int
    width_cols: np.ndarray  # for each depth choice, the column of the last active block's width
    stage_width_cols: tuple[int, ...]  # every block's width column of that stage


def _terms(space: SearchSpace) -> tuple[list[tuple[object, frozenset[int]]], list[_Derived]]:
    """The parts of the cost ('stem', block index, 'head') with the sources each depends on."""
    s, D = space.spec, len(space.dims)

    def cols(*names: str) -> frozenset[int]:
        return frozenset(space._col[n] for n in names if n in space._col)

    res = cols("resolution")
    entering = cols("stem.width")  # sources of the channels entering the next block
    parts: list[tuple[object, frozenset[int]]] = [("stem", res | entering)]
    derived: list[_Derived] = []
    b = 0
    for st in s.stages:
        depth = cols(f"{st.name}.depth")
        for i in range(st.max_depth):
            own = cols(*(block_field_name(st, i, f) for f in ("width", "kernel", "expand", "attention")))
            parts.append((b, res | entering | own | depth))  # `act` costs nothing
            entering = cols(block_field_name(st, i, "width"))
            b += 1
        if st.per_block and depth and entering:
            (dcol,) = depth
            wcols = [space._col[block_field_name(st, i, "width")] for i in range(st.max_depth)]
            last = np.array([wcols[d - 1] for d in space.dims[dcol].choices], dtype=np.int64)
            derived.append(_Derived(dcol, last, tuple(wcols)))
            entering = frozenset({D + len(derived) - 1})
    parts.append(("head", res | entering | cols("head.width")))
    return parts, derived


def _group(parts: list[tuple[object, frozenset[int]]], card: list[int],
           ndims: int) -> list[tuple[list[object], frozenset[int]]]:
    """Merge neighbouring parts into shared tables while their joint choices stay few.

    Parts reading a derived source (>= ndims) stay alone: their table is enumerated by giving
    every block of that stage the same width, which must not clash with another part reading
    those widths."""
    groups: list[tuple[list[object], frozenset[int]]] = []
    for name, src in parts:
        if groups:
            members, gsrc = groups[-1]
            union = gsrc | src
            if max(union, default=-1) < ndims and prod(card[j] for j in union) <= _MERGE_LIMIT:
                groups[-1] = (members + [name], union)
                continue
        groups.append(([name], src))
    return groups


def _tabulate(space: SearchSpace, num_classes: int, members: list[object], sources: list[int],
              card: list[int], derived: list[_Derived]) -> np.ndarray:
    """Costs of `members` summed, for every combination of `sources` (last one fastest), as
    complex MACs + 1j * parameters."""
    D = len(space.dims)
    shape = [card[j] for j in sources]
    grid = np.indices(shape).reshape(len(shape), prod(shape)).T  # (rows, sources); one row if none
    out = np.empty(grid.shape[0], dtype=np.complex128)
    blocks = [m for m in members if isinstance(m, int)]
    for lo in range(0, grid.shape[0], _BUILD_CHUNK):
        g = grid[lo:lo + _BUILD_CHUNK]
        # Choices outside `sources` stay at index 0: by construction they do not matter.
        idx = np.zeros((g.shape[0], D), dtype=np.int64)
        for j, src in enumerate(sources):
            cols = [src] if src < D else list(derived[src - D].stage_width_cols)
            idx[:, cols] = g[:, j, None]
        L = layout(space, idx)
        bm, bp = block_costs(space, L)
        macs, params = bm[:, blocks].sum(axis=1), bp[:, blocks].sum(axis=1)
        if "stem" in members:
            m, p = stem_costs(L)
            macs, params = macs + m, params + p
        if "head" in members:
            m, p = head_costs(space, L, num_classes)
            macs, params = macs + m, params + p
        out[lo:lo + g.shape[0]] = macs + 1j * params
    return out


@dataclass(frozen=True)
class _Tables:
    """Every term's table, and how an Arch's choices index them.

    MACs and parameters travel together as the real and imaginary parts of one complex
    number, so that scoring is one gather and one sum. Both are exact integers in float64.
    """

    weights: np.ndarray  # (D + derived, T) float32: weight of each source in each term's row index
    offsets: np.ndarray  # (T,) int64: where each term's table starts in `table`
    table: np.ndarray  # complex128, all terms' tables one after another
    derived: tuple[_Derived, ...]

    def costs(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n, d = idx.shape
        x = np.empty((n, d + len(self.derived)), dtype=np.float32)
        x[:, :d] = idx
        for k, dv in enumerate(self.derived):
            x[:, d + k] = idx[np.arange(n), dv.width_cols[idx[:, dv.depth_col]]]
        # One matrix product finds every term's row. Rows are integers below _MAX_TABLE <= 2**24,
        # and so is every partial sum: float32 computes them exactly.
        rows = (x @ self.weights).astype(np.int64)
        rows += self.offsets
        total = self.table.take(rows).sum(axis=1)
        return total.real.copy(), total.imag.copy()


@lru_cache(maxsize=32)
def _tables(space: SearchSpace, num_classes: int) -> _Tables | None:
    """The tabulated cost terms of a space (None when a term would be too large to tabulate)."""
    parts, derived = _terms(space)
    D = len(space.dims)
    card = [int(c) for c in space.cardinalities] + [len(space.dims[dv.width_cols[0]]) for dv in derived]
    groups = _group(parts, card, D)
    if any(prod(card[j] for j in src) > _MAX_TABLE for _, src in groups):
        return None
    weights = np.zeros((len(card), len(groups)), dtype=np.float32)
    tables, offsets = [], []
    start = 0
    for t, (members, src) in enumerate(groups):
        sources = sorted(src)
        stride = 1
        for j in reversed(sources):  # mixed radix, last source fastest (as np.indices enumerates)
            weights[j, t] = stride
            stride *= card[j]
        tables.append(_tabulate(space, num_classes, members, sources, card, derived))
        offsets.append(start)
        start += stride
    return _Tables(weights, np.array(offsets, dtype=np.int64), np.concatenate(tables), tuple(derived))


class CostModel:
    """MFLOPs and parameter counts for Archs of one space and number of classes.

    The first scoring call tabulates the space's cost terms (a fraction of a second, shared by
    every CostModel of that space and number of classes)."""

    def __init__(self, space: SearchSpace, num_classes: int = 1000):
        self.space = space
        self.num_classes = int(num_classes)

    def costs_indices(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(MFLOPs, parameters) for an (N, D) index matrix, as two float64 arrays of length N."""
        idx = np.asarray(idx, dtype=np.int64).reshape(-1, len(self.space.dims))
        self._check(idx)
        tables = _tables(self.space, self.num_classes)
        if tables is None:
            macs, params = layout_costs(self.space, idx, self.num_classes)
        else:
            macs, params = tables.costs(idx)
        return macs / 1e6, params

    def _check(self, idx: np.ndarray) -> None:
        # Table lookups would not fail on a bad index, only read another choice's cost. Seen as
        # unsigned, negative indices are huge: one maximum per column catches both ends.
        if idx.size == 0:
            return
        bad = idx.view(np.uint64).max(axis=0) >= self.space.cardinalities.astype(np.uint64)
        if bad.any():
            d = self.space.dims[int(np.argmax(bad))]
            raise SupernasError(f"choice index out of range for '{d.name}' (it has {len(d)} choices)")

    def mflops_indices(self, idx: np.ndarray) -> np.ndarray:
        return self.costs_indices(idx)[0]

    @overload
    def mflops(self, archs: Arch) -> float: ...
    @overload
    def mflops(self, archs: Sequence[Arch]) -> np.ndarray: ...

    def mflops(self, archs: Arch | Sequence[Arch]) -> float | np.ndarray:
        out = self.mflops_indices(self.space.to_indices(archs))
        return float(out[0]) if isinstance(archs, Arch) else out

    @overload
    def params(self, archs: Arch) -> int: ...
    @overload
    def params(self, archs: Sequence[Arch]) -> np.ndarray: ...

    def params(self, archs: Arch | Sequence[Arch]) -> int | np.ndarray:
        out = self.costs_indices(self.space.to_indices(archs))[1]
        return int(out[0]) if isinstance(archs, Arch) else out.astype(np.int64)
