"""The built-in search spaces: AttentiveNAS (Table 2) and FP-NAS L0-L2 (Tables D.4-D.6)."""
from __future__ import annotations

from typing import Any

ATTENTIVENAS: dict[str, Any] = {
    "name": "attentivenas",
    "description": "AttentiveNAS Table 2 (FBNetV3-derived MBConv space, 192-288 px)",
    "resolution": [192, 224, 256, 288],
    "stem": {"width": [16, 24], "stride": 2, "act": "swish"},
    # mb1 has a single expansion ratio; it stays a dimension so the reference format round-trips.
    "stages": [
        {"name": "mb1", "width": [16, 24], "depth": [1, 2], "kernel": [3, 5], "expand": [1], "stride": 1, "attention": 0},
        {"name": "mb2", "width": [24, 32], "depth": [3, 4, 5], "kernel": [3, 5], "expand": [4, 5, 6], "stride": 2, "attention": 0},
        {"name": "mb3", "width": [32, 40], "depth": [3, 4, 5, 6], "kernel": [3, 5], "expand": [4, 5, 6], "stride": 2, "attention": 1},
        {"name": "mb4", "width": [64, 72], "depth": [3, 4, 5, 6], "kernel": [3, 5], "expand": [4, 5, 6], "stride": 2, "attention": 0},
        {"name": "mb5", "width": [112, 120, 128], "depth": [3, 4, 5, 6, 7, 8], "kernel": [3, 5], "expand": [4, 5, 6], "stride": 1, "attention": 1},
        {"name": "mb6", "width": [192, 200, 208, 216], "depth": [3, 4, 5, 6, 7, 8], "kernel": [3, 5], "expand": [6], "stride": 2, "attention": 1},
        {"name": "mb7", "width": [216, 224], "depth": [1, 2], "kernel": [3, 5], "expand": [6], "stride": 1, "attention": 1},
    ],
    "head": {"kind": "mbpool", "width": [1792, 1984], "expand": 6, "act": "swish"},
    "shortcut": "projection",
    "gate": "hsigmoid",
}

# A small AttentiveNAS-style space for quick CPU runs (tests, the quickstart on 8x8 digits).
ATTENTIVENAS_TINY: dict[str, Any] = {
    "name": "attentivenas-tiny",
    "description": "small AttentiveNAS-style space for quick CPU runs on tiny images (12-16 px)",
    "resolution": [12, 16],
    "stem": {"width": [8, 16], "stride": 1, "act": "swish"},
    "stages": [
        {"name": "mb1", "width": [8, 16], "depth": [1, 2], "kernel": [3, 5], "expand": [1], "stride": 1, "attention": 0},
        {"name": "mb2", "width": [16, 24], "depth": [1, 2, 3], "kernel": [3, 5], "expand": [3, 4, 6], "stride": 2, "attention": 0},
        {"name": "mb3", "width": [24, 32], "depth": [1, 2, 3], "kernel": [3, 5], "expand": [3, 4, 6], "stride": 2, "attention": 1},
        {"name": "mb4", "width": [40, 48], "depth": [1, 2, 3], "kernel": [3, 5], "expand": [4, 6], "stride": 2, "attention": 1},
    ],
    "head": {"kind": "mbpool", "width": [128, 192], "expand": 4, "act": "swish"},
    "shortcut": "projection",
    "gate": "hsigmoid",
}

# FP-NAS MBCConv micro-architecture: each block picks kernel, nonlinearity, output channels,
# expansion and attention (0 none, 1 SE, 2/4 Split-Attention splits) independently.
FPNAS_EXPANSIONS = [1.5, 2.25, 3.0, 3.75, 4.5, 5.25, 6.0]
FPNAS_ATTENTION = [0, 1, 2, 4]


def _channel_range(lo: int, hi: int, step: int) -> list[int]:
    """A table's (min, max, step) channels: min, min + step, ... and always max, even when the step
    does not divide max - min ((64, 120, 16) gives 64, 80, 96, 112, 120: the next row's input is 120)."""
    return list(range(lo, hi, step)) + [hi]


def _fpnas(name: str, resolution: int, stem: int, rows: list[tuple[int, int, int, int, int]], description: str):
    """rows: (min channels, max channels, step, repeat, stride) of each MBCConv row of the table."""
    stages = [
        {"name": f"s{i + 1}", "width": _channel_range(lo, hi, step), "depth": rep, "stride": stride,
         "kernel": [3, 5], "expand": FPNAS_EXPANSIONS, "act": ["relu", "swish"], "attention": FPNAS_ATTENTION,
         "per_block": True}
        for i, (lo, hi, step, rep, stride) in enumerate(rows)
    ]
    return {
        "name": name, "description": description, "resolution": resolution,
        "stem": {"width": stem, "stride": 2, "act": "swish"}, "stages": stages,
        "head": {"kind": "conv", "width": 1984, "act": "swish"}, "shortcut": "identity", "gate": "sigmoid",
    }


FPNAS_L0 = _fpnas("fpnas-l0", 224, 16, [
    (8, 32, 8, 1, 1), (16, 32, 8, 2, 2), (16, 32, 8, 2, 1), (16, 56, 8, 2, 2), (16, 56, 8, 2, 1),
    (48, 96, 16, 4, 2), (48, 96, 16, 3, 1), (72, 136, 16, 3, 1), (112, 224, 16, 2, 2), (112, 224, 16, 2, 1),
    (168, 280, 16, 2, 1),
], "FP-NAS L0 (Table D.4): 25 MBCConv blocks, 224 px")

_L12_ROWS = [
    (16, 40, 8, 1, 1), (24, 40, 8, 2, 2), (24, 40, 8, 2, 1), (24, 72, 8, 3, 2), (24, 72, 8, 2, 1),
    (64, 120, 16, 3, 2), (64, 120, 16, 3, 1), (88, 168, 16, 3, 1), (88, 168, 16, 3, 1), (136, 272, 16, 2, 2),
    (136, 272, 16, 2, 1), (208, 336, 16, 2, 1), (208, 336, 16, 2, 1),
]
FPNAS_L1 = _fpnas("fpnas-l1", 240, 24, _L12_ROWS, "FP-NAS L1 (Table D.5): 30 MBCConv blocks, 240 px")
FPNAS_L2 = _fpnas("fpnas-l2", 256, 24, _L12_ROWS, "FP-NAS L2 (Table D.6): 30 MBCConv blocks, 256 px")

BUILTIN_SPACES = {d["name"]: d for d in (ATTENTIVENAS, FPNAS_L0, FPNAS_L1, FPNAS_L2, ATTENTIVENAS_TINY)}

# The published AttentiveNAS-A0..A6 models, in the reference subnet format.
ATTENTIVENAS_MODELS: dict[str, dict[str, Any]] = {
    "a0": {"resolution": 192, "width": [16, 16, 24, 32, 64, 112, 192, 216, 1792], "kernel_size": [3, 3, 3, 3, 3, 3, 3],
           "expand_ratio": [1, 4, 4, 4, 4, 6, 6], "depth": [1, 3, 3, 3, 3, 3, 1]},
    "a1": {"resolution": 224, "width": [16, 16, 24, 32, 64, 112, 192, 216, 1984], "kernel_size": [3, 3, 3, 5, 3, 5, 3],
           "expand_ratio": [1, 4, 4, 4, 4, 6, 6], "depth": [1, 3, 3, 3, 3, 3, 1]},
    "a2": {"resolution": 224, "width": [16, 16, 24, 32, 64, 112, 200, 224, 1984], "kernel_size": [3, 3, 3, 3, 3, 5, 3],
           "expand_ratio": [1, 4, 5, 4, 4, 6, 6], "depth": [1, 3, 3, 3, 3, 4, 1]},
    "a3": {"resolution": 224, "width": [16, 16, 24, 32, 64, 112, 208, 224, 1984], "kernel_size": [3, 3, 3, 5, 3, 3, 3],
           "expand_ratio": [1, 4, 4, 4, 4, 6, 6], "depth": [2, 3, 3, 4, 3, 5, 1]},
    "a4": {"resolution": 256, "width": [16, 16, 24, 32, 64, 112, 192, 216, 1984], "kernel_size": [3, 3, 3, 5, 3, 5, 3],
           "expand_ratio": [1, 4, 4, 5, 4, 6, 6], "depth": [1, 3, 3, 4, 3, 5, 1]},
    "a5": {"resolution": 256, "width": [16, 16, 24, 32, 72, 112, 192, 216, 1792], "kernel_size": [3, 3, 3, 5, 3, 3, 3],
           "expand_ratio": [1, 4, 5, 4, 4, 6, 6], "depth": [1, 3, 3, 3, 4, 6, 1]},
    "a6": {"resolution": 288, "width": [16, 16, 24, 32, 64, 112, 216, 224, 1984], "kernel_size": [3, 3, 3, 3, 3, 5, 3],
           "expand_ratio": [1, 4, 6, 5, 4, 6, 6], "depth": [1, 3, 3, 4, 4, 6, 1]},
}
