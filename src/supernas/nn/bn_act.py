"""BatchNorm then its activation, storing only the BatchNorm's input for the backward pass.

A supernet step's memory is the activations stored for backward, and most come in threes per
BatchNorm + activation: the BatchNorm's input (its own backward needs it), the activation's
input (the BatchNorm's output) and the activation's output (the next layer's input). The middle
one is cheap to rebuild: one multiply-add per element from the stored input and the batch
statistics. `batch_norm_act` rebuilds it in backward instead of storing it, which cuts the
stored bytes of an attentivenas sandwich step by about a quarter (bench/activation_memory.py)
for one extra elementwise pass per layer. ReLU's derivative needs only the sign of its output,
which the next layer stores anyway, so nothing is rebuilt for it.

The statistics and their backward are PyTorch's own (`_batch_norm_impl_index`: cuDNN where it
applies), so the gradients are the unfused layers' up to rounding.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

ACTIVATIONS = ("swish", "relu")


def activation(name: str):
    """The function of an activation name of a space ('swish' or 'relu')."""
    return F.silu if name == "swish" else F.relu


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
        ctx.save_for_backward(x, weight, bias, save_mean, save_invstd, reserve, y if act == "relu" else None)
        return y

    @staticmethod
    def backward(ctx, gy):
        x, weight, bias, mean, invstd, reserve, y = ctx.saved_tensors
        if ctx.act == "relu":
            gz = gy.masked_fill(y <= 0, 0)
        else:  # rebuild the BatchNorm's output: z = x * scale + shift per channel
            scale = invstd if weight is None else invstd * weight
            shift = -mean * scale if bias is None else bias - mean * scale
            shape = (1, -1) + (1,) * (x.dim() - 2)
            z = torch.addcmul(shift.view(shape), x, scale.view(shape))
            gz = torch.ops.aten.silu_backward(gy.to(z.dtype), z).to(x.dtype)
        gx, gw, gb = torch.ops.aten._batch_norm_impl_index_backward(
            ctx.impl, x, gz, weight, *ctx.running, mean, invstd, True, ctx.eps, list(ctx.needs_input_grad[:3]),
            reserve)
        return gx, gw, gb, None, None, None, None, None


def batch_norm_act(x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None,
                   running_mean: torch.Tensor | None, running_var: torch.Tensor | None, momentum: float,
                   eps: float, act: str) -> torch.Tensor:
    """`activation(act)(F.batch_norm(x, ..., training=True))`, storing only `x` (and ReLU's output)
    for backward. The running statistics are updated in place as F.batch_norm does."""
    if act not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {act!r}")
    return _BatchNormAct.apply(x, weight, bias, running_mean, running_var, momentum, eps, act)
