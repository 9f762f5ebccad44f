"""Measured latency as a search cost: a lookup table of per-layer latencies on the current device.

The latency of an Arch is estimated as the sum of the measured latencies of its layers (stem,
each active block, head with classifier), each layer keyed by its exact configuration (input
size, channels, kernel, stride, expansion, attention, activation, shortcut...). Layers recur
across Archs, so a space has few distinct ones (a few hundred for `attentivenas`): each is
built with the classes of `nn/static.py` that `SuperNet.extract` uses, timed once, and cached.
Scoring then costs a `layout` and a few gathers, fast enough to constrain an evolutionary search.

    table = LatencyTable(space, num_classes=10, batch_size=1)
    ms = table.latency_indices(idx)          # measures the layers it has not seen yet
    table.save("latency_table.json")         # reused by LatencyTable.load on the same device

`measure_end_to_end` times whole extracted models, and `compare_latency` reports how well the
table agrees with them.
"""
from __future__ import annotations

import json
import math
import platform
import statistics
import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import SupernasError, require_int
from ..nn import static
from ..spaces import Arch, SearchSpace
from ..spaces.layout import Layout, layout
from ..spaces.spec import ACTIVATIONS
from ..runtime.distributed import resolve_device
from ..utils.io import atomic_write_text
from .static_models import measure_latency, time_forward

Timer = Callable[[nn.Module, torch.Tensor], float]
FORMAT = 1

# The integer fields that key each kind of layer, read from a Layout; space-wide constants
# (activations of stem and head, SE gate, shortcut kind, classes) are appended to the key.
_STEM_FIELDS = ("hw", "cout")
_BLOCK_FIELDS = ("hw", "cin", "cout", "mid", "expand", "kernel", "stride", "act", "attention", "inter")
_HEAD_FIELDS = ("hw", "cin", "mid", "cout")


def describe_device(device: "str | torch.device") -> str:
    """What a latency depends on besides the layer: the processor (and CPU threads)."""
    d = torch.device(device)
    if d.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(d)} (bf16, channels_last)"
    n = torch.get_num_threads()
    return f"{d.type}: {_cpu_name()}, {n} thread{'s' if n > 1 else ''}"


def _cpu_name() -> str:
    try:  # Linux names the model; platform.processor() is often empty there
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class LatencyTable:
    """Latency (ms) of Archs of `space` as sums of measured per-layer latencies, measured lazily.

    Each layer runs `warmup` times untimed, then `repeats` timed times on a random input of
    `batch_size` images; its latency is the median. `timer(module, input) -> ms` replaces that
    measurement (tests use a deterministic one)."""

    def __init__(self, space: SearchSpace, num_classes: int = 1000, batch_size: int = 1, warmup: int = 10,
                 repeats: int = 30, device: "str | torch.device" = "auto", timer: Timer | None = None):
        for name, v, low in (("batch_size", batch_size, 1), ("warmup", warmup, 0), ("repeats", repeats, 1)):
            require_int(f"latency {name}", v, low)
        self.space, self.num_classes = space, int(num_classes)
        self.batch_size, self.warmup, self.repeats = batch_size, warmup, repeats
        self.device = resolve_device(device)
        self.device_name = describe_device(self.device)
        self.timer = timer or self._median_ms
        self.entries: dict[str, float] = {}  # layer key -> ms
        self.measured = 0  # layers this object has measured (the others were loaded)
        s = space.spec
        self._const = {"stem": f"stride={s.stem_stride} act={s.stem_act}",
                       "block": f"gate={s.gate} shortcut={s.shortcut}",
                       "head": f"kind={s.head_kind} act={s.head_act} classes={self.num_classes}"}

    # ------------------------------------------------------------------ scoring
    def latency_indices(self, idx: np.ndarray) -> np.ndarray:
        """Estimated latency (ms) of each row of an (N, D) index matrix, float64 (N,)."""
        idx = np.asarray(idx, dtype=np.int64).reshape(-1, len(self.space.dims))
        if idx.size and ((idx < 0) | (idx >= self.space.cardinalities)).any():
            raise SupernasError(f"choice index out of range for space '{self.space.name}'")
        L = layout(self.space, idx)
        stem, blocks, head = _layer_rows(L)
        total = self._lookup("stem", stem) + self._lookup("head", head)
        per_block = np.zeros(L.active.shape)
        per_block[L.active] = self._lookup("block", blocks)
        return total + per_block.sum(axis=1)

    def latency(self, archs: Arch | Sequence[Arch]) -> float | np.ndarray:
        out = self.latency_indices(self.space.to_indices(archs))
        return float(out[0]) if isinstance(archs, Arch) else out

    def _lookup(self, kind: str, rows: np.ndarray) -> np.ndarray:
        """ms of each row of layer fields: distinct rows are keyed once, unseen keys measured."""
        if not len(rows):
            return np.zeros(0)
        uniq, inverse = _distinct_rows(rows)
        ms = np.empty(len(uniq))
        for i, values in enumerate(uniq.tolist()):
            key = self._key(kind, values)
            if key not in self.entries:
                self.entries[key] = float(self._measure(kind, values))
                self.measured += 1
            ms[i] = self.entries[key]
        return ms[inverse]

    def _key(self, kind: str, values: list[int]) -> str:
        names = {"stem": _STEM_FIELDS, "block": _BLOCK_FIELDS, "head": _HEAD_FIELDS}[kind]
        fields = " ".join(f"{n}={ACTIVATIONS[v] if n == 'act' else v}" for n, v in zip(names, values))
        return f"{kind} {fields} {self._const[kind]}"

    # ------------------------------------------------------------------ measuring
    def _measure(self, kind: str, values: list[int]) -> float:
        with torch.random.fork_rng(devices=[]):  # leave the caller's generator where it was
            torch.manual_seed(0)  # the same weights and input for a layer every time it is measured
            module, shape = self._layer(kind, values)
            x = torch.randn(self.batch_size, *shape).to(self.device)
        return self.timer(module.to(self.device).eval(), x)

    def _layer(self, kind: str, v: list[int]) -> tuple[nn.Module, tuple[int, int, int]]:
        """A freshly built layer, as `SuperNet.extract` builds it, and its input shape (C, H, W)."""
        s = self.space.spec
        if kind == "stem":
            hw, cout = v
            return static.ConvBNAct(3, cout, 3, s.stem_stride, act=s.stem_act), (3, hw, hw)
        if kind == "block":
            hw, cin, cout, mid, expand, kernel, stride, act, attention, inter = v
            return static.MBConv(cin, cout, mid, kernel, stride, ACTIVATIONS[act], bool(expand), attention, inter,
                                 s.gate, s.shortcut, hw), (cin, hw, hw)
        hw, cin, mid, cout = v
        head = static.Head(s.head_kind, cin, mid, cout, s.head_act)
        return nn.Sequential(head, nn.Linear(cout, self.num_classes)), (cin, hw, hw)

    def _median_ms(self, module: nn.Module, x: torch.Tensor) -> float:
        return statistics.median(time_forward(module, x, self.warmup, self.repeats))

    # ------------------------------------------------------------------ files
    def _header(self) -> dict:
        return {"format": FORMAT, "device": self.device_name, "batch_size": self.batch_size,
                "torch": torch.__version__, "warmup": self.warmup, "repeats": self.repeats,
                "space": self.space.name}

    def save(self, path: "str | Path") -> Path:
        """Write the measured layers with what they were measured on (atomically)."""
        data = {**self._header(), "entries": dict(sorted(self.entries.items()))}
        return atomic_write_text(Path(path).expanduser(), json.dumps(data, indent=1) + "\n")

    @classmethod
    def load(cls, path: "str | Path", space: SearchSpace, num_classes: int = 1000, batch_size: int = 1,
             warmup: int = 10, repeats: int = 30, device: "str | torch.device" = "auto",
             timer: Timer | None = None) -> "LatencyTable":
        """A table saved by `save`, refused unless measured on this device with this batch size;
        layers missing from it are measured with `warmup` and `repeats`."""
        table = cls(space, num_classes, batch_size, warmup, repeats, device, timer)
        p = Path(path).expanduser()
        try:
            data = json.loads(p.read_text())
        except (OSError, ValueError) as e:  # ValueError: not JSON, or not even text
            raise SupernasError(f"cannot read latency table '{p}' ({e}); delete it to measure afresh") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("entries"), dict):
            raise SupernasError(f"'{p}' is not a supernas latency table; delete it to measure afresh")
        mine = table._header()
        for k in ("device", "batch_size"):
            if data.get(k) != mine[k]:
                raise SupernasError(
                    f"latency table '{p}' was measured with {k} {data.get(k)!r} but this run has {mine[k]!r}; "
                    "latencies do not carry over: delete the file (or use another output directory) to measure "
                    "afresh here")
        if data.get("torch") != mine["torch"]:
            warnings.warn(f"latency table '{p}' was measured with torch {data.get('torch')}, this is "
                          f"{mine['torch']}; kernels may have changed speed", stacklevel=2)
        entries = {}
        for k, v in data["entries"].items():  # a negative latency would make a search report -11000 ms
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise SupernasError(f"latency table '{p}' holds {v!r} ms for layer {k}: a latency is a finite number "
                                    ">= 0; delete the file to measure afresh")
            entries[str(k)] = float(v)
        table.entries = entries
        return table


def _layer_rows(L: Layout) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Key fields of the stem (N, 2), of every active block (M, 10) and of the head (N, 4)."""
    stem = np.stack([L.resolution, L.stem_out], axis=1)
    stride = np.broadcast_to(L.stride, L.cin.shape)
    fields = (L.hw_in, L.cin, L.cout, L.mid, L.expand, L.kernel, stride, L.act, L.attention, L.inter)
    blocks = np.stack([np.asarray(f, dtype=np.int64)[L.active] for f in fields], axis=1)
    head = np.stack([L.head_hw, L.head_in, L.head_mid, L.head_out], axis=1)
    return stem.astype(np.int64), blocks, head.astype(np.int64)


def _distinct_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct rows in lexicographic order, position of each row among them).

    Each row is folded into one int64 (mixed radix over its columns' ranges): sorting those is
    many times faster than np.unique(axis=0) on rows. A code that could overflow is renumbered
    densely first, which keeps it exact and in order."""
    code = np.zeros(len(rows), dtype=np.int64)
    for col in rows.T:
        lo = int(col.min())
        span = int(col.max()) - lo + 1
        if (int(code.max()) + 1) * span >= 1 << 62:
            code = np.unique(code, return_inverse=True)[1].reshape(-1)
        code = code * span + (col - lo)
    _, first, inverse = np.unique(code, return_index=True, return_inverse=True)
    return rows[first], inverse.reshape(-1)


# ---------------------------------------------------------------------- checking the table
def measure_end_to_end(space: SearchSpace, archs: Sequence[Arch], num_classes: int = 1000, batch_size: int = 1,
                       warmup: int = 10, repeats: int = 30, device: str = "auto", seed: int = 0) -> np.ndarray:
    """Measured latency (ms, median) of each Arch extracted whole from a randomly initialised
    SuperNet: what the table estimates."""
    from ..nn import SuperNet

    dev = resolve_device(device)
    with torch.random.fork_rng(devices=[]):  # random weights without moving the caller's generator
        torch.manual_seed(seed)
        net = SuperNet(space, num_classes).eval()
    out = []
    for arch in archs:
        model = net.extract(arch)
        out.append(measure_latency(model, model.resolution, batch_size, warmup, repeats, str(dev))["median_ms"])
    return np.asarray(out, dtype=np.float64)


def compare_latency(table_ms: "Sequence[float] | np.ndarray",
                    measured_ms: "Sequence[float] | np.ndarray") -> dict[str, float]:
    """Agreement of estimated with measured latencies: Pearson r, Kendall tau, mean ratio."""
    from ..predictors.metrics import kendall_tau, pearson_r

    a = np.asarray(table_ms, dtype=np.float64).reshape(-1)
    b = np.asarray(measured_ms, dtype=np.float64).reshape(-1)
    if a.shape != b.shape or a.size < 2:
        raise SupernasError(f"compare_latency needs two equally long vectors of at least 2 latencies, "
                            f"got {a.size} and {b.size}")
    return {"n": int(a.size), "pearson_r": pearson_r(a, b), "kendall_tau": kendall_tau(a, b),
            "mean_ratio": float(np.mean(a / b))}
