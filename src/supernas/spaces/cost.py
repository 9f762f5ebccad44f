"""Analytic cost model: MFLOPs and parameters of Archs, from their choices alone.

Convention (the papers'): FLOPs are multiply-adds of convolutions and linear layers, the
squeeze-excitation and Split-Attention layers included; BatchNorm, activations, pooling and
additions are free. One multiply-add counts once, so the figures are half what
`torch.utils.flop_counter.FlopCounterMode` reports for the extracted model (it counts two).
Parameters are those of the extracted model, BatchNorm affine weights and biases included.
Everything is vectorised over an (N, D) index matrix: millions of Archs score in seconds.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .arch import Arch
from .layout import Layout, layout
from .space import SearchSpace


def _macs_and_params(space: SearchSpace, L: Layout, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    f = np.float64
    s = space.spec
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
    if s.shortcut == "projection":  # 1x1 conv on the shortcut when channels change
        proj = cin != cout
        macs += np.where(proj, cin * cout * hw_out2, 0.0)
        params += np.where(proj, cin * cout, 0.0)
    macs = (macs * L.active).sum(axis=1)
    params = (params * L.active).sum(axis=1)

    stem = L.stem_out.astype(f)
    macs += 3 * stem * 9 * L.stem_hw.astype(f) ** 2
    params += 3 * stem * 9 + 2 * stem
    hin, hmid, hout = L.head_in.astype(f), L.head_mid.astype(f), L.head_out.astype(f)
    head_hw2 = L.head_hw.astype(f) ** 2
    if s.head_kind == "mbpool":  # 1x1 expand + BN, pool, 1x1 conv without BN or bias
        macs += hin * hmid * head_hw2 + hmid * hout
        params += hin * hmid + 2 * hmid + hmid * hout
    else:  # 1x1 conv + BN, pool
        macs += hin * hout * head_hw2
        params += hin * hout + 2 * hout
    macs += hout * num_classes
    params += hout * num_classes + num_classes
    return macs, params


class CostModel:
    """MFLOPs and parameter counts for Archs of one space and number of classes."""

    def __init__(self, space: SearchSpace, num_classes: int = 1000):
        self.space = space
        self.num_classes = int(num_classes)

    def costs_indices(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(MFLOPs, parameters) for an (N, D) index matrix, as two float64 arrays of length N."""
        macs, params = _macs_and_params(self.space, layout(self.space, idx), self.num_classes)
        return macs / 1e6, params

    def mflops_indices(self, idx: np.ndarray) -> np.ndarray:
        return self.costs_indices(idx)[0]

    def mflops(self, archs: Arch | Sequence[Arch]) -> float | np.ndarray:
        out = self.mflops_indices(self.space.to_indices(archs))
        return float(out[0]) if isinstance(archs, Arch) else out

    def params(self, archs: Arch | Sequence[Arch]) -> int | np.ndarray:
        out = self.costs_indices(self.space.to_indices(archs))[1]
        return int(out[0]) if isinstance(archs, Arch) else out.astype(np.int64)
