"""Measured latency as a search cost: a lookup table of per-layer latencies on the current device.

The latency of an Arch is estimated as the sum of the measured latencies of its layers (stem,
each active block, head with classifier), each layer keyed by its exact configuration (input
size, channels, kernel, stride, expansion, attention, activation, shortcut...). Layers recur
across Archs, so a space has few distinct ones (a few hundred for `attentivenas`): each is
built with the classes of `nn/static.py` that `SuperNet.extract` uses, timed once, and cached.
Scoring then costs a `layout` and a few gathers, fast enough to constrain an evolutionary search.

    table = LatencyTable(space, num_classes=10, batch_size=1)
    ms = table.latency_indices(idx)          # measures the layers it has not seen yet
    table.save("latency_table.json")         # LatencyTable(space, 10).load(...) reuses it on the same device

`measure_end_to_end` times whole extracted models, and `compare_latency` reports how well the
table agrees with them.

On a shared CPU a single timing is at the mercy of other processes, so `build` measures many layers
in interleaved rounds (one run of each layer per round: a burst of other work hits every layer alike
instead of all runs of one), and every latency is the fastest of its runs (other work only ever adds
time). A sum of layers misses what a whole model adds (the Python between layers, cache
misses, allocations): `calibrate` fits `scale * sum + offset` against a few end-to-end measurements
and reports, leave-one-out, how well the table then agrees with them. `build_latency_table` does
all of it: a few whole models run in the rounds of every chunk of layers, which puts chunks timed
while the machine ran faster or slower on one footing, and on their own in rounds before and after
the layers, as a deployed model runs, which the fit targets (timed among hundreds of layers, the
same models read 2-27 % slower than on their own, on a 2-core VM).
"""
from __future__ import annotations

import json
import math
import platform
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import SupernasError, require_int
from ..nn import static
from ..runtime.distributed import resolve_device
from ..spaces import Arch, SearchSpace
from ..spaces.layout import Layout, layout
from ..spaces.spec import ACTIVATIONS
from ..utils.io import atomic_write_text
from .static_models import time_forward

Timer = Callable[[nn.Module, torch.Tensor], float]
Sampler = Callable[[nn.Module, torch.Tensor], float]  # one timed run (ms), for interleaved rounds
FORMAT = 1
QUANTILE = 0.0  # the statistic of a layer's (and a model's) interleaved runs: the fastest (robust_ms)
# The least time over which the runs of one set of interleaved rounds are spread. A shared VM runs
# at its full speed only in brief spells, every few seconds: over a 4 s window the fastest runs of
# 30 Archs averaged up to 34 % more in one window than in another, over 8 s at most 3.4 %, over 15 s
# 1.8 % (a 2-core VM, 60 s of rounds cut into windows).
WINDOW_S = 10.0
CHUNK_BYTES = 256 << 20  # weights and inputs of the layers held at once while measured in interleaved rounds


def robust_ms(samples: Sequence[float]) -> float:
    """The QUANTILE of timed runs (ms): near the undisturbed time, unlike a mean or a median that
    other processes inflate. Of interleaved runs on a shared 2-core VM, whose speed dips for
    seconds at a time, the fastest was the steadiest: the 30 Archs of bench/latency_table.py,
    measured four times in a row, averaged 1.76-1.85 ms by it and 1.81-2.05 ms by the 10th
    percentile."""
    return float(np.quantile(np.asarray(samples, dtype=np.float64), QUANTILE))


def one_run_ms(module: nn.Module, x: torch.Tensor) -> float:
    """One timed forward pass (ms) of `module` on `x`, on its device."""
    return time_forward(module, x, warmup=0, repeats=1)[0]


def interleaved_runs(pairs: Sequence[tuple[nn.Module, torch.Tensor]], warmup: int, repeats: int,
                     sampler: Sampler = one_run_ms, window_s: float = 0.0) -> list[list[float]]:
    """Timed runs (ms) of each (module, input), one of each per round, after `warmup` untimed runs
    each: a burst of other work then hits every module alike instead of all runs of one. At least
    `repeats` rounds, and more until the timed runs add up to `window_s` seconds (see WINDOW_S)."""
    runs: list[list[float]] = [[] for _ in pairs]
    timed_ms, rounds = 0.0, 0
    with torch.no_grad():
        for module, x in pairs:
            for _ in range(warmup):
                module(x)
        while rounds < repeats or timed_ms < 1e3 * window_s:
            for samples, (module, x) in zip(runs, pairs):
                samples.append(float(sampler(module, x)))
                timed_ms += samples[-1]
            rounds += 1
    return runs


def _chunks(items: list, prepare: Callable) -> Iterator[list]:
    """(item[0], prepare(item)) for each item, in lists whose modules and inputs hold at most
    about CHUNK_BYTES: a chunk's layers are built only when it is measured."""
    chunk, size = [], 0
    for item in items:
        module, x = pair = prepare(item)
        chunk.append((item[0], pair))
        size += x.nbytes + sum(t.nbytes for t in (*module.parameters(), *module.buffers()))
        if size >= CHUNK_BYTES:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


MIN_LINEAR_FIT = 6  # Archs below which only an offset is fitted: a free scale from 3 noisy points swings wildly


def fit_overhead(sums: np.ndarray, measured: np.ndarray) -> tuple[float, float]:
    """(scale, offset) of `measured ~ scale * sums + offset`, least squares with scale > 0 and
    offset >= 0, so that no Arch is estimated at less than nothing (a negative offset made the
    smallest Archs cost below 0 ms where whole models ran faster than their layers timed alone).
    With fewer than MIN_LINEAR_FIT Archs or equal sums, one parameter: the mean difference as
    offset, or, where that is negative, the mean ratio as scale."""
    sums, measured = np.asarray(sums, dtype=np.float64), np.asarray(measured, dtype=np.float64)
    if len(sums) >= MIN_LINEAR_FIT and np.ptp(sums) > 0:
        scale, offset = np.polyfit(sums, measured, 1)
        if np.isfinite(scale) and np.isfinite(offset) and scale > 0 and offset >= 0:
            return float(scale), float(offset)
        through_origin = float(sums @ measured / (sums @ sums))  # the best fit on the boundary offset = 0
        if np.isfinite(through_origin) and through_origin > 0:
            return through_origin, 0.0
    difference = float(np.mean(measured - sums))
    if difference >= 0 or not (sums > 0).all():
        return 1.0, max(difference, 0.0)
    return float(np.mean(measured / sums)), 0.0


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
    `batch_size` images; its latency is the fastest of them (`robust_ms`). `build` measures the
    layers of many Archs at once in interleaved rounds spread over at least `window_s` seconds of
    runs, timing each run with `sampler` (one run, ms); layers met later are measured alone with
    `timer`. `timer(module, input) -> ms` and `sampler` replace the clock (tests use deterministic
    ones, with `window_s=0`). After `calibrate`, an Arch's
    latency is `scale * (sum of its layers) + offset`."""

    def __init__(self, space: SearchSpace, num_classes: int = 1000, batch_size: int = 1, warmup: int = 10,
                 repeats: int = 30, device: "str | torch.device" = "auto", timer: Timer | None = None,
                 sampler: Sampler | None = None, window_s: float = WINDOW_S):
        for name, v, low in (("batch_size", batch_size, 1), ("warmup", warmup, 0), ("repeats", repeats, 1)):
            require_int(f"latency {name}", v, low)
        self.space, self.num_classes = space, int(num_classes)
        self.batch_size, self.warmup, self.repeats, self.window_s = batch_size, warmup, repeats, float(window_s)
        self.device = resolve_device(device)
        self.device_name = describe_device(self.device)
        self.timer = timer or self._robust_ms
        self.sampler = sampler or one_run_ms
        self.entries: dict[str, float] = {}  # layer key -> ms
        self.scale, self.offset = 1.0, 0.0  # the per-Arch overhead a sum of layers misses (calibrate)
        self.fit: dict | None = None  # what calibrate fitted on, and how well the table then agreed
        self.measured = 0  # layers this object has measured (the others were loaded)
        s = space.spec
        self._const = {"stem": f"stride={s.stem_stride} act={s.stem_act}",
                       "block": f"gate={s.gate} shortcut={s.shortcut}",
                       "head": f"kind={s.head_kind} act={s.head_act} classes={self.num_classes}"}

    # ------------------------------------------------------------------ scoring
    def latency_indices(self, idx: np.ndarray) -> np.ndarray:
        """Estimated latency (ms) of each row of an (N, D) index matrix, float64 (N,): the sum of
        its layers, with the fitted overhead after `calibrate`."""
        return self.scale * self.layer_sums(idx) + self.offset

    def layer_sums(self, idx: np.ndarray) -> np.ndarray:
        """The sum of the measured latencies (ms) of each row's layers, float64 (N,)."""
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
        return self.timer(*self._prepared(kind, values))

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

    def _robust_ms(self, module: nn.Module, x: torch.Tensor) -> float:
        return robust_ms(time_forward(module, x, self.warmup, self.repeats))

    def build(self, idx: np.ndarray, check: Sequence[tuple[nn.Module, torch.Tensor]] = ()) -> np.ndarray:
        """Measure the layers of the Archs of `idx` not in the table yet, in interleaved rounds:
        each layer warmed up, then `repeats` rounds of one run of every layer, each layer's latency
        the fastest of its runs. The layers go in a shuffled order, in chunks of at most
        CHUNK_BYTES of weights and inputs held at once.

        `check` (whole models and their inputs) run in the same rounds as the layers of every chunk:
        the fit of `calibrate` then relates layers and models timed under the same conditions, and
        a chunk whose check models ran slower or faster than on average (the machine's speed drifted)
        has its layers put back on the common footing. Returns the end-to-end latency (ms) of each
        check model."""
        idx = np.asarray(idx, dtype=np.int64).reshape(-1, len(self.space.dims))
        stem, blocks, head = _layer_rows(layout(self.space, idx))
        todo: dict[str, tuple[str, list[int]]] = {}
        for kind, rows in (("stem", stem), ("block", blocks), ("head", head)):
            for values in (_distinct_rows(rows)[0].tolist() if len(rows) else []):
                key = self._key(kind, values)
                if key not in self.entries:
                    todo[key] = (kind, values)
        # shuffled: layers of one kind and resolution would otherwise share one chunk and its drift
        pending = list(todo.items())
        items = [pending[i] for i in np.random.default_rng(0).permutation(len(pending))]
        per_chunk: list[tuple[list[str], list[list[float]], list[list[float]]]] = []
        for chunk in _chunks(items, lambda item: self._prepared(*item[1])) if items else [[]]:
            runs = interleaved_runs([pair for _, pair in chunk] + list(check), self.warmup, self.repeats,
                                    self.sampler, self.window_s)
            per_chunk.append(([key for key, _ in chunk], runs[:len(chunk)], runs[len(chunk):]))
        check_ms = np.asarray([robust_ms([t for _, _, c in per_chunk for t in c[i]]) for i in range(len(check))])
        for keys, layer_runs, check_runs in per_chunk:
            drift = 1.0
            if len(check) and len(per_chunk) > 1:  # this chunk's check models against all their runs
                drift = float(np.median([robust_ms(r) / m for r, m in zip(check_runs, check_ms)]))
            for key, samples in zip(keys, layer_runs):
                self.entries[key] = robust_ms(samples) / drift
        self.measured += len(items)
        return check_ms

    def _prepared(self, kind: str, values: list[int]) -> tuple[nn.Module, torch.Tensor]:
        """The layer on the table's device in eval mode, and a random input for it."""
        with torch.random.fork_rng(devices=[]):  # leave the caller's generator where it was
            torch.manual_seed(0)  # the same weights and input for a layer every time it is measured
            module, shape = self._layer(kind, values)
            x = torch.randn(self.batch_size, *shape).to(self.device)
        return module.to(self.device).eval(), x

    def calibrate(self, idx: np.ndarray, measured_ms: "Sequence[float] | np.ndarray") -> dict:
        """Fit the per-Arch overhead (`scale`, `offset`) that the sum of layers misses against the
        end-to-end latencies `measured_ms` of the Archs of `idx`; returns (and keeps in `fit`) how
        well the table agrees with them, each Arch estimated by a fit without it (leave-one-out)."""
        sums = self.layer_sums(idx)
        measured = np.asarray(measured_ms, dtype=np.float64).reshape(-1)
        if len(measured) != len(sums) or len(sums) < 2:
            raise SupernasError(f"calibrate needs the end-to-end latency of each of at least 2 Archs, got "
                                f"{len(measured)} for {len(sums)}")
        loo = np.empty(len(sums))
        for i in range(len(sums)):
            keep = np.arange(len(sums)) != i
            scale, offset = fit_overhead(sums[keep], measured[keep])
            loo[i] = scale * sums[i] + offset
        self.scale, self.offset = fit_overhead(sums, measured)
        agreement = compare_latency(loo, measured)
        self.fit = {"archs": len(sums), "scale": self.scale, "offset": self.offset,
                    "kendall_tau": agreement["kendall_tau"], "mean_ratio": agreement["mean_ratio"],
                    "layers_only_mean_ratio": float(np.mean(sums / measured))}
        return self.fit

    def describe_fit(self) -> str:
        """One line: how well the table agrees with end-to-end measurement, and the fit."""
        if self.fit is None:
            return "latency table: sums of layers, not calibrated against end-to-end measurement"
        f = self.fit
        return (f"latency table against end to end on {f['archs']} Archs (each estimated without it): Kendall tau "
                f"{f['kendall_tau']:.2f}, mean ratio {f['mean_ratio']:.2f} (layers alone: "
                f"{f['layers_only_mean_ratio']:.2f}); estimate = {f['scale']:.3f} x layers + {f['offset']:.3f} ms")

    # ------------------------------------------------------------------ files
    def _header(self) -> dict:
        return {"format": FORMAT, "device": self.device_name, "batch_size": self.batch_size,
                "torch": torch.__version__, "warmup": self.warmup, "repeats": self.repeats, "window_s": self.window_s,
                "space": self.space.name, "statistic": f"quantile {QUANTILE}",
                **({"fit": self.fit} if self.fit is not None else {})}

    def save(self, path: "str | Path") -> Path:
        """Write the measured layers with what they were measured on (atomically)."""
        data = {**self._header(), "entries": dict(sorted(self.entries.items()))}
        return atomic_write_text(Path(path).expanduser(), json.dumps(data, indent=1) + "\n")

    def load(self, path: "str | Path") -> "LatencyTable":
        """This table, its layers and fit read from a file written by `save`: refused unless measured
        on this table's device with its batch size (and then left as it was); layers missing from it
        are measured with this table's settings."""
        p = Path(path).expanduser()
        try:
            data = json.loads(p.read_text())
        except (OSError, ValueError) as e:  # ValueError: not JSON, or not even text
            raise SupernasError(f"cannot read latency table '{p}' ({e}); delete it to measure afresh") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("entries"), dict):
            raise SupernasError(f"'{p}' is not a supernas latency table; delete it to measure afresh")
        mine = self._header()
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
        scale: Any = 1.0  # numbers read from the file, checked below; no fit: sums of layers
        offset: Any = 0.0
        fit = data.get("fit")
        if fit is not None:
            scale, offset = (fit.get(k) if isinstance(fit, dict) else None for k in ("scale", "offset"))
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                       for v in (scale, offset)) or scale <= 0 or offset < 0:
                raise SupernasError(f"latency table '{p}' holds a fit that is not a positive scale and a finite "
                                    "offset >= 0; delete the file to measure afresh")
        self.entries, self.scale, self.offset, self.fit = entries, float(scale), float(offset), fit
        return self


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
                       warmup: int = 10, repeats: int = 30, device: str = "auto", seed: int = 0,
                       sampler: Sampler | None = None, window_s: float = WINDOW_S) -> np.ndarray:
    """Measured latency (ms) of each Arch extracted whole from a randomly initialised SuperNet:
    what the table estimates. Measured as the table measures layers: in interleaved rounds (one run
    of each model per round, after `warmup` each), the fastest of each model's runs."""
    pairs = _extracted(space, archs, num_classes, batch_size, resolve_device(device), seed)
    runs = interleaved_runs(pairs, warmup, repeats, sampler or one_run_ms, window_s)
    return np.asarray([robust_ms(r) for r in runs], dtype=np.float64)


def _extracted(space: SearchSpace, archs: Sequence[Arch], num_classes: int, batch_size: int, device: torch.device,
               seed: int) -> list[tuple[nn.Module, torch.Tensor]]:
    """Each Arch extracted from a SuperNet initialised with `seed`, on `device` in eval mode, and a
    random input for it, without moving the caller's generator."""
    from ..nn import SuperNet

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = SuperNet(space, num_classes).eval()
        pairs: list[tuple[nn.Module, torch.Tensor]] = []
        for arch in archs:
            model = net.extract(arch).to(device).eval()
            pairs.append((model, torch.randn(batch_size, 3, model.resolution, model.resolution).to(device)))
    return pairs


def build_latency_table(table: LatencyTable, seed: int = 0, build_archs: int = 200,
                        check_archs: int = 8) -> LatencyTable:
    """`table` (its space, device and timing settings) made ready for searching its space: the
    layers of `build_archs` random Archs (and of the smallest and largest) measured in interleaved
    rounds together with `check_archs` Archs (the smallest, the largest and random ones) extracted
    whole, then calibrated against those Archs timed on their own before and after the layers (the
    fastest of both sets of rounds: a drift of the machine's speed between them counts once);
    `describe_fit()` says how well it agrees."""
    space, runs = table.space, (table.warmup, table.repeats, table.sampler, table.window_s)
    ends = space.to_indices([space.smallest(), space.largest()])
    check = np.concatenate([ends, space.sample_indices(seed + 1, max(check_archs - 2, 1))])
    models = _extracted(space, space.from_indices(check), table.num_classes, table.batch_size, table.device, seed)
    before = interleaved_runs(models, *runs)
    table.build(np.concatenate([ends, space.sample_indices(seed, build_archs), check]), models)
    after = interleaved_runs(models, *runs)
    table.calibrate(check, [robust_ms(a + b) for a, b in zip(before, after)])
    return table


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
