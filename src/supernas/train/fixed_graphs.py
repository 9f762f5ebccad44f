"""The largest and the smallest Arch of a sandwich step replayed from CUDA graphs (`train.cuda_graphs`).

A supernet meets new layer shapes every step, but the largest and the smallest Arch run in every
step with the same shapes: their forward and backward are captured once
(`torch.cuda.make_graphed_callables`) and then replayed, without Python, one kernel launch at a time
or plan look-ups, for half of a four-Arch step's subnet passes.

A replay does what the eager pass does: BatchNorm's running statistics move (the capture's warm-up
passes are undone), dropout and stochastic depth draw new masks (a graph advances the CUDA
generator's offset on every replay), gradients accumulate into `.grad`. A pass runs eager where a
graph cannot serve it: on a CPU, without gradients, for a batch of another shape, dtype or layout
(an epoch's short last batch), and after a capture that failed (said once, with the reason).
"""
from __future__ import annotations

import warnings
from typing import Any, Callable, cast

import torch
from torch import nn

from ..runtime.precision import autocast
from ..spaces import Arch


class _ArchPass(nn.Module):
    """`net(x, arch, **options)` as a module of one tensor argument, which graphing needs."""

    def __init__(self, net: nn.Module, arch: Arch, options: dict[str, Any]):
        super().__init__()
        self.net, self.arch, self.options = net, arch, options

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x, self.arch, **self.options)


class FixedArchGraphs:
    """`passes(net, x, arch, **options)`: `net(x, arch, **options)` under the run's autocast; for an
    Arch of `fixed`, when `enabled`, replayed from a graph captured at its first call that can be
    graphed. Each Arch keeps the graph of that call; a later call that differs from it in anything
    the graph fixed (the net, options, the batch's shape, dtype or layout) runs eager."""

    def __init__(self, enabled: bool, amp_dtype: torch.dtype | None, fixed: "set[Arch] | frozenset[Arch]"):
        self.enabled, self.amp_dtype, self.fixed = enabled, amp_dtype, frozenset(fixed)
        self._graphs: dict[Arch, tuple[tuple, Callable[[torch.Tensor], torch.Tensor]]] = {}
        self.failed: str | None = None  # why capturing failed; everything runs eager after it
        self.replays = 0  # graphed passes run (tests and benches read it)

    def __call__(self, net: nn.Module, x: torch.Tensor, arch: Arch, **options: Any) -> torch.Tensor:
        if not (self.enabled and arch in self.fixed and self._graphable(x) and torch.is_grad_enabled()
                and net.training and self.failed is None):
            return self._eager(net, x, arch, options)
        key = (id(net), tuple(x.shape), x.dtype, x.stride(), tuple(sorted(options.items())))
        if arch not in self._graphs:
            graphed = self._capture(net, x, arch, options)
            if graphed is None:
                return self._eager(net, x, arch, options)
            self._graphs[arch] = (key, graphed)
        captured_key, graphed = self._graphs[arch]
        if captured_key != key:
            return self._eager(net, x, arch, options)
        self.replays += 1
        return graphed(x)

    @staticmethod
    def _graphable(x: torch.Tensor) -> bool:
        return x.is_cuda

    def _eager(self, net: nn.Module, x: torch.Tensor, arch: Arch, options: dict[str, Any]) -> torch.Tensor:
        with autocast(x.device, self.amp_dtype):
            return net(x, arch, **options)

    def _capture(self, net: nn.Module, x: torch.Tensor, arch: Arch,
                 options: dict[str, Any]) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """The graphed pass, or None (and `failed` set) when it cannot be captured. The capture's
        warm-up passes move BatchNorm statistics as training passes would: they are put back."""
        buffers = [(b, b.detach().clone()) for b in net.buffers()]
        try:
            # autocast's weight cache would keep casts made during capture alive across replays
            with torch.autocast("cuda", dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None,
                                cache_enabled=False):
                # given one module, it returns that module graphed: the same tensor -> tensor call
                return cast("Callable[[torch.Tensor], torch.Tensor]",
                            torch.cuda.make_graphed_callables(_ArchPass(net, arch, options), (x.detach(),),
                                                              allow_unused_input=True))
        except Exception as e:  # noqa: BLE001 - any reason to capture nothing means eager passes
            self.failed = f"{type(e).__name__}: {e}".splitlines()[0][:300]
            warnings.warn(f"train.cuda_graphs: capturing a fixed Arch's pass failed ({self.failed}); every pass "
                          "runs eager", stacklevel=3)
            return None
        finally:
            with torch.no_grad():
                for b, saved in buffers:
                    b.copy_(saved)
