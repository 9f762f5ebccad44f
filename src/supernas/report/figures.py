"""The report's interactive figures (plotly): the Pareto front of each search, the training curves
of metrics.jsonl, the FP-NAS distribution per block over the epochs, and the predictor's check."""
from __future__ import annotations

import json
import math
from typing import Any

from ..search.plots import score_label
from .collect import RunContents, Search

# metrics.jsonl fields that are bookkeeping, not curves
SKIP = {"step", "time", "epoch", "seconds", "arch_step"}
GREY, RED, GREEN, BLUE = "#9e9e9e", "#d62728", "#2ca02c", "#1f77b4"


def arch_key(arch: dict[str, Any]) -> str:
    """One string per Arch: how the page finds an Arch's choices and drawing."""
    return json.dumps(arch, sort_keys=True)


def arch_summary(arch: dict[str, Any], sep: str = "<br>") -> str:
    """An Arch's choices grouped by stage or block ("mb2: width 24, depth 3, kernel 5, expand 6")."""
    groups: dict[str, list[str]] = {}
    for k, v in arch.items():
        head, _, name = k.rpartition(".")
        groups.setdefault(head or k, []).append(f"{name} {v}" if head else str(v))
    return sep.join(f"{g}: {', '.join(vals)}" for g, vals in groups.items())


def cost_key(search: Search) -> str:
    """The cost the search's budgets bound: latency when its entries carry it, else MFLOPs."""
    entries = search.front["entries"]
    return "latency_ms" if search.front.get("cost") == "latency_ms" and all("latency_ms" in e for e in entries) \
        else "mflops"


def hover(e: dict[str, Any], accuracy_label: str) -> str:
    lat = f"<br>latency {e['latency_ms']:.3f} ms" if "latency_ms" in e else ""
    return (f"<b>{e['mflops']:.4g} MFLOPs</b>, {e['params'] / 1e6:.3g} M params{lat}<br>"
            f"{accuracy_label}: <b>{e['accuracy']:.2f}</b><br>" + arch_summary(e["arch"]))


def run_data(c: RunContents) -> str:
    """The run's data as its files describe it: the description a search or result recorded, or the
    config's data.path."""
    if c.searches and c.searches[0].front.get("data"):
        return f"data {c.searches[0].front['data']}"
    if c.result and c.result.get("data"):
        return f"data {c.result['data']}"
    if c.config and isinstance(c.config.get("data"), dict):
        return f"data {c.config['data'].get('path') or 'digits'}"
    return ""


def run_title(c: RunContents) -> str:
    data = run_data(c)
    return f"run {c.path.name}" + (f" \u00b7 {data}" if data else "")


def pareto_figure(c: RunContents, search: Search, exported: dict[str, Any] | None):
    """Accuracy against cost: every scored Arch in grey, the front in red, the budgets as dotted
    lines, the exported model as a star; `customdata` of each point is its Arch key (hover: its
    choices and costs; the page shows the drawing on click)."""
    import plotly.graph_objects as go

    cost = cost_key(search)
    label = score_label(search.front)
    xlabel = "latency (ms)" if cost == "latency_ms" else "MFLOPs"
    fig = go.Figure()
    front = sorted(search.front["entries"], key=lambda e: e[cost])
    # the front's Archs are left out of the grey cloud, and the front comes first with markers of at
    # most plotly's minimum hover radius (3 px): within that radius every point is at distance 0 and
    # the earliest trace takes the hover, so a grey neighbour never answers for the red point drawn
    # over it (zorder draws the front above)
    on_front = {arch_key(e["arch"]) for e in front}
    ev = [e for e in search.evaluated if arch_key(e["arch"]) not in on_front]
    fig.add_trace(go.Scatter(x=[e[cost] for e in front], y=[e["accuracy"] for e in front], mode="lines+markers",
                             name=f"Pareto front ({len(front)})", marker=dict(color=RED, size=6),
                             line=dict(color=RED), customdata=[arch_key(e["arch"]) for e in front],
                             hovertext=[hover(e, label) for e in front], hoverinfo="text", uid="front", zorder=2))
    fig.add_trace(go.Scatter(x=[e[cost] for e in ev], y=[e["accuracy"] for e in ev], mode="markers",
                             name=f"evaluated, not on the front ({len(ev)})",
                             marker=dict(color=GREY, size=5, opacity=0.6), customdata=[arch_key(e["arch"]) for e in ev],
                             hovertext=[hover(e, label) for e in ev], hoverinfo="text", uid="evaluated", zorder=0))
    if exported is not None:
        scored = next((e for e in search.evaluated if e["arch"] == exported["arch"]), None)
        if scored is not None:
            fig.add_trace(go.Scatter(x=[scored[cost]], y=[scored["accuracy"]], mode="markers", name="exported model",
                                     marker=dict(symbol="star", size=18, color=GREEN,
                                                 line=dict(color="black", width=1)),
                                     customdata=[arch_key(scored["arch"])], hovertext=[hover(scored, label)],
                                     hoverinfo="text", uid="exported", zorder=3))
        elif cost == "mflops":
            fig.add_vline(x=exported["mflops"], line=dict(color=GREEN, width=2),
                          annotation_text="exported (not scored by this search)")
    for b in search.front.get("budgets", []):
        fig.add_vline(x=b, line=dict(color=BLUE, dash="dot", width=1), annotation_text=f"budget {b:g}",
                      annotation_font_size=10)
    fig.update_layout(title=dict(text=f"{run_title(c)}<br><sup>{search.where}: {label}</sup>", font_size=15),
                      xaxis_title=xlabel, yaxis_title=label, hovermode="closest", height=520,
                      legend=dict(orientation="h", y=-0.18), margin=dict(t=80))
    return fig


def _panel_of(key: str) -> str:
    for word, panel in (("loss", "loss"), ("entropy", "entropy (nats)"), ("top1", "validation top-1 (%)"),
                        ("top5", "validation top-5 (%)"), ("mflops", "MFLOPs")):
        if word in key:
            return panel
    return key


def curves_figure(c: RunContents):
    """One panel per quantity of metrics.jsonl over the steps (losses together, validation
    accuracies together); None when there is nothing to draw."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    series: dict[str, dict[str, tuple[list, list]]] = {}
    for r in c.metrics:
        kind = r.get("kind", "train")
        for k, v in r.items():
            if k in SKIP or k == "kind" or isinstance(v, bool) or not isinstance(v, (int, float)) \
                    or not math.isfinite(v):
                continue
            name = k if kind == "train" or k.startswith(("top", "val")) else f"{kind} {k}"
            xs, ys = series.setdefault(_panel_of(k), {}).setdefault(name, ([], []))
            xs.append(r["step"])
            ys.append(v)
    if not series:
        return None
    order = sorted(series, key=lambda p: (p != "loss", not p.startswith("validation"), p))
    fig = make_subplots(rows=len(order), cols=1, shared_xaxes=True, subplot_titles=order, vertical_spacing=0.04)
    for i, panel in enumerate(order, 1):
        for name, (xs, ys) in series[panel].items():
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers" if len(xs) < 30 else "lines", name=name,
                                     legendgroup=panel,
                                     hovertemplate=f"{name}<br>step %{{x}}: %{{y:.4g}}<extra></extra>"),
                          row=i, col=1)
        if panel == "K":  # K counts Archs
            fig.update_yaxes(tickformat="d", dtick=1 if max(max(v[1]) for v in series[panel].values()) <= 12 else None,
                             row=i, col=1)
    fig.update_xaxes(title_text="step", row=len(order), col=1)
    val = {"fpnas": "validation loss: the search split (held out of train)",
           "parsec": "validation loss: the search split (held out of train)"}.get(c.kind, "validation: the val split")
    fig.update_layout(height=max(320, 230 * len(order)), title=dict(text=f"{run_title(c)}<br><sup>{val}</sup>"),
                      legend=dict(orientation="h", y=-0.05), margin=dict(t=80))
    return fig


def distribution_figure(c: RunContents):
    """FP-NAS: the probability of each choice per block (rows) and field (panels), one slider step per
    saved epoch (dist_epoch*.pt); None without snapshots or a readable space."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from ..spaces import get_space

    if not c.snapshots or c.space_definition is None:
        return None
    try:
        space = get_space(c.space_definition)
    except Exception:  # noqa: BLE001 - a space this version cannot build: no distribution panel
        return None
    fields: dict[str, list] = {}
    for d in space.dims:
        head, _, name = d.name.rpartition(".")
        fields.setdefault(name, []).append((head or d.name, d))
    names = list(fields)
    fig = make_subplots(rows=1, cols=len(names), shared_yaxes=True, subplot_titles=names, horizontal_spacing=0.02)

    def grid(snap, name):
        dims = fields[name]
        width = max(len(d.choices) for _, d in dims)
        z = [[snap["marginals"].get(d.name, [None] * width)[j] if j < len(d.choices) else None for j in range(width)]
             for _, d in dims]
        return z

    last = c.snapshots[-1]
    for i, name in enumerate(names, 1):
        dims = fields[name]
        width = max(len(d.choices) for _, d in dims)
        text = [[str(d.choices[j]) if j < len(d.choices) else "" for j in range(width)] for _, d in dims]
        fig.add_trace(go.Heatmap(z=grid(last, name), x=[f"#{j + 1}" for j in range(width)], y=[b for b, _ in dims],
                                 text=text, texttemplate="%{text}", zmin=0, zmax=1, colorscale="Blues",
                                 showscale=i == len(names), hovertemplate="%{y} " + name + " %{text}: p=%{z:.3f}"
                                 "<extra></extra>"), row=1, col=i)
    steps = [dict(method="restyle", label=str(s["epoch"]),
                  args=[{"z": [grid(s, n) for n in names]}, list(range(len(names)))]) for s in c.snapshots]
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(height=max(360, 22 * len(next(iter(fields.values()))) + 200),
                      title=f"{run_title(c)}<br><sup>probability of each choice per block (cell: the choice's value); "
                            "slider: after epoch</sup>",
                      sliders=[dict(active=len(steps) - 1, steps=steps, currentvalue=dict(prefix="epoch "),
                                    pad=dict(t=30))], margin=dict(t=90))
    return fig


def predictor_figure(c: RunContents, check: dict[str, Any]):
    """The predictor's check (predictor.eval.json): predicted against measured top-1 of Archs it was
    not fitted on."""
    import plotly.graph_objects as go

    rows = check.get("evaluations") or []
    if not rows:
        return None
    scored = check.get("scored") or {}
    where = f"{scored['split']} split ({scored['images']} images)" if "split" in scored else "data of the run"
    true = [r["top1"] for r in rows]
    pred = [r["predicted"] for r in rows]
    lo, hi = min(true + pred), max(true + pred)
    fig = go.Figure([go.Scatter(x=true, y=pred, mode="markers", name="Archs", marker=dict(color=BLUE, size=6),
                                hovertext=[arch_summary(r["arch"]) for r in rows], hoverinfo="text+x+y"),
                     go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="predicted = measured",
                                line=dict(color=GREY, dash="dash"))])
    fig.update_layout(title=f"{run_title(c)}<br><sup>predictor on {len(rows)} Archs it was not fitted on: Kendall "
                            f"tau {check['kendall_tau']:.3f}, Pearson r {check['pearson']:.3f}, MAE {check['mae']:.2f}"
                            "</sup>",
                      xaxis_title=f"measured top-1 (%): supernet on the {where}", yaxis_title="predicted top-1 (%)",
                      height=460)
    return fig


def figure_html(fig, div_id: str) -> str:
    """A figure as a <div> with its own script (plotly.js is inlined once in the page's head)."""
    import plotly.io as pio

    return pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=div_id,
                       config={"displaylogo": False, "responsive": True})
