"""Plain PyTorch modules of one extracted Arch: nn.Conv2d, nn.BatchNorm2d, nn.Linear only.

These are what a user deploys: they run without the supernet, script with TorchScript and
export to ONNX. `SuperNet.extract` fills them with the supernet's sliced weights.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def resize_to(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """Images loaded at the dataset's size, resized (bicubic) to the Arch's resolution, as in training."""
    if x.shape[-1] == resolution and x.shape[-2] == resolution:
        return x
    return F.interpolate(x, size=(resolution, resolution), mode="bicubic", align_corners=False)


def make_activation(name: str) -> nn.Module:
    return nn.SiLU() if name == "swish" else nn.ReLU()


class ConvBNAct(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: str | None = "swish"):
        layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
        if act is not None:
            layers.append(make_activation(act))
        super().__init__(*layers)


class SqueezeExcite(nn.Module):
    """x * gate(W2 relu(W1 mean(x)))."""

    def __init__(self, channels: int, inter: int, gate: str):
        super().__init__()
        self.reduce = nn.Conv2d(channels, inter, 1)
        self.expand = nn.Conv2d(inter, channels, 1)
        self.hard = gate == "hsigmoid"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.expand(F.relu(self.reduce(x.mean((2, 3), keepdim=True))))
        return x * (F.hardsigmoid(g) if self.hard else torch.sigmoid(g))


class SplitAttention(nn.Module):
    """Radix attention over r branches stored interleaved: channel c*r + j is branch j of c."""

    def __init__(self, channels: int, inter: int, splits: int):
        super().__init__()
        self.channels, self.splits = channels, splits
        self.reduce = nn.Conv2d(channels, inter, 1)
        self.expand = nn.Conv2d(inter, channels * splits, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        x = x.view(n, self.channels, self.splits, h, w)
        pooled = x.sum(2).mean((2, 3), keepdim=True)
        logits = self.expand(F.relu(self.reduce(pooled))).view(n, self.channels, self.splits)
        a = torch.softmax(logits, dim=2)
        return (x * a[..., None, None]).sum(2)


class Shortcut(nn.Module):
    """Projection shortcut: average pooling when strided, then a 1x1 conv when channels change.

    `in_size` is the feature-map size it receives (the model runs at one resolution), so the
    pooling's padding is a constant: reading it from the input would make tracing (TorchScript,
    ONNX) warn that a shape became a Python number."""

    in_size: int | None = None  # models pickled before it existed read the size from the input

    def __init__(self, cin: int, cout: int, stride: int, in_size: int):
        super().__init__()
        self.stride, self.in_size = stride, in_size
        self.conv = nn.Conv2d(cin, cout, 1, bias=False) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = avg_pool_same(x, self.stride, self.in_size if self.in_size is not None else int(x.shape[-1]))
        return self.conv(x)


def avg_pool_same(x: torch.Tensor, stride: int, size: int) -> torch.Tensor:
    """Strided average pooling of a `size`-pixel map that matches a 'same' conv's output size
    (odd sizes padded)."""
    return F.avg_pool2d(x, stride, stride, padding=size % 2)


class MBConv(nn.Module):
    """Inverted residual: [1x1 expand] -> depthwise (r branches) -> [SE | Split-Attention] -> 1x1 project."""

    def __init__(self, cin: int, cout: int, mid: int, kernel: int, stride: int, act: str, expand: bool,
                 attention: int, inter: int, gate: str, shortcut: str, in_size: int):
        super().__init__()
        splits = max(attention, 1)
        self.expand = ConvBNAct(cin, mid, 1, act=act) if expand else nn.Identity()
        self.dw = ConvBNAct(mid, mid * splits, kernel, stride, groups=mid, act=act)
        if attention == 1:
            self.attn: nn.Module = SqueezeExcite(mid, inter, gate)
        elif attention > 1:
            self.attn = SplitAttention(mid, inter, splits)
        else:
            self.attn = nn.Identity()
        self.project = ConvBNAct(mid, cout, 1, act=None)
        self.residual = cin == cout and stride == 1
        self.has_shortcut = self.residual or shortcut == "projection"
        self.shortcut = Shortcut(cin, cout, stride, in_size) if self.has_shortcut and not self.residual \
            else nn.Identity()
        self.drop_path = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.project(self.attn(self.dw(self.expand(x))))
        if not self.has_shortcut:
            return h
        if self.residual and self.training and self.drop_path > 0:
            h = drop_path(h, self.drop_path)
        return h + self.shortcut(x)


def drop_path(x: torch.Tensor, p: float) -> torch.Tensor:
    """Stochastic depth: drop the residual branch of whole samples with probability p."""
    keep = 1.0 - p
    mask = torch.empty(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device).bernoulli_(keep)
    return x * mask / keep


class Head(nn.Module):
    """mbpool: 1x1 expand + BN + act, pool, 1x1 (as linear) + act; conv: 1x1 + BN + act, pool."""

    def __init__(self, kind: str, cin: int, mid: int, cout: int, act: str):
        super().__init__()
        self.conv = ConvBNAct(cin, mid, 1, act=act)
        self.mix = nn.Linear(mid, cout, bias=False) if kind == "mbpool" else nn.Identity()
        self.act = make_activation(act) if kind == "mbpool" else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.mix(self.conv(x).mean((2, 3))))


class StaticNet(nn.Module):
    """A standalone classifier for one Arch. Feed it images at `resolution` pixels."""

    def __init__(self, stem: nn.Module, blocks: Sequence[nn.Module], head: nn.Module, classifier: nn.Linear,
                 resolution: int, dropout: float = 0.0):
        super().__init__()
        self.resolution = resolution
        self.stem = stem
        self.blocks = nn.Sequential(*blocks)
        self.head = head
        self.dropout = nn.Dropout(dropout)
        self.classifier = classifier

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.forward_features(x)))

    def set_drop_path(self, rate: float) -> None:
        """Stochastic depth rising linearly with block index to `rate` (EfficientNet style)."""
        blocks = [b for b in self.blocks if isinstance(b, MBConv)]
        for i, b in enumerate(blocks):
            b.drop_path = rate * i / max(len(blocks), 1)
