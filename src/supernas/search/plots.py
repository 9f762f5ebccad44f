"""A search's front drawn (pareto.png): its pareto.json and evaluated.json with where their scores
came from, naming the run, its data, the budgets and the exported model (redrawn when one is exported)."""
from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence, cast

import numpy as np

from ..errors import SupernasError
from ..utils.file_names import ARCH, EVALUATED
from ..utils.io import atomic_write_bytes
from .pareto import AXIS_LABELS, ParetoEntry, check_cost, cost_of, read_results, search_dirs


@dataclass
class Marked:
    """A point to mark on a front plot (the exported model): its cost, its score when known."""

    cost: float
    accuracy: float | None
    label: str


def plot_pareto(entries: Sequence[ParetoEntry], path: "str | Path", title: str = "",
                extra_series: "Sequence[ParetoEntry] | tuple[Sequence[float], Sequence[float]] | None" = None,
                x: str = "mflops", ylabel: str = "Top-1 accuracy (%)", budgets: Sequence[float] = (),
                marked: Marked | None = None) -> Path:
    """PNG of accuracy against MFLOPs (as AttentiveNAS Figure 1) or, with x="latency_ms", against
    latency: the front as a line, and optionally every evaluated point (`extra_series`: entries or
    (cost, accuracy) arrays) in grey behind it, the budgets as dotted lines and a `marked` point
    (the exported model) as a star. `ylabel` says what the accuracy is (measured on which split,
    or predicted)."""
    check_cost(x)
    front = sorted(entries, key=lambda e: cost_of(e, x))
    xy_front = ([cost_of(e, x) for e in front], [e.accuracy for e in front])
    xy_all = None
    if extra_series is not None:
        pairs = isinstance(extra_series, tuple) and len(extra_series) == 2
        if pairs and not isinstance(extra_series[0], ParetoEntry):
            series = cast("tuple[Sequence[float], Sequence[float]]", extra_series)  # (cost, accuracy) arrays
            xy_all = (list(series[0]), list(series[1]))
        else:
            entries_all = cast("Sequence[ParetoEntry]", extra_series)  # not a pair of arrays: entries
            xy_all = ([cost_of(e, x) for e in entries_all], [e.accuracy for e in entries_all])
    return _draw_front(path, xy_front, xy_all, AXIS_LABELS[x], ylabel, title, budgets, marked)


def _draw_front(path: "str | Path", front: tuple[Sequence[float], Sequence[float]],
                evaluated: "tuple[Sequence[float], Sequence[float]] | None", xlabel: str, ylabel: str, title: str,
                budgets: Sequence[float], marked: Marked | None) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # no display on training machines
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=120)
    try:
        if evaluated is not None:
            ax.scatter(np.asarray(evaluated[0], float), np.asarray(evaluated[1], float), s=6, c="0.7",
                       label="evaluated", zorder=1)
        ax.plot(front[0], front[1], "o-", c="tab:red", ms=4, label="Pareto front", zorder=2)
        for i, b in enumerate(budgets):
            ax.axvline(b, c="tab:blue", ls=":", lw=1, zorder=0, label="budgets" if i == 0 else None)
        if marked is not None:
            if marked.accuracy is None:  # not scored by this search: its cost only
                ax.axvline(marked.cost, c="tab:green", lw=1.5, label=marked.label, zorder=3)
            else:
                ax.plot([marked.cost], [marked.accuracy], "*", c="tab:green", ms=14, mec="black",
                        label=marked.label, zorder=3)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if title:
            ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", bbox_inches="tight")
    finally:
        plt.close(fig)
    return atomic_write_bytes(Path(path).expanduser(), buf.getvalue())


def score_label(meta: Mapping[str, Any]) -> str:
    """What the accuracies of a pareto.json are, from its "score" record: 'predicted top-1 (%)' for
    a predictor's, the split and its size for the supernet's; 'top-1 (%)' for files without one."""
    score = meta.get("score") or {}
    if score.get("source") == "predictor":
        return "predicted top-1 (%)"
    if score.get("source") == "supernet":
        return f"top-1 (%) on the {score['split']} split ({score['images']} images)"
    return "top-1 (%)"


def exported_model(export_dir: "str | Path") -> dict[str, Any] | None:
    """The arch.json of an export directory, None when there is none or it is damaged."""
    path = Path(export_dir).expanduser() / ARCH
    try:
        meta = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return meta if isinstance(meta, dict) and "arch" in meta and "mflops" in meta else None


def search_title(front: Mapping[str, Any], search_dir: Path) -> str:
    """A plot title that tells two searches of one run apart: the run, the search's folder, where
    the scores came from, the strategy, its budgets and size, and the data."""
    run = front.get("run", search_dir.parent)
    source = f"{front['score']['source']}-scored " if isinstance(front.get("score"), Mapping) else ""
    where = f"run {Path(run).name}, " if run else "no run, "  # a predictor searched alone
    title = f"{where}{search_dir.name}/: {front.get('space', '?')}, {source}search"
    settings = cast("Mapping[str, Any]", front.get("search")) if isinstance(front.get("search"), Mapping) else {}
    unit = " ms" if front.get("cost") == "latency_ms" else " MFLOPs"
    shown = [f"{b:g}" for b in front.get("budgets", ()) if isinstance(b, (int, float))]
    budgets = ", ".join(shown[:6]) + (f", ... ({len(shown)} budgets)" if len(shown) > 6 else "")
    line = [settings.get("strategy", "")] + ([f"budgets {budgets}{unit}"] if budgets else [])
    if settings.get("strategy", "evolution") == "evolution" and "generations" in settings:
        g = settings["generations"]
        line.append(f"population {settings.get('population', '?')}, {g} generation{'' if g == 1 else 's'}")
    if any(line):
        title += "\n" + ", ".join(x for x in line if x)
    if front.get("data"):
        title += f"\ndata {front['data']}"
    return title


def plot_search_results(search_dir: "str | Path", export_dir: "str | Path | None" = None) -> Path:
    """`search_dir`/pareto.png from its pareto.json and evaluated.json: titled with the run and its
    data, the y axis saying where the scores came from, the budgets drawn, and the model exported
    to `export_dir` (when it has an arch.json) marked with its score from this search."""
    search_dir = Path(search_dir).expanduser()
    front = read_results(search_dir)
    cost = "latency_ms" if front.get("cost") == "latency_ms" else "mflops"
    if any(cost not in e for e in front["entries"]):
        cost = "mflops"
    evaluated = None
    if (search_dir / EVALUATED).is_file():
        ev = read_results(search_dir, "evaluated")["entries"]
        evaluated = ([e[cost] for e in ev], [e["accuracy"] for e in ev])
    else:
        ev = front["entries"]
    marked = None
    exported = exported_model(export_dir) if export_dir is not None else None
    if exported is not None:
        assert export_dir is not None  # exported is read only from a given export_dir
        scored = next((e for e in ev if e["arch"] == exported["arch"]), None)
        if scored is not None:
            marked = Marked(scored[cost], scored["accuracy"], f"exported: {Path(export_dir).name}")
        elif cost == "mflops":
            marked = Marked(exported["mflops"], None, f"exported: {Path(export_dir).name} (not scored here)")
    title = search_title(front, search_dir)
    ylabel = score_label(front)
    ylabel = ylabel[0].upper() + ylabel[1:]
    pts = sorted(front["entries"], key=lambda e: e[cost])
    return _draw_front(search_dir / "pareto.png", ([e[cost] for e in pts], [e["accuracy"] for e in pts]), evaluated,
                       AXIS_LABELS[cost], ylabel, title, front.get("budgets", ()), marked)


def mark_exported(run_dir: "str | Path", export_dir: "str | Path") -> list[Path]:
    """Redraw the front plots of the run's searches with the model just exported to `export_dir`
    marked; returns the plots redrawn (none when the run has no search, or it is damaged)."""
    drawn = []
    for d in search_dirs(run_dir):
        try:
            drawn.append(plot_search_results(d, export_dir))
        except SupernasError:
            continue  # a damaged search result stays as it is; `supernas report` says what is wrong
    return drawn
