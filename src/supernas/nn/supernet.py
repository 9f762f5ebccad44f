"""`SuperNet`: one set of weights that runs every Arch of a space, and extracts any of them."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, cast

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SupernasError
from ..spaces import Arch, SearchSpace, get_space
from ..spaces.layout import BlockPlan, NetPlan, make_divisible, plan, stage_of_block
from . import static
from .bn_act import activation, storing_rebuilds
from .elastic import ElasticAttention, ElasticBatchNorm2d, ElasticConv2d, ElasticLinear

if TYPE_CHECKING:
    import numpy as np

# Which blocks stochastic depth (drop-connect) reaches when a forward asks for it.
DROP_PATH_SCOPES = ("last_two_stages", "all_blocks")


def _mid_choices(cins: Iterable[int], expands: Iterable[float]) -> list[int]:
    # make_divisible rounds plain numbers as well as the arrays its annotation names
    return [c if e == 1 else int(make_divisible(cast("np.ndarray", round(c * e)))) for c in cins for e in expands]


class ElasticMBConv(nn.Module):
    """The elastic inverted-residual block, at its largest size; `forward` runs a BlockPlan."""

    def __init__(self, cins: list[int], couts: list[int], kernels: list[int], expands: list[float],
                 attentions: list[int], stride: int, shortcut: str, gate: str):
        super().__init__()
        mids = _mid_choices(cins, expands)
        self.max_in, self.max_out, self.max_mid = max(cins), max(couts), max(mids)
        self.max_splits = max(max(attentions), 1)
        self.stride, self.projection = stride, shortcut == "projection"
        self._rows: dict[tuple, torch.Tensor] = {}
        if any(e != 1 for e in expands):
            self.expand_conv = ElasticConv2d(self.max_in, self.max_mid, 1)
            self.expand_bn = ElasticBatchNorm2d(self.max_mid)
        channels = self.max_splits * self.max_mid  # r branches, each a block of max_mid rows
        self.dw_conv = ElasticConv2d(channels, channels, max(kernels), stride, depthwise=True)
        self.dw_bn = ElasticBatchNorm2d(channels)
        if max(attentions) > 0:
            max_inter = max(int(make_divisible(cast("np.ndarray", m // 4))) for m in mids)
            self.attention = ElasticAttention(self.max_mid, max_inter, self.max_splits, gate)
        self.project_conv = ElasticConv2d(self.max_mid, self.max_out, 1)
        self.project_bn = ElasticBatchNorm2d(self.max_out)
        if self.projection and any(c != o for c in cins for o in couts):
            self.shortcut_conv = ElasticConv2d(self.max_in, self.max_out, 1)

    def branch_rows(self, splits: int, mid: int, device: torch.device) -> torch.Tensor:
        """Weight rows of the r branches, interleaved: output c*r + j is branch j (stored at row
        j*max_mid + c) of channel c, so that each channel's branches form one conv group."""
        key = (splits, mid, device)
        rows = self._rows.get(key)
        if rows is None:
            rows = (torch.arange(splits).view(1, -1) * self.max_mid + torch.arange(mid).view(-1, 1)).reshape(-1)
            rows = self._rows[key] = rows.to(device)
        return rows

    def forward(self, x: torch.Tensor, p: BlockPlan, drop_path: float = 0.0) -> torch.Tensor:
        h = self.expand_bn(self.expand_conv(x, p.mid), act=p.act) if p.expand else x
        if p.splits == 1:
            h = self.dw_bn(self.dw_conv(h, p.mid, p.kernel), act=p.act)
        else:  # r branches as one grouped conv, interleaved like the extracted model's
            rows = self.branch_rows(p.splits, p.mid, h.device)
            h = self.dw_bn(self.dw_conv.forward_rows(h, rows, p.kernel), rows=rows, act=p.act)
        h = self.attention(h, p.splits, p.inter) if p.attention else h
        h = self.project_bn(self.project_conv(h, p.cout))
        if p.cin == p.cout and p.stride == 1:
            if drop_path > 0 and self.training:
                h = static.drop_path(h, drop_path)
            return h + x
        if not self.projection:
            return h
        sc = static.avg_pool_same(x, p.stride, p.hw_in) if p.stride > 1 else x
        if p.cin != p.cout:
            sc = self.shortcut_conv(sc, p.cout)
        return h + sc


class SuperNet(nn.Module):
    """Weight-sharing network over a search space.

    ``supernet(x, arch)`` runs one Arch: the input is resized (bicubic) to the Arch's resolution
    when it differs, and every layer uses a slice of the shared weights. ``extract(arch)``
    returns a plain PyTorch model with those weights that computes the same function.
    """

    recompute_bn_act = False  # set_recompute_bn_act
    conv_kernels = {"pointwise": "conv", "depthwise": "conv"}  # set_conv_kernels

    def __init__(self, space: "SearchSpace | str", num_classes: int = 1000):
        super().__init__()
        self.space = get_space(space)
        self.num_classes = num_classes
        s = self.space.spec
        self.stem_conv = ElasticConv2d(3, s.stem_width.max, 3, s.stem_stride)
        self.stem_bn = ElasticBatchNorm2d(s.stem_width.max)
        blocks = []
        prev_widths = list(s.stem_width.choices)
        for st in s.stages:
            widths = list(st["width"].choices)
            for i in range(st.max_depth):
                # A stage's first block takes any width of the stage before; later blocks, its own.
                cins = prev_widths if i == 0 else widths
                blocks.append(ElasticMBConv(cins, widths, list(st["kernel"].choices), list(st["expand"].choices),
                                            list(st["attention"].choices), st.stride if i == 0 else 1,
                                            s.shortcut, s.gate))
            prev_widths = widths
        self.blocks = nn.ModuleList(blocks)
        self.stage_of_block = stage_of_block(self.space)
        self.set_drop_path_scope("last_two_stages")
        head_in = max(prev_widths)
        self.head_kind = s.head_kind
        if s.head_kind == "mbpool":
            self.head_conv = ElasticConv2d(head_in, head_in * s.head_expand, 1)
            self.head_bn = ElasticBatchNorm2d(head_in * s.head_expand)
            self.head_mix = ElasticLinear(head_in * s.head_expand, s.head_width.max, bias=False)
        else:
            self.head_conv = ElasticConv2d(head_in, s.head_width.max, 1)
            self.head_bn = ElasticBatchNorm2d(s.head_width.max)
        self.classifier = ElasticLinear(s.head_width.max, num_classes)
        self.reset_parameters()

    @classmethod
    def from_reference_checkpoint(cls, source: "str | Path | Mapping[str, Any]",
                                  space: "SearchSpace | str" = "attentivenas") -> "SuperNet":
        """The supernet of a checkpoint of the AttentiveNAS reference implementation (such as the
        published `attentive_nas_pretrained.pth.tar`): a path, or a loaded checkpoint or state
        dict, with or without the 'module.' prefix. Every tensor is taken, BatchNorm running
        statistics included; the number of classes is the checkpoint's. In eval mode."""
        from .reference import (
            check_reference_layout,
            load_reference_weights,
            read_reference_checkpoint,
            reference_num_classes,
        )

        space = get_space(space)
        check_reference_layout(space)
        state = read_reference_checkpoint(source)
        net = cls(space, reference_num_classes(state))
        load_reference_weights(net, state)
        return net.eval()

    def reference_checkpoint(self) -> dict[str, Any]:
        """These weights in the reference implementation's checkpoint layout (see nn/reference.py)."""
        from .reference import reference_checkpoint

        return reference_checkpoint(self)

    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.classifier.weight, std=0.01)
        nn.init.zeros_(cast(nn.Parameter, self.classifier.bias))  # the classifier is built with a bias
        if self.space.spec.shortcut == "projection":
            # Every block has a shortcut: start each residual branch at zero (as the reference).
            for b in self.blocks:
                nn.init.zeros_(cast(ElasticMBConv, b).project_bn.weight)

    def set_drop_path_scope(self, scope: str) -> None:
        """Which blocks `drop_path` reaches: 'last_two_stages' (the AttentiveNAS reference's default,
        `drop_connect_only_last_two_stages`) or 'all_blocks'. Either way a reached block's rate is
        drop_path * (its index among all the supernet's blocks) / (their number), as the reference."""
        if scope not in DROP_PATH_SCOPES:
            raise SupernasError(f"the drop-path scope must be one of {', '.join(DROP_PATH_SCOPES)}, got {scope!r}")
        first_stage = max(len(self.space.spec.stages) - 2, 0) if scope == "last_two_stages" else 0
        self.drop_path_scope = scope
        self._drop_path_from = self.stage_of_block.index(first_stage)

    def set_recompute_bn_act(self, on: bool) -> None:
        """With `on`, a training forward stores only each BatchNorm + activation's input for
        backward and rebuilds the BatchNorm's and the activation's outputs there (nn/bn_act.py):
        less than half the activation memory for an elementwise pass or two per layer, gradients
        unchanged up to rounding. The forward then sets its own saved-tensor hooks
        (torch.autograd.graph.saved_tensors_hooks), which take the place of a caller's."""
        self.recompute_bn_act = bool(on)
        for m in self.modules():
            if isinstance(m, ElasticBatchNorm2d):
                m.recompute_act = self.recompute_bn_act

    def set_conv_kernels(self, pointwise: str = "conv", depthwise: str = "conv") -> None:
        """Which kernels the elastic convolutions run (nn/elastic.py): 1x1 convolutions as
        convolutions or as matrix products (`pointwise="gemm"`), depthwise ones as convolutions or by
        PyTorch's own CUDA kernel (`depthwise="native"`; a CPU runs the convolution). The results
        are the same up to rounding."""
        for name, value, choices in (("pointwise", pointwise, ("conv", "gemm")),
                                     ("depthwise", depthwise, ("conv", "native"))):
            if value not in choices:
                raise SupernasError(f"{name} kernels {value!r}: choose one of {', '.join(choices)}")
        self.conv_kernels = {"pointwise": pointwise, "depthwise": depthwise}
        for m in self.modules():
            if isinstance(m, ElasticConv2d):
                m.gemm, m.native = pointwise == "gemm", depthwise == "native"

    def plan(self, arch: Arch) -> NetPlan:
        return plan(self.space, arch)

    def forward(self, x: torch.Tensor, arch: Arch, dropout: float = 0.0, drop_path: float = 0.0) -> torch.Tensor:
        """Logits of `arch` for images `x` (N, 3, H, W).

        `dropout` applies before the classifier and `drop_path` (stochastic depth, rising linearly
        with block index, in the blocks of `set_drop_path_scope`) on identity residuals; both only
        in training mode.
        """
        return self.classify(self.features(x, arch, drop_path), dropout)

    def features(self, x: torch.Tensor, arch: Arch, drop_path: float = 0.0) -> torch.Tensor:
        if self.recompute_bn_act and self.training and torch.is_grad_enabled():
            with storing_rebuilds():  # the layers after each BatchNorm + activation store how to rebuild their inputs
                return self._features(x, arch, drop_path)
        return self._features(x, arch, drop_path)

    def _features(self, x: torch.Tensor, arch: Arch, drop_path: float) -> torch.Tensor:
        p = self.plan(arch)
        x = static.resize_to(x, p.resolution)
        s = self.space.spec
        x = self.stem_bn(self.stem_conv(x, p.stem_out), act=s.stem_act)
        n = len(self.blocks)
        for b in p.blocks:
            reached = drop_path and b.index >= self._drop_path_from
            x = self.blocks[b.index](x, b, drop_path * b.index / n if reached else 0.0)
        x = self.head_bn(self.head_conv(x, p.head_mid), act=s.head_act).mean((2, 3))
        if self.head_kind == "mbpool":
            x = activation(s.head_act)(self.head_mix(x, p.head_out))
        return x

    def classify(self, features: torch.Tensor, dropout: float = 0.0) -> torch.Tensor:
        if dropout > 0 and self.training:
            features = F.dropout(features, dropout, training=True)
        return self.classifier(features)

    # ------------------------------------------------------------------ extraction
    @torch.no_grad()
    def extract(self, arch: Arch) -> static.StaticNet:
        """A standalone model of `arch` holding copies of the sliced weights (and BN statistics)."""
        p = self.plan(arch)
        s = self.space.spec
        # (the casts: a ConvBNAct holds its nn.Conv2d at [0] and its nn.BatchNorm2d at [1])
        stem = static.ConvBNAct(3, p.stem_out, 3, s.stem_stride, act=s.stem_act)
        _copy_conv(cast(nn.Conv2d, stem[0]), self.stem_conv.active_weight(p.stem_out, 3, 3))
        _copy_bn(cast(nn.BatchNorm2d, stem[1]), self.stem_bn, p.stem_out)
        blocks = [self._extract_block(cast(ElasticMBConv, self.blocks[b.index]), b) for b in p.blocks]
        head = static.Head(s.head_kind, p.head_in, p.head_mid, p.head_out, s.head_act)
        _copy_conv(cast(nn.Conv2d, head.conv[0]), self.head_conv.active_weight(p.head_mid, p.head_in, 1))
        _copy_bn(cast(nn.BatchNorm2d, head.conv[1]), self.head_bn, p.head_mid)
        if s.head_kind == "mbpool":  # then the head mixes with an nn.Linear
            cast(nn.Linear, head.mix).weight.copy_(self.head_mix.weight[: p.head_out, : p.head_mid])
        classifier = nn.Linear(p.head_out, self.num_classes)
        classifier.weight.copy_(self.classifier.weight[:, : p.head_out])
        classifier.bias.copy_(cast(nn.Parameter, self.classifier.bias))  # the classifier is built with a bias
        net = static.StaticNet(stem, blocks, head, classifier, p.resolution)
        return net.to(device=self.classifier.weight.device, dtype=self.classifier.weight.dtype).train(self.training)

    def _extract_block(self, e: ElasticMBConv, p: BlockPlan) -> static.MBConv:
        s = self.space.spec
        m = static.MBConv(p.cin, p.cout, p.mid, p.kernel, p.stride, p.act, p.expand, p.attention, p.inter,
                          s.gate, s.shortcut, p.hw_in)
        # (the casts: a ConvBNAct holds its nn.Conv2d at [0] and its nn.BatchNorm2d at [1]; the layers with
        # biases are built with them)
        if p.expand:  # then m.expand is a ConvBNAct
            expand = cast(static.ConvBNAct, m.expand)
            _copy_conv(cast(nn.Conv2d, expand[0]), e.expand_conv.active_weight(p.mid, p.cin, 1))
            _copy_bn(cast(nn.BatchNorm2d, expand[1]), e.expand_bn, p.mid)
        rows = e.branch_rows(p.splits, p.mid, e.dw_conv.weight.device)
        w = e.dw_conv.active_weight(e.max_splits * e.max_mid, 1, p.kernel)
        _copy_conv(cast(nn.Conv2d, m.dw[0]), w[rows])
        _copy_bn(cast(nn.BatchNorm2d, m.dw[1]), e.dw_bn, rows)
        if p.attention:  # then m.attn is a SqueezeExcite or a SplitAttention
            a = e.attention
            attn = cast("static.SqueezeExcite | static.SplitAttention", m.attn)
            attn.reduce.weight.copy_(a.reduce.weight[: p.inter, : p.mid, None, None])
            cast(torch.Tensor, attn.reduce.bias).copy_(cast(nn.Parameter, a.reduce.bias)[: p.inter])
            w2, b2 = a.expand_weight(p.splits, p.mid, p.inter)  # branch-major rows j*mid + c
            if p.splits > 1:  # to interleaved c*r + j
                order = (torch.arange(p.splits).view(1, -1) * p.mid + torch.arange(p.mid).view(-1, 1)).reshape(-1)
                w2, b2 = w2[order.to(w2.device)], b2[order.to(b2.device)]
            attn.expand.weight.copy_(w2[:, :, None, None])
            cast(torch.Tensor, attn.expand.bias).copy_(b2)
        _copy_conv(cast(nn.Conv2d, m.project[0]), e.project_conv.active_weight(p.cout, p.mid, 1))
        _copy_bn(cast(nn.BatchNorm2d, m.project[1]), e.project_bn, p.cout)
        if isinstance(m.shortcut, static.Shortcut) and isinstance(m.shortcut.conv, nn.Conv2d):
            _copy_conv(m.shortcut.conv, e.shortcut_conv.active_weight(p.cout, p.cin, 1))
        return m


def _copy_conv(conv: nn.Conv2d, w: torch.Tensor) -> None:
    conv.weight.copy_(w)


def _copy_bn(bn: nn.BatchNorm2d, src: nn.BatchNorm2d, channels: "int | torch.Tensor") -> None:
    sel = slice(0, channels) if isinstance(channels, int) else channels
    # both keep running statistics: the supernet's and the extracted model's BatchNorms are built tracking them
    assert bn.running_mean is not None and bn.running_var is not None and bn.num_batches_tracked is not None
    assert src.running_mean is not None and src.running_var is not None and src.num_batches_tracked is not None
    bn.weight.copy_(src.weight[sel])
    bn.bias.copy_(src.bias[sel])
    bn.running_mean.copy_(src.running_mean[sel])
    bn.running_var.copy_(src.running_var[sel])
    bn.eps, bn.momentum = src.eps, src.momentum
    bn.num_batches_tracked.copy_(src.num_batches_tracked)
