"""Pareto fronts of accuracy against MFLOPs or measured latency: computing, saving (pareto.json /
.csv) and reading back (`read_results`, the search folders of a run), and the offline best/worst
sets for the stage-1 sampler (AttentiveNAS section 4.4, Appendix C). The plot is `plots.py`'s."""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence, TypeVar

import numpy as np

from ..errors import SupernasError
from ..sampling.flops_tables import bin_of
from ..spaces import Arch, CostModel, SearchSpace
from ..utils.file_names import PARETO
from ..utils.io import atomic_write_text

T = TypeVar("T")
# The costs an entry can be ranked and budgeted by: ParetoEntry field -> unit.
COSTS = {"mflops": "MFLOPs", "latency_ms": "ms"}
AXIS_LABELS = {"mflops": "MFLOPs", "latency_ms": "Latency (ms)"}


@dataclass
class ParetoEntry:
    """One evaluated Arch: its costs (measured latency when known), its (measured or predicted)
    accuracy and any extra metrics."""

    arch: Arch
    mflops: float
    params: float
    accuracy: float
    extra: dict[str, Any] = field(default_factory=dict)
    latency_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        lat = {} if self.latency_ms is None else {"latency_ms": float(self.latency_ms)}
        return {"arch": self.arch.to_dict(), "mflops": float(self.mflops), "params": int(self.params),
                **lat, "accuracy": float(self.accuracy), **self.extra}


def check_cost(cost: str) -> str:
    if cost not in COSTS:
        raise SupernasError(f"unknown cost '{cost}'; choose one of {', '.join(COSTS)}")
    return cost


def cost_of(e: ParetoEntry, cost: str) -> float:
    v = getattr(e, check_cost(cost))
    if v is None:
        raise SupernasError(f"a Pareto entry has no {cost}; search with that cost to rank by it")
    return float(v)


def _point(p: Any, cost: str = "mflops") -> tuple[float, float]:
    if isinstance(p, ParetoEntry):
        return cost_of(p, cost), float(p.accuracy)
    try:
        cost, acc = p
        return float(cost), float(acc)
    except (TypeError, ValueError):
        raise SupernasError("Pareto points must be ParetoEntry values or (cost, accuracy) pairs") from None


def pareto_indices(cost: "Sequence[float] | np.ndarray", accuracy: "Sequence[float] | np.ndarray") -> np.ndarray:
    """Indices of the non-dominated points (lower cost, higher accuracy), by increasing cost.

    Of points equal in both, the first is kept. NaN accuracies are never on the front.
    """
    c = np.asarray(cost, dtype=np.float64).reshape(-1)
    a = np.asarray(accuracy, dtype=np.float64).reshape(-1)
    if c.shape != a.shape:
        raise SupernasError(f"cost and accuracy differ in length ({c.size} vs {a.size})")
    # Cheapest first; among equal cost the most accurate, then the earliest (stable sort).
    order = np.lexsort((np.arange(c.size), -a, c))
    keep, best = [], -math.inf
    for i in order:
        if a[i] > best:  # strictly better than everything at lower or equal cost
            keep.append(i)
            best = a[i]
    return np.asarray(keep, dtype=np.int64)


def pareto_front(points: Sequence[T], cost: str = "mflops") -> list[T]:
    """The non-dominated items of `points` (ParetoEntry values, ranked by their `cost` field, or
    (cost, accuracy) pairs), by increasing cost."""
    pts = list(points)
    if not pts:
        return []
    xy = np.array([_point(p, cost) for p in pts])
    return [pts[i] for i in pareto_indices(xy[:, 0], xy[:, 1])]


# ---------------------------------------------------------------------- files
def write_pareto(run_dir: "str | Path", entries: Sequence[ParetoEntry], space: SearchSpace,
                 name: str = "pareto", meta: "Mapping[str, Any] | None" = None) -> tuple[Path, Path]:
    """`run_dir`/pareto.json (read back by `read_pareto_set`) and pareto.csv; returns both paths.

    `meta` adds top-level fields to the JSON (readers take "space" and "entries" only): the search
    writes where the scores came from ("score"), the run, its data, budgets and settings."""
    if not entries:
        raise SupernasError("there are no Pareto entries to write; evaluate some Archs first")
    run_dir = Path(run_dir).expanduser()
    rows = [e.to_dict() for e in sorted(entries, key=lambda e: e.mflops)]
    js = atomic_write_text(run_dir / f"{name}.json",
                           json.dumps({"space": space.name, **(meta or {}), "entries": rows}, indent=2) + "\n")
    extra_keys = sorted({k for e in entries for k in e.extra})
    lat = ["latency_ms"] if any(e.latency_ms is not None for e in entries) else []
    digits = mflops_decimals([r["mflops"] for r in rows])
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["mflops", "params", *lat, "accuracy", *extra_keys, "arch"])
    for r in rows:
        ms = [f"{r['latency_ms']:.4f}" if "latency_ms" in r else ""] if lat else []
        w.writerow([f"{r['mflops']:.{max(digits, 3)}f}", r["params"], *ms, f"{r['accuracy']:.4f}",
                    *(r.get(k, "") for k in extra_keys), json.dumps(r["arch"])])
    cs = atomic_write_text(run_dir / f"{name}.csv", buf.getvalue())
    return js, cs


def mflops_decimals(values: "Sequence[float] | np.ndarray", significant: int = 3, most: int = 6) -> int:
    """Decimals to print MFLOPs with: at least `significant` significant digits for the smallest and
    one decimal, more (up to `most`) until values that differ print differently."""
    v = np.unique(np.abs(np.asarray(values, dtype=np.float64)[np.isfinite(values)]))
    if v.size == 0:
        return 1
    smallest = v[v > 0].min() if (v > 0).any() else 1.0
    digits = int(min(most, max(1, significant - 1 - math.floor(math.log10(smallest)))))
    while digits < most and np.unique(np.round(v, digits)).size < v.size:
        digits += 1
    return digits


def format_table(entries: Sequence[ParetoEntry]) -> str:
    """A plain-text table of the entries by MFLOPs (with their latency when known), for the terminal;
    MFLOPs with as many decimals as it takes to tell the rows apart."""
    lat = any(e.latency_ms is not None for e in entries)
    d = mflops_decimals([e.mflops for e in entries])
    lines = [f"{'#':>3}  {'MFLOPs':>9}  {'Params(M)':>9}  " + (f"{'Lat(ms)':>9}  " if lat else "") + f"{'Acc(%)':>7}"]
    for i, e in enumerate(sorted(entries, key=lambda e: e.mflops)):
        ms = f"{e.latency_ms:>9.3f}  " if e.latency_ms is not None else f"{'-':>9}  "
        lines.append(f"{i:>3}  {e.mflops:>9.{d}f}  {e.params / 1e6:>9.3f}  " + (ms if lat else "")
                     + f"{e.accuracy:>7.2f}")
    return "\n".join(lines)


# ---------------------------------------------------------------------- offline sets
def offline_pareto_sets(space: SearchSpace, predictor: Any, cost: CostModel, n: int = 1_000_000,
                        bin_width: float = 25.0, seed: int = 0, chunk: int = 65536
                        ) -> tuple[list[ParetoEntry], list[ParetoEntry]]:
    """(best, worst): per FLOPs bin of `bin_width` MFLOPs, the Arch of highest and of lowest predicted
    accuracy among `n` uniformly sampled ones (BestUp / WorstUp sets). Bins are those of the FLOPs
    prior (`sampling.bin_of`: MFLOPs rounded to a multiple of the width), so the stage-1 sampler
    finds each bin it draws from the prior filled by that bin's best (worst) Arch. Sampled in
    chunks so a million Archs fit in memory; `predictor.predict` receives `space.encode` matrices."""
    if n < 1 or bin_width <= 0:
        raise SupernasError(f"offline Pareto sets need n >= 1 and bin_width > 0, got n={n}, bin_width={bin_width}")
    rng = np.random.default_rng(seed)
    best: dict[int, tuple[float, np.ndarray, float, float]] = {}
    worst: dict[int, tuple[float, np.ndarray, float, float]] = {}
    done = 0
    while done < n:
        m = min(chunk, n - done)
        idx = space.sample_indices(rng, m)
        mflops, params = cost.costs_indices(idx)
        acc = np.asarray(predictor.predict(space.encode_indices(idx)), dtype=np.float64).reshape(-1)
        bins = bin_of(mflops, bin_width)
        for b in np.unique(bins):
            rows = np.flatnonzero(bins == b)
            hi, lo = rows[np.argmax(acc[rows])], rows[np.argmin(acc[rows])]
            if b not in best or acc[hi] > best[b][0]:
                best[b] = (acc[hi], idx[hi].copy(), float(mflops[hi]), float(params[hi]))
            if b not in worst or acc[lo] < worst[b][0]:
                worst[b] = (acc[lo], idx[lo].copy(), float(mflops[lo]), float(params[lo]))
        done += m

    def entries(table):
        out = []
        for b in sorted(table):
            acc, row, mf, pa = table[b]
            out.append(ParetoEntry(space.from_indices(row[None])[0], mf, pa, float(acc), {"bin": int(b)}))
        return out

    return entries(best), entries(worst)


def read_results(search_dir: "str | Path", name: str = "pareto") -> dict[str, Any]:
    """A search's `name`.json: its fields, "entries" a list; one-line errors when missing or damaged."""
    path = Path(search_dir).expanduser() / f"{name}.json"
    if not path.is_file():
        raise SupernasError(f"no {name}.json in '{search_dir}'; run `supernas search RUN --budgets ...` first")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise SupernasError(f"{path} is not JSON; the file is damaged (search again with --out elsewhere)") from None
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list) or not all(
            isinstance(e, dict) and "mflops" in e and "accuracy" in e for e in data["entries"]):
        raise SupernasError(f"{path} has no list of entries with mflops and accuracy; is it a search result?")
    return data


def search_dirs(run_dir: "str | Path") -> list[Path]:
    """The search results of a run: RUN itself when it holds a pareto.json, and each folder directly
    in it that does (RUN/search, and any --out inside the run)."""
    run_dir = Path(run_dir).expanduser()
    found = [run_dir] if (run_dir / PARETO).is_file() else []
    if run_dir.is_dir():
        found += sorted(p for p in run_dir.iterdir() if p.is_dir() and (p / PARETO).is_file())
    return found
