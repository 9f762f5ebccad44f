"""Elastic layers: one weight tensor at the largest size, sliced per call to the active size.

Slicing stays inside these few layers (channels: a prefix of the weight; kernels: the centre
crop; branches: a block of rows at an offset). Only the dimensions that shrink are sliced (each
slice adds a backward that scatters its gradient into a zero tensor of the full size).

A slice that cuts input channels or crops the kernel is not dense, and cuDNN and the CPU kernels
convolve dense weights only, so it is copied once per call: into the input's memory format (so
channels_last activations meet channels_last weights) and, under autocast, straight into the
autocast dtype (one copy, where `.contiguous()` followed by autocast's own cast would make two).
A prefix of output channels is dense and goes to the convolution as a view.

Depthwise convolutions of channels_last inputs run in NCHW (two activation copies): cuDNN's NHWC
depthwise kernels are planned, and on cuDNN 9 compiled, for every new shape, and a supernet meets
new shapes every step (a bf16 + channels_last sandwich step took 19.5 s with them, 0.64 s
without, on an H200: docs/performance.md).

Two other kernel paths avoid a per-shape plan altogether (`SuperNet.set_conv_kernels`): 1x1
convolutions as matrix products (`pointwise="gemm"`: a channels_last activation is already an
(N*H*W, C) matrix) and depthwise convolutions by PyTorch's own CUDA kernel
(`depthwise="native"`, which takes bf16). Both give the convolution's results up to rounding; the
defaults stay the convolutions until the GPU suite measures a path faster.
"""
from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from .bn_act import activation, batch_norm_act, derive


def _autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype autocast casts convolutions to on `device_type`, or None when it is off."""
    try:
        if torch.is_autocast_enabled(device_type):
            return torch.get_autocast_dtype(device_type)
        return None
    except TypeError:  # torch < 2.4: the device-less functions
        if device_type == "cuda":
            return torch.get_autocast_gpu_dtype() if torch.is_autocast_enabled() else None
        return torch.get_autocast_cpu_dtype() if torch.is_autocast_cpu_enabled() else None


def _is_channels_last(x: torch.Tensor) -> bool:
    return x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def _conv_weight(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """`w` as the convolution of `x` will use it, copied at most once (see the module docstring)."""
    fmt = torch.channels_last if _is_channels_last(x) else torch.contiguous_format
    dtype = _autocast_dtype(x.device.type) if w.dtype == torch.float32 else None
    if dtype is not None and dtype != w.dtype:
        return w.to(dtype=dtype, memory_format=fmt)
    if w.is_contiguous(memory_format=fmt) or (fmt == torch.contiguous_format and
                                              w.is_contiguous(memory_format=torch.channels_last)):
        return w
    return w.contiguous(memory_format=fmt)


def _depthwise(x: torch.Tensor, w: torch.Tensor, stride: int, kernel: int) -> torch.Tensor:
    if _is_channels_last(x):
        x = derive(x.contiguous(), x, torch.Tensor.contiguous)
        # (C, 1, k, k) has one memory order in both formats: restride it as NCHW without a copy
        y = F.conv2d(x, _conv_weight(w.squeeze(1).unsqueeze(1), x), None, stride, kernel // 2, 1, x.shape[1])
        return y.contiguous(memory_format=torch.channels_last)
    return F.conv2d(x, _conv_weight(w, x), None, stride, kernel // 2, 1, x.shape[1])


def _pointwise_gemm(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """A stride-1 1x1 convolution of `x` with `w` (out, in, 1, 1) as a matrix product: channels_last
    activations are (N, H, W, C) matrices already and come back channels_last, NCHW ones as
    (N, C, H*W) batches. Autocast casts it as it casts a convolution."""
    w2 = w.reshape(w.shape[0], w.shape[1])
    if _is_channels_last(x):
        return F.linear(x.permute(0, 2, 3, 1), w2).permute(0, 3, 1, 2)
    n, c, h, wd = x.shape
    return torch.matmul(w2, x.reshape(n, c, h * wd)).reshape(n, w.shape[0], h, wd)


def _depthwise_native(x: torch.Tensor, w: torch.Tensor, stride: int, kernel: int) -> torch.Tensor:
    """A depthwise convolution by PyTorch's own CUDA kernel, in the autocast dtype when autocast is
    on (the kernel is not on autocast's lists, so the cast is made here). NCHW in and out, as the
    kernel takes it; channels_last inputs come back channels_last."""
    last = _is_channels_last(x)
    dtype = _autocast_dtype(x.device.type) or x.dtype
    # the copy is stored for backward as how to rebuild it under train.recompute_bn_act, as _depthwise's is
    xc = derive(x.to(dtype).contiguous(), x, lambda t: t.to(dtype).contiguous())
    y = torch.ops.aten._conv_depthwise2d(xc, w.to(dtype).contiguous(), [kernel, kernel], None, [stride, stride],
                                         [kernel // 2, kernel // 2], [1, 1])
    return y.contiguous(memory_format=torch.channels_last) if last else y


class ElasticConv2d(nn.Module):
    """Conv2d with active output channels, input channels (from the input) and kernel size
    chosen per call. Depthwise when `depthwise`: then in = out channels, one group each.
    `gemm` (1x1, stride 1 only) and `native` (depthwise on a GPU only) choose the other kernel
    paths of the module docstring."""

    gemm = False
    native = False

    def __init__(self, max_in: int, max_out: int, max_kernel: int, stride: int = 1, depthwise: bool = False):
        super().__init__()
        self.max_in, self.max_out, self.max_kernel = max_in, max_out, max_kernel
        self.stride, self.depthwise = stride, depthwise
        self.weight = nn.Parameter(torch.empty(max_out, 1 if depthwise else max_in, max_kernel, max_kernel))
        nn.init.kaiming_normal_(self.weight, mode="fan_out")

    def extra_repr(self) -> str:
        kind = "depthwise, " if self.depthwise else ""
        return f"{kind}max_in={self.max_in}, max_out={self.max_out}, max_kernel={self.max_kernel}, stride={self.stride}"

    def active_weight(self, out_channels: int, in_channels: int, kernel: int, offset: int = 0) -> torch.Tensor:
        """The weight slice of this call, a view; dimensions at their full size are not sliced."""
        w: torch.Tensor = self.weight
        if offset or out_channels != self.max_out:
            w = w[offset:offset + out_channels]
        if not self.depthwise and in_channels != self.max_in:
            w = w[:, :in_channels]
        if kernel != self.max_kernel:
            s = (self.max_kernel - kernel) // 2
            w = w[:, :, s:s + kernel, s:s + kernel]
        return w

    def forward(self, x: torch.Tensor, out_channels: int, kernel: int | None = None, offset: int = 0) -> torch.Tensor:
        kernel = self.max_kernel if kernel is None else kernel
        w = self.active_weight(out_channels, x.shape[1], kernel, offset)
        if self.depthwise:
            return self._depthwise(x, w, kernel)
        if self.gemm and kernel == 1 and self.stride == 1:
            return _pointwise_gemm(x, w)
        return F.conv2d(x, _conv_weight(w, x), None, self.stride, kernel // 2, 1, 1)

    def _depthwise(self, x: torch.Tensor, w: torch.Tensor, kernel: int) -> torch.Tensor:
        if self.native and x.is_cuda:
            return _depthwise_native(x, w, self.stride, kernel)
        return _depthwise(x, w, self.stride, kernel)

    def forward_rows(self, x: torch.Tensor, rows: torch.Tensor, kernel: int) -> torch.Tensor:
        """Depthwise conv whose output channels are the weight rows `rows` (len(rows) / C per input
        channel): r Split-Attention branches as one grouped conv instead of r convs."""
        w = self.weight.index_select(0, rows)
        if kernel != self.max_kernel:
            s = (self.max_kernel - kernel) // 2
            w = w[:, :, s:s + kernel, s:s + kernel]
        return self._depthwise(x, w, kernel)


class ElasticBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm over the first C channels (from the input), or C channels from `offset`, and the
    activation that follows it when one is named.

    Running statistics are sliced views, so re-calibration updates them in place. The cumulative
    average of re-calibration (momentum None) counts its batches on the host since the last
    `reset_running_stats`, where nn.BatchNorm2d reads `num_batches_tracked` back from the device
    on every call. With `recompute_act` set (SuperNet.set_recompute_bn_act), a training forward
    that records gradients stores only the BatchNorm's input (nn/bn_act.py)."""

    recompute_act = False

    def reset_running_stats(self) -> None:
        super().reset_running_stats()
        self.batches_since_reset = 0

    def forward(self, x: torch.Tensor, offset: int = 0, rows: torch.Tensor | None = None,
                act: str | None = None) -> torch.Tensor:
        """Normalise channels [offset, offset + C), or the gathered channels `rows` (whose updated
        running statistics are written back), then apply `act` ('swish', 'relu') when given."""
        use_batch_stats = self.training or self.running_mean is None
        momentum = self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            self.batches_since_reset += 1
            if momentum is None:  # cumulative average, as used for BatchNorm re-calibration
                momentum = 1.0 / self.batches_since_reset
        if rows is None:
            def active(t: torch.Tensor | None) -> torch.Tensor | None:  # the whole tensor when all is active
                full = offset == 0 and x.shape[1] == self.num_features
                return t if t is None or full else t[offset:offset + x.shape[1]]

            return self._normalise(x, active(self.running_mean), active(self.running_var), active(self.weight),
                                   active(self.bias), use_batch_stats, momentum or 0.0, act)
        mean = self.running_mean.index_select(0, rows) if self.running_mean is not None else None
        var = self.running_var.index_select(0, rows) if self.running_var is not None else None
        out = self._normalise(x, mean, var, self.weight.index_select(0, rows), self.bias.index_select(0, rows),
                              use_batch_stats, momentum or 0.0, act)
        if use_batch_stats and mean is not None and momentum:
            # mean and var are gathered from the running statistics, which a BatchNorm has both or neither of
            assert self.running_mean is not None and self.running_var is not None and var is not None
            self.running_mean.index_copy_(0, rows, mean)
            self.running_var.index_copy_(0, rows, var)
        return out

    def _normalise(self, x: torch.Tensor, mean: torch.Tensor | None, var: torch.Tensor | None,
                   weight: torch.Tensor | None, bias: torch.Tensor | None, use_batch_stats: bool, momentum: float,
                   act: str | None) -> torch.Tensor:
        if act is not None and self.recompute_act and use_batch_stats and torch.is_grad_enabled():
            return batch_norm_act(x, weight, bias, mean, var, momentum, self.eps, act)
        out = F.batch_norm(x, mean, var, weight, bias, use_batch_stats, momentum, self.eps)
        return out if act is None else activation(act)(out)


class ElasticLinear(nn.Module):
    """Linear layer with active input features (from the input) and output features per call."""

    def __init__(self, max_in: int, max_out: int, bias: bool = True):
        super().__init__()
        self.max_in, self.max_out = max_in, max_out
        self.weight = nn.Parameter(torch.empty(max_out, max_in))
        self.bias = nn.Parameter(torch.zeros(max_out)) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(max_in)
            nn.init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        return f"max_in={self.max_in}, max_out={self.max_out}, bias={self.bias is not None}"

    def forward(self, x: torch.Tensor, out_features: int | None = None, offset: int = 0) -> torch.Tensor:
        n = self.max_out if out_features is None else out_features
        w: torch.Tensor
        b: torch.Tensor | None
        w, b = self.weight, self.bias
        if offset or n != self.max_out:
            w = w[offset:offset + n]
            b = b[offset:offset + n] if b is not None else None
        if x.shape[-1] != self.max_in:
            w = w[:, : x.shape[-1]]  # a strided view: the GEMM reads it without a copy
        return F.linear(x, w, b)


class ElasticAttention(nn.Module):
    """Squeeze-excitation (one branch) and Split-Attention (r branches) sharing one MLP.

    Input: the r depthwise branches interleaved, (N, C*r, H, W) with channel c*r + j holding
    branch j of channel c (as one grouped conv makes them). The pooled sum of the branches goes
    through C -> inter -> r*C; with one branch a gate (sigmoid or hard sigmoid) scales it
    (squeeze-excitation), with r >= 2 a softmax across branches weighs them (ResNeSt's radix
    attention). The r*C output rows are stored branch-major, so r branches share the rows of
    fewer: SE, SA-2 and SA-4 are nested slices of one weight.
    """

    def __init__(self, max_channels: int, max_inter: int, max_splits: int, gate: str):
        super().__init__()
        self.max_channels, self.max_splits, self.gate = max_channels, max_splits, gate
        self.reduce = ElasticLinear(max_channels, max_inter)
        self.expand = ElasticLinear(max_inter, max_splits * max_channels)

    def expand_weight(self, splits: int, channels: int, inter: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows of the expand layer for `splits` branches of `channels`, branch-major."""
        w = self.expand.weight.view(self.max_splits, self.max_channels, -1)[:splits, :channels, :inter]
        # self.expand is built with a bias
        b = cast(nn.Parameter, self.expand.bias).view(self.max_splits, self.max_channels)[:splits, :channels]
        return w.reshape(splits * channels, inter), b.reshape(splits * channels)

    def forward(self, x: torch.Tensor, splits: int, inter: int) -> torch.Tensor:
        n, cr, height, width = x.shape
        c = cr // splits
        xv = derive(x.view(n, c, splits, height, width), x, lambda t: t.view(n, c, splits, height, width)) \
            if splits > 1 else x
        pooled = xv.sum(2).mean((2, 3)) if splits > 1 else x.mean((2, 3))
        h = F.relu(self.reduce(pooled, inter))
        w, b = self.expand_weight(splits, c, inter)
        logits = F.linear(h, w, b)
        if splits == 1:
            g = F.hardsigmoid(logits) if self.gate == "hsigmoid" else torch.sigmoid(logits)
            return x * g[..., None, None]  # torch 2.1 makes each `:` a slice whose backward scatters
        a = torch.softmax(logits.view(n, splits, c), dim=1).transpose(1, 2)  # (n, c, splits)
        return (xv * a[..., None, None]).sum(2)
