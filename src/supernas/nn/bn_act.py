"""BatchNorm then its activation, storing only the BatchNorm's input for the backward pass.

A supernet step's memory is the activations stored for backward, and most come in threes per
BatchNorm + activation: the BatchNorm's input (its own backward needs it), the activation's
input (the BatchNorm's output) and the activation's output (the next layer's input, stored by
that layer). Both of the last two are cheap to rebuild: one multiply-add per element from the
stored input and two numbers per channel, then the activation. `batch_norm_act` rebuilds the
first in its own backward; inside `storing_rebuilds` (SuperNet's forward with
`train.recompute_bn_act`) the layers after it store how to rebuild the second instead of the
tensor (a saved-tensor hook). An attentivenas step then stores 42 % of the bytes in fp32, for
one or two extra elementwise passes per layer in backward (bench/activation_memory.py).

The statistics and their backward are PyTorch's own (`_batch_norm_impl_index`: cuDNN where it
applies), so the gradients are the unfused layers' up to rounding.
"""
from __future__ import annotations

import contextlib
import threading
import weakref
from typing import Iterator

import torch
import torch.nn.functional as F

ACTIVATIONS = ("swish", "relu")


def activation(name: str):
    """The function of an activation name of a space ('swish' or 'relu')."""
    return F.silu if name == "swish" else F.relu


def _normalised(x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None, mean: torch.Tensor,
                invstd: torch.Tensor) -> torch.Tensor:
    """The BatchNorm's output rebuilt from its input and batch statistics, in float32 (or x's
    dtype when wider): x * scale + shift per channel, one pass."""
    scale = invstd if weight is None else invstd * weight
    shift = -mean * scale if bias is None else bias - mean * scale
    shape = (1, -1) + (1,) * (x.dim() - 2)
    return torch.addcmul(shift.view(shape), x, scale.view(shape))


class _Source:
    """What rebuilds one `batch_norm_act` call's BatchNorm output z: its input (which its backward
    stores anyway) and per-channel numbers. A rebuild for the next layer's backward keeps z for
    this call's own backward, which comes soon after and then takes it, so z is built once."""

    def __init__(self, x, weight, bias, mean, invstd, act: str, dtype: torch.dtype):
        self.args, self.act, self.dtype = (x, weight, bias, mean, invstd), act, dtype
        self.z: torch.Tensor | None = None

    def normalised(self, keep: bool) -> torch.Tensor:
        z = self.z if self.z is not None else _normalised(*self.args)
        self.z = z if keep else None
        return z


class _Rebuild:
    """A `batch_norm_act` output as the layers after it store it: its source, then `then` (a copy
    into another layout, a view) when the layer stored a tensor derived from it."""

    def __init__(self, source: _Source, then=None):
        self.source, self.then = source, then

    def derived(self, fn) -> "_Rebuild":
        then = fn if self.then is None else (lambda t, first=self.then: fn(first(t)))
        return _Rebuild(self.source, then)

    def __call__(self) -> torch.Tensor:
        src = self.source
        y = activation(src.act)(src.normalised(keep=True).to(src.dtype))
        return y if self.then is None else self.then(y)


class _BatchNormAct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, momentum: float, eps: float, act: str):
        z, save_mean, save_invstd, reserve, impl = torch.ops.aten._batch_norm_impl_index(
            x, weight, bias, running_mean, running_var, True, momentum, eps, torch.backends.cudnn.enabled)
        y = activation(act)(z)
        # The running statistics are not needed by a training-mode backward and change (in place)
        # before it runs when the next Arch of a sandwich normalises with them: kept unsaved.
        ctx.running = (running_mean, running_var)
        ctx.impl, ctx.eps, ctx.act = impl, eps, act
        ctx.save_for_backward(x, weight, bias, save_mean, save_invstd, reserve)
        ctx.source = _Source(x, weight, bias, save_mean, save_invstd, act, y.dtype)
        return y

    @staticmethod
    def backward(ctx, gy):
        x, weight, bias, mean, invstd, reserve = ctx.saved_tensors
        # Let go of the source (it holds x): autograd frees the saved tensors after backward, but
        # the node lives on while its graph's output does (a caller holding the loss).
        source, ctx.source = ctx.source, None
        z = source.normalised(keep=False) if source is not None else _normalised(x, weight, bias, mean, invstd)
        if ctx.act == "relu":
            gz = gy.masked_fill(z <= 0, 0)
        else:
            gz = torch.ops.aten.silu_backward(gy.to(z.dtype), z).to(x.dtype)
        gx, gw, gb = torch.ops.aten._batch_norm_impl_index_backward(
            ctx.impl, x, gz, weight, *ctx.running, mean, invstd, True, ctx.eps, list(ctx.needs_input_grad[:3]),
            reserve)
        return gx, gw, gb, None, None, None, None, None


# The outputs of batch_norm_act made inside `storing_rebuilds`, by id: (weak reference, _Rebuild).
_local = threading.local()


@contextlib.contextmanager
def storing_rebuilds() -> Iterator[None]:
    """Within it, a tensor a layer stores for backward that is a `batch_norm_act` output (or
    `derive`d from one) is stored as how to rebuild it: the next layers' inputs are rebuilt in
    backward instead of kept (the convolution and attention after each BatchNorm + activation)."""
    table: dict[int, tuple[weakref.ref, _Rebuild]] = {}

    def pack(t: torch.Tensor):
        hit = table.get(id(t))
        return hit[1] if hit is not None and hit[0]() is t else t

    def unpack(obj):
        return obj() if isinstance(obj, _Rebuild) else obj

    outer = getattr(_local, "table", None)
    _local.table = table
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
            yield
    finally:
        _local.table = outer


def _remember(y: torch.Tensor, rebuild: _Rebuild) -> None:
    table = getattr(_local, "table", None)
    if table is not None:
        table[id(y)] = (weakref.ref(y), rebuild)


def derive(new: torch.Tensor, source: torch.Tensor, fn) -> torch.Tensor:
    """`new` = fn(source) (a view, a copy into another layout): stored as `source`'s rebuild and
    then `fn` when `source` is a rebuildable `batch_norm_act` output. Returns `new`."""
    table: dict[int, tuple[weakref.ref, _Rebuild]] | None = getattr(_local, "table", None)
    hit = table.get(id(source)) if table is not None else None
    if hit is not None and hit[0]() is source:
        assert table is not None  # hit came from it
        table[id(new)] = (weakref.ref(new), hit[1].derived(fn))
    return new


def batch_norm_act(x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None,
                   running_mean: torch.Tensor | None, running_var: torch.Tensor | None, momentum: float,
                   eps: float, act: str) -> torch.Tensor:
    """`activation(act)(F.batch_norm(x, ..., training=True))`, storing only `x` and per-channel
    numbers for backward (and, inside `storing_rebuilds`, letting the next layers store how to
    rebuild the output). The running statistics are updated in place as F.batch_norm does."""
    if act not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {act!r}")
    y = _BatchNormAct.apply(x, weight, bias, running_mean, running_var, momentum, eps, act)
    if y.grad_fn is not None:
        _remember(y, _Rebuild(y.grad_fn.source))
    return y
