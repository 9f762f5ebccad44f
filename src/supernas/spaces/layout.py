"""From choices to concrete layer sizes: the one place that decides the shapes of a network.

:func:`layout` turns an (N, D) index matrix into per-block arrays (channels, kernel, splits,
feature-map sizes...). The analytic cost model scores Archs from it in bulk, and the supernet
and its extracted models build their layers from the same numbers (through :func:`plan`), so
that what is counted is what runs.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from .arch import Arch
from .space import SearchSpace
from .spec import ACTIVATIONS


def make_divisible(v: np.ndarray, divisor: int = 8) -> np.ndarray:
    """Round channels to a multiple of `divisor`, never more than 10% down (MobileNet rule)."""
    v = np.asarray(v, dtype=np.int64)
    new = np.maximum(1, (v + divisor // 2) // divisor * divisor)
    return np.where(new < 0.9 * v, new + divisor, new)


def conv_out(size: np.ndarray, kernel: np.ndarray | int, stride: int) -> np.ndarray:
    """Spatial size after a 'same'-padded convolution (padding kernel // 2)."""
    return (size + 2 * (np.asarray(kernel) // 2) - kernel) // stride + 1


@dataclass
class Layout:
    """Per-Arch (N,) and per-block (N, B) sizes; blocks are listed stage by stage, all
    `max_depth` of them, with `active` marking those the Arch's depth keeps."""

    resolution: np.ndarray
    stem_out: np.ndarray
    stem_hw: np.ndarray
    active: np.ndarray
    cin: np.ndarray
    cout: np.ndarray
    mid: np.ndarray
    expand: np.ndarray  # bool: has the 1x1 expansion conv (ratio != 1)
    kernel: np.ndarray
    act: np.ndarray  # index into ACTIVATIONS
    splits: np.ndarray  # depthwise branches: max(attention, 1)
    attention: np.ndarray  # 0 none, 1 squeeze-excitation, r >= 2 Split-Attention
    inter: np.ndarray  # hidden width of the attention MLP
    stride: np.ndarray  # (B,)
    hw_in: np.ndarray
    hw_out: np.ndarray
    head_in: np.ndarray
    head_mid: np.ndarray  # mbpool: expanded width before pooling; conv: == head_out
    head_out: np.ndarray
    head_hw: np.ndarray


def _values(space: SearchSpace, idx: np.ndarray, name: str, const) -> np.ndarray:
    """Numeric values of dimension `name` for each row, or the constant if not searched."""
    if name in space._col:
        j = space._col[name]
        return space._numeric[j][idx[:, j]]
    c = ACTIVATIONS.index(const) if isinstance(const, str) else const
    return np.full(idx.shape[0], c, dtype=np.float64)


def block_field_name(stage, i: int, field: str) -> str:
    return f"{stage.name}.{i}.{field}" if stage.per_block else f"{stage.name}.{field}"


def layout(space: SearchSpace, idx: np.ndarray) -> Layout:
    idx = np.asarray(idx, dtype=np.int64).reshape(-1, len(space.dims))
    s = space.spec
    res = _values(space, idx, "resolution", s.resolution.min).astype(np.int64)
    stem_out = _values(space, idx, "stem.width", s.stem_width.min).astype(np.int64)
    stem_hw = conv_out(res, 3, s.stem_stride)

    cols = {k: [] for k in ("active", "cin", "cout", "mid", "expand", "kernel", "act", "attention", "hw_in", "hw_out")}
    strides = []
    ch, hw = stem_out, stem_hw
    for st in s.stages:
        depth = _values(space, idx, f"{st.name}.depth", st["depth"].min)
        for i in range(st.max_depth):
            v = {f: _values(space, idx, block_field_name(st, i, f), st[f].min) for f in ("width", "kernel", "expand", "act", "attention")}
            stride = st.stride if i == 0 else 1
            active = depth > i
            cout = v["width"].astype(np.int64)
            kernel = v["kernel"].astype(np.int64)
            e = v["expand"]
            has_expand = e != 1
            mid = np.where(has_expand, make_divisible(np.round(ch * e)), ch)
            hw_out = conv_out(hw, kernel, stride)
            for k, val in (("active", active), ("cin", ch), ("cout", cout), ("mid", mid), ("expand", has_expand),
                           ("kernel", kernel), ("act", v["act"].astype(np.int64)),
                           ("attention", v["attention"].astype(np.int64)), ("hw_in", hw), ("hw_out", hw_out)):
                cols[k].append(val)
            strides.append(stride)
            # Inactive blocks pass their input through: channels and size carry over.
            ch = np.where(active, cout, ch)
            hw = np.where(active, hw_out, hw)
    a = {k: np.stack(v, axis=1) for k, v in cols.items()}
    head_out = _values(space, idx, "head.width", s.head_width.min).astype(np.int64)
    head_mid = ch * s.head_expand if s.head_kind == "mbpool" else head_out
    return Layout(
        resolution=res, stem_out=stem_out, stem_hw=stem_hw,
        splits=np.maximum(a["attention"], 1), inter=make_divisible(a["mid"] // 4),
        stride=np.array(strides, dtype=np.int64), head_in=ch, head_mid=head_mid, head_out=head_out, head_hw=hw,
        **a,
    )


class BlockPlan(NamedTuple):
    """Concrete sizes of one active block of one Arch."""

    cin: int
    cout: int
    mid: int
    expand: bool
    kernel: int
    stride: int
    act: str
    attention: int
    splits: int
    inter: int
    index: int  # position among all blocks of the supernet (max depth everywhere)


class NetPlan(NamedTuple):
    """Concrete sizes of one Arch: what the supernet runs and what `extract` builds."""

    resolution: int
    stem_out: int
    blocks: tuple[BlockPlan, ...]
    head_in: int
    head_mid: int
    head_out: int


def plan(space: SearchSpace, arch: Arch) -> NetPlan:
    """The NetPlan of one Arch (cached per space and Arch)."""
    return _plan_cached(space, arch)


@lru_cache(maxsize=8192)
def _plan_cached(space: SearchSpace, arch: Arch) -> NetPlan:
    L = layout(space, space.to_indices(arch))
    blocks = []
    for b in range(L.active.shape[1]):
        if L.active[0, b]:
            blocks.append(BlockPlan(
                int(L.cin[0, b]), int(L.cout[0, b]), int(L.mid[0, b]), bool(L.expand[0, b]), int(L.kernel[0, b]),
                int(L.stride[b]), ACTIVATIONS[int(L.act[0, b])], int(L.attention[0, b]), int(L.splits[0, b]),
                int(L.inter[0, b]), b))
    return NetPlan(int(L.resolution[0]), int(L.stem_out[0]), tuple(blocks),
                   int(L.head_in[0]), int(L.head_mid[0]), int(L.head_out[0]))
