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


def block_field_name(stage, i: int, field: str) -> str:
    return f"{stage.name}.{i}.{field}" if stage.per_block else f"{stage.name}.{field}"


@dataclass(frozen=True)
class _Lookup:
    """Values of one field for a row of slots (blocks, stages, or a single slot) of every Arch.

    A searched slot reads its column of the index matrix through its own table of choice
    values; the others hold a constant of the space.
    """

    const: np.ndarray  # (S,) value of each slot (overwritten for searched slots)
    searched: np.ndarray  # (s,) positions of the searched slots
    cols: np.ndarray  # (s,) their columns in the index matrix
    table: np.ndarray  # choice values of all searched slots, one table after another
    start: np.ndarray  # (s,) where each searched slot's values begin in `table`

    @classmethod
    def build(cls, space: SearchSpace, names: list[str], consts: list, dtype: type) -> "_Lookup":
        const: np.ndarray = np.array([ACTIVATIONS.index(c) if isinstance(c, str) else c for c in consts],
                                     dtype=dtype)
        searched = [j for j, name in enumerate(names) if name in space._col]
        cols = [space._col[names[j]] for j in searched]
        # Same values as Dimension.numeric(), cast the way a single value would be.
        tables = [space._numeric[c].astype(dtype) for c in cols]
        start = np.cumsum([0] + [len(t) for t in tables[:-1]], dtype=np.int64)
        table = np.concatenate(tables) if tables else np.zeros(0, dtype=dtype)
        return cls(const, np.array(searched, dtype=np.int64), np.array(cols, dtype=np.int64), table, start)

    def __call__(self, idx: np.ndarray) -> np.ndarray:
        """(N, S) values for an (N, D) index matrix."""
        if len(self.searched) == len(self.const):  # every slot searched: one gather, nothing to fill
            return self.table[idx[:, self.cols] + self.start]
        out = np.repeat(self.const[None], idx.shape[0], axis=0)
        if len(self.searched):
            out[:, self.searched] = self.table[idx[:, self.cols] + self.start]
        return out


@dataclass(frozen=True)
class _Schema:
    """Where each block's choices live in the index matrix, worked out once per space."""

    stage_of: np.ndarray  # (B,) stage of each block
    position: np.ndarray  # (B,) index of each block within its stage
    stride: np.ndarray  # (B,)
    fields: dict[str, _Lookup]  # block fields over the B blocks
    depth: _Lookup  # over the stages
    resolution: _Lookup
    stem_width: _Lookup
    head_width: _Lookup
    res_col: int | None  # column of the resolution, when searched
    hw: np.ndarray  # (R, B + 1) feature-map size entering each block and the head, per resolution choice


_FIELD_TYPES = {"width": np.int64, "kernel": np.int64, "expand": np.float64, "act": np.int64, "attention": np.int64}


@lru_cache(maxsize=64)
def _schema(space: SearchSpace) -> _Schema:
    s = space.spec
    blocks = [(si, st, i) for si, st in enumerate(s.stages) for i in range(st.max_depth)]
    fields = {f: _Lookup.build(space, [block_field_name(st, i, f) for _, st, i in blocks],
                               [st[f].min for _, st, _ in blocks], t)
              for f, t in _FIELD_TYPES.items()}
    stride = np.array([st.stride if i == 0 else 1 for _, st, i in blocks], dtype=np.int64)
    # Kernels are odd (the spec checks), so a 'same' convolution's output size depends on its
    # stride only, and inactive blocks (never a stage's first, the only strided one) keep the
    # size: feature-map sizes are a function of the resolution alone.
    res_choices = np.array(s.resolution.choices if s.resolution.searched else (s.resolution.min,), dtype=np.float64)
    size = conv_out(res_choices.astype(np.int64), 3, s.stem_stride)  # (R,), cast as the Arch's resolution is
    hw = [size]
    for block_stride in stride:
        size = conv_out(size, 1, int(block_stride))
        hw.append(size)
    return _Schema(
        stage_of=np.array([si for si, _, _ in blocks], dtype=np.int64),
        position=np.array([i for _, _, i in blocks], dtype=np.int64),
        stride=stride,
        fields=fields,
        depth=_Lookup.build(space, [f"{st.name}.depth" for st in s.stages], [st["depth"].min for st in s.stages],
                            np.int64),
        resolution=_Lookup.build(space, ["resolution"], [s.resolution.min], np.int64),
        stem_width=_Lookup.build(space, ["stem.width"], [s.stem_width.min], np.int64),
        head_width=_Lookup.build(space, ["head.width"], [s.head_width.min], np.int64),
        res_col=space._col.get("resolution"),
        hw=np.stack(hw, axis=1),
    )


def stage_of_block(space: SearchSpace) -> list[int]:
    """The stage of each block position of the space (every stage at its largest depth)."""
    return _schema(space).stage_of.tolist()


def layout(space: SearchSpace, idx: np.ndarray) -> Layout:
    """Sizes of every block of every Arch of an (N, D) index matrix, without a loop over Archs
    or blocks."""
    idx = np.asarray(idx, dtype=np.int64).reshape(-1, len(space.dims))
    s, sc = space.spec, _schema(space)
    n, nblocks = idx.shape[0], len(sc.stride)
    res = sc.resolution(idx)[:, 0]
    stem_out = sc.stem_width(idx)[:, 0]
    v = {f: lookup(idx) for f, lookup in sc.fields.items()}
    active = sc.depth(idx)[:, sc.stage_of] > sc.position

    # A block reads the output of the last active block before it (inactive blocks pass their
    # input through), or the stem's: a running maximum over the positions of active blocks.
    last = np.where(active, np.arange(1, nblocks + 1), 0)  # 0 stands for the stem
    np.maximum.accumulate(last, axis=1, out=last)
    outs = np.concatenate([stem_out[:, None], v["width"]], axis=1)
    feed = np.zeros((n, nblocks), dtype=np.int64)
    feed[:, 1:] = last[:, :-1]
    cin = np.take_along_axis(outs, feed, axis=1)
    head_in = np.take_along_axis(outs, last[:, -1:], axis=1)[:, 0]

    e = v["expand"]
    has_expand = e != 1
    mid = np.where(has_expand, make_divisible(np.round(cin * e)), cin)
    r = idx[:, sc.res_col] if sc.res_col is not None else np.zeros(n, dtype=np.int64)
    head_out = sc.head_width(idx)[:, 0]
    return Layout(
        resolution=res, stem_out=stem_out, stem_hw=sc.hw[r, 0], active=active, cin=cin, cout=v["width"], mid=mid,
        expand=has_expand, kernel=v["kernel"], act=v["act"], splits=np.maximum(v["attention"], 1),
        attention=v["attention"], inter=make_divisible(mid // 4), stride=sc.stride.copy(),
        hw_in=sc.hw[r, :-1], hw_out=sc.hw[r, 1:], head_in=head_in,
        head_mid=head_in * s.head_expand if s.head_kind == "mbpool" else head_out, head_out=head_out,
        head_hw=sc.hw[r, -1],
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
    # position among all blocks of the supernet (max depth everywhere); the field shadows tuple.index
    index: int  # type: ignore[assignment]
    hw_in: int  # feature-map size at the block's input (fixed by the resolution, so exports need no shape reads)


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
                int(L.inter[0, b]), b, int(L.hw_in[0, b])))
    return NetPlan(int(L.resolution[0]), int(L.stem_out[0]), tuple(blocks),
                   int(L.head_in[0]), int(L.head_mid[0]), int(L.head_out[0]))
