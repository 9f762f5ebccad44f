"""The report as one HTML file: sections for what the run holds, plotly.js and the page's own
script inlined, so that it opens from disk or a mail attachment without a server or a network."""
from __future__ import annotations

import base64
import html
import io
import json
import time
from typing import Any, Iterable, Iterator

from ..search.pareto import mflops_decimals
from ..search.plots import score_label
from ..utils.file_names import CONFIG
from . import figures
from .collect import KINDS, RunContents, Search
from .commands import commands

MAX_DRAWINGS = 80  # Archs drawn per page: the fronts, the exported and the found models

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1200px;padding:0 20px 40px;
color:#222}
h1{margin:18px 0 4px}h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:34px}
.meta{color:#555;margin:2px 0}nav a{margin-right:14px}
.notes{background:#fff8e1;border:1px solid #f0c36d;padding:8px 14px;border-radius:4px}
.arch-view{border:1px solid #ddd;border-radius:4px;padding:10px;margin:8px 0;min-height:40px;background:#fafafa}
.arch-view img,.drawing{max-width:100%;height:auto}
table.sortable,table.plain{border-collapse:collapse;font-size:13px;width:100%}
table.plain th{text-align:left;background:#f0f0f0;padding:4px 6px}table.plain td{border-top:1px solid #eee;padding:3px 6px}
table.sortable th{cursor:pointer;background:#f0f0f0;position:sticky;top:0;text-align:left;padding:4px 6px}
table.sortable th:after{content:" \\2195";color:#999}
table.sortable td{border-top:1px solid #eee;padding:3px 6px;vertical-align:top}
table.sortable tr:hover td{background:#eef5ff}td.num{text-align:right;font-variant-numeric:tabular-nums}
.choices{font-size:11px;color:#444}.scroll{max-height:520px;overflow:auto;border:1px solid #ddd}
pre{background:#f6f8fa;padding:10px;overflow:auto;font-size:12px}code{font-size:13px}
.cmd{background:#f6f8fa;padding:6px 10px;margin:4px 0;font-family:monospace;white-space:pre-wrap;word-break:break-all}
"""

# Collects errors for anyone who looks (the tests read it), before any other script runs.
ERROR_HOOK = """window.reportErrors=[];window.addEventListener('error',function(e){window.reportErrors.push(String(
e.message));});"""

SCRIPT = """
(function(){
var data=JSON.parse(document.getElementById('report-data').textContent);
function show(view,key){
  var a=data.archs[key];var el=document.getElementById(view);if(!a||!el)return;
  el.innerHTML='';var h=document.createElement('div');h.innerHTML='<b>'+a.title+'</b><br><span class="choices">'+
  a.choices+'</span>';el.appendChild(h);
  if(a.png){var img=document.createElement('img');img.src='data:image/png;base64,'+a.png;img.alt='drawing';
  el.appendChild(img);}else{var p=document.createElement('p');p.textContent='(drawn for the Pareto front and the '+
  'exported models only)';el.appendChild(p);}
  el.setAttribute('data-shown',key);
}
window.reportShow=show;
document.querySelectorAll('.pareto').forEach(function(div){
  var plot=div.querySelector('.plotly-graph-div');var view=div.getAttribute('data-view');
  if(plot&&plot.on){plot.on('plotly_click',function(ev){if(ev.points.length)show(view,ev.points[0].customdata);});}
});
document.querySelectorAll('table.sortable').forEach(function(t){
  var view=t.getAttribute('data-view');
  t.querySelectorAll('tbody tr').forEach(function(r){r.addEventListener('click',function(){
    show(view,r.getAttribute('data-key'));});});
  t.querySelectorAll('th').forEach(function(th,i){th.addEventListener('click',function(){
    var body=t.tBodies[0],rows=Array.prototype.slice.call(body.rows),num=th.getAttribute('data-num')==='1';
    var dir=th.getAttribute('data-dir')==='asc'?-1:1;th.setAttribute('data-dir',dir===1?'asc':'desc');
    rows.sort(function(a,b){var x=a.cells[i].getAttribute('data-v'),y=b.cells[i].getAttribute('data-v');
      if(num){x=parseFloat(x);y=parseFloat(y);if(isNaN(x))x=-Infinity;if(isNaN(y))y=-Infinity;}
      return x<y?-dir:x>y?dir:0;});
    rows.forEach(function(r){body.appendChild(r);});});});
});
document.body.setAttribute('data-ready','1');
})();
"""


def _esc(v: Any) -> str:
    return html.escape(str(v), quote=True)


class Drawings:
    """Arch keys -> what the page shows on a click: a title, the choices and (up to MAX_DRAWINGS) a
    PNG drawing, made once per Arch."""

    def __init__(self, space_definition: Any):
        self.space = space_definition
        self.archs: dict[str, dict[str, Any]] = {}
        self.drawn = 0

    def add(self, entry: dict[str, Any], what: str, label: str, draw: bool) -> str:
        """`entry` (an Arch with its costs, and its score under `label` when it has one) as `what`
        ("Pareto front", "exported"); drawn when `draw` and there is room."""
        key = figures.arch_key(entry["arch"])
        have = self.archs.get(key)
        if have is None:
            have = self.archs[key] = {"title": _esc(f"{what}: {_entry_title(entry, label)}"), "png": None,
                                      "choices": figures.arch_summary({k: _esc(v) for k, v in entry["arch"].items()})}
        if draw and have["png"] is None and self.drawn < MAX_DRAWINGS and self.space is not None:
            have["png"] = self._png(entry)
            self.drawn += 1
        return key

    def _png(self, entry: dict[str, Any]) -> str | None:
        from ..fpnas.figures import _pyplot, arch_figure

        try:
            fig = arch_figure(self.space, entry["arch"], costs=(entry["mflops"], entry["params"]))
        except Exception:  # noqa: BLE001 - an Arch of a space this version cannot draw: choices only
            return None
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80)
        _pyplot().close(fig)
        return base64.b64encode(buf.getvalue()).decode("ascii")

    def img(self, key: str) -> str:
        png = self.archs.get(key, {}).get("png")
        return f'<img class="drawing" alt="drawing" src="data:image/png;base64,{png}">' if png else ""


def _entry_title(e: dict[str, Any], label: str) -> str:
    lat = f", {e['latency_ms']:.3f} ms" if "latency_ms" in e else ""
    acc = f", {label} {e['accuracy']:.2f}" if label and "accuracy" in e else ""
    return f"{e['mflops']:.4g} MFLOPs, {e['params'] / 1e6:.3g} M params{lat}{acc}"


def _table(search: Search, index: int, drawings: Drawings) -> str:
    rows = search.evaluated
    label = score_label(search.front)
    on_front = {figures.arch_key(e["arch"]) for e in search.front["entries"]}
    lat = any("latency_ms" in e for e in rows)
    d = mflops_decimals([e["mflops"] for e in rows])
    head = ["#", "MFLOPs", "params (M)", *(["latency (ms)"] if lat else []), label, "front", "choices"]
    nums = [True, True, True, *([True] if lat else []), True, False, False]
    out = [f'<div class="scroll"><table class="sortable" id="table-{index}" data-view="view-{index}"><thead><tr>'
           + "".join(f'<th data-num="{int(n)}">{_esc(h)}</th>' for h, n in zip(head, nums)) + "</tr></thead><tbody>"]
    for i, e in enumerate(sorted(rows, key=lambda e: e["mflops"])):
        key = drawings.add(e, "scored", label, draw=False)
        cells = [(i, str(i)), (e["mflops"], f"{e['mflops']:.{d}f}"), (e["params"], f"{e['params'] / 1e6:.3f}")]
        if lat:
            cells.append((e.get("latency_ms", ""), f"{e['latency_ms']:.3f}" if "latency_ms" in e else "-"))
        cells.append((e["accuracy"], f"{e['accuracy']:.2f}"))
        front = key in on_front
        cells.append((int(front), "\u2713" if front else ""))
        tds = "".join(f'<td class="num" data-v="{_esc(v)}">{_esc(t)}</td>' for v, t in cells)
        summary = figures.arch_summary(e["arch"], "; ")
        out.append(f'<tr data-key="{_esc(key)}">{tds}<td data-v="{_esc(summary)}" class="choices">{_esc(summary)}'
                   "</td></tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _section(anchor: str, title: str, body: Iterable[str]) -> str:
    return f'<section id="{anchor}"><h2>{_esc(title)}</h2>{"".join(body)}</section>'


def _kv(pairs: Iterable[tuple[str, Any]]) -> str:
    return "<table class='kv'>" + "".join(f"<tr><th style='text-align:left;padding-right:12px'>{_esc(k)}</th>"
                                          f"<td>{_esc(v)}</td></tr>" for k, v in pairs) + "</table>"


_Part = tuple[str, str, Iterable[str]]  # a section of the page: its anchor, title and body


def render(c: RunContents) -> str:
    """The whole page of a run's contents."""
    import plotly.offline

    from .. import __version__

    drawings = Drawings(c.space_definition)
    sections, nav = [], []
    for anchor, title, body in _parts(c, drawings):
        sections.append(_section(anchor, title, body))
        nav.append(f'<a href="#{anchor}">{_esc(title)}</a>')
    data = json.dumps({"archs": drawings.archs}).replace("</", "<\\/")
    kind = KINDS.get(c.kind, c.kind)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>supernas report: {_esc(c.path.name)}'
            f'</title><style>{STYLE}</style><script>{ERROR_HOOK}</script>'
            f'<script>{plotly.offline.get_plotlyjs()}</script></head>'
            f'<body data-kind="{_esc(c.kind)}"><h1>{_esc(kind)}: run {_esc(c.path.name)}</h1>'
            f'<p class="meta">{_esc(figures.run_data(c) or "data not recorded")}</p>'
            f'<p class="meta">{_esc(c.path)} \u00b7 report of {time.strftime("%Y-%m-%d %H:%M")} by '
            f'supernas {__version__}</p><nav>{"".join(nav)}</nav>{"".join(sections)}'
            f'<script type="application/json" id="report-data">{data}</script><script>{SCRIPT}</script></body></html>')


def _parts(c: RunContents, drawings: Drawings) -> Iterator[_Part]:
    """The page's sections in their order, each where the run holds what it shows. A generator: each
    section is made (its Archs added to `drawings`) in page order, before the next."""
    if c.notes:
        yield "notes", "What is missing", ['<div class="notes"><ul>' + "".join(f"<li>{_esc(n)}</li>" for n in c.notes)
                                           + "</ul></div>"]
    yield from _fronts(c, drawings)
    yield from _exports(c, drawings)
    if c.result is not None:
        yield "result", "Result (result.json)", [_result(c, drawings)]
    curves = figures.curves_figure(c)
    if curves is not None:
        yield "curves", "Training curves (metrics.jsonl)", [figures.figure_html(curves, "curves")]
    dist = figures.distribution_figure(c)
    if dist is not None:
        yield "distribution", "Distribution per block (dist_epoch*.pt)", [figures.figure_html(dist, "distribution")]
    if c.predictor is not None:
        yield "predictor", "Accuracy predictor", [_predictor(c)]
    for i, s in enumerate(c.searches):
        yield (f"table-{i}-section", f"Scored Archs: {s.where} ({len(s.evaluated)})",
               ['<p class="meta">Click a column to sort, a row to see the Arch above.</p>', _table(s, i, drawings)])
    cmds = commands(c)
    if cmds:
        yield "commands", "Commands that made it", [
            (f'<div class="cmd">{_esc(line)}</div><p class="meta">{_esc(what)}</p>' if line
             else f'<p class="meta">{_esc(what)}</p>') for line, what in cmds]
    if c.config_text:
        yield "config", CONFIG, [f"<details><summary>the run's resolved config</summary><pre>"
                                 f"{_esc(c.config_text)}</pre></details>"]


def _score_origin(front: dict[str, Any]) -> str:
    """Where the scores of a front (a pareto.json) come from, in words."""
    score = front.get("score", {})
    return {"predictor": f"scores predicted by {score.get('predictor')}",
            "supernet": f"scores measured with the supernet's weights on the {score.get('split')} split "
                        f"({score.get('images')} images, BN recalibrated on {score.get('bn_batches')} batches)"
            }.get(score.get("source"), "where the scores come from was not recorded")


def _fronts(c: RunContents, drawings: Drawings) -> Iterator[_Part]:
    """A section per search: its Pareto front (the main exported model marked), an Arch drawn on a click."""
    main_export = c.exports[0].meta if c.exports else None
    for i, s in enumerate(c.searches):
        label = score_label(s.front)
        for e in sorted(s.front["entries"], key=lambda e: e["mflops"]):
            drawings.add(e, "Pareto front", label, draw=True)
        fig = figures.pareto_figure(c, s, main_export)
        yield f"front-{i}", f"Pareto front: {s.where}", [
            f'<p class="meta">{_esc(_score_origin(s.front))}. Hover a point for its choices; click it for its drawing.</p>',
            f'<div class="pareto" data-view="view-{i}">{figures.figure_html(fig, f"pareto-{i}")}</div>',
            f'<div class="arch-view" id="view-{i}">Click a point or a table row to see its Arch.</div>']


def _exports(c: RunContents, drawings: Drawings) -> Iterator[_Part]:
    """A section per exported model: its folder, files, costs and input, and its drawing."""
    for e in c.exports:
        m = e.meta
        key = drawings.add(m, f"exported {e.path.name}/", "", draw=True)
        yield f"export-{e.path.name}", f"Exported model: {e.path.name}/", [
            _kv([("folder", e.path), ("files", ", ".join(e.files) or "none"), ("MFLOPs", f"{m['mflops']:.4g}"),
                 ("parameters", f"{m['params'] / 1e6:.3g} M"), ("input", f"{m.get('resolution')} px"),
                 ("classes", m.get("num_classes")), ("space", m.get("space"))]),
            drawings.img(key), f'<p class="choices">{figures.arch_summary(m["arch"], "; ")}</p>']


def _result(c: RunContents, drawings: Drawings) -> str:
    r = c.result or {}
    if "most_likely" in r:  # FP-NAS / PARSEC
        top = r.get("top", [])
        rows = "".join(f"<tr><td>{i}</td><td class='num'>{t['mflops']:.4g}</td><td class='num'>"
                       f"{t['params'] / 1e6:.3g}</td><td class='num'>{t.get('log_prob', float('nan')):.3f}</td>"
                       f"<td class='choices'>{_esc(figures.arch_summary(t['arch'], '; '))}</td></tr>"
                       for i, t in enumerate(top))
        key = drawings.add(r["most_likely"], "most likely Arch", "", draw=True)
        return (_kv([("mode", r.get("mode")), ("distribution", r.get("distribution")), ("steps", r.get("steps")),
                     ("Archs sampled", r.get("samples_total")), ("search time", f"{r.get('search_seconds', 0):.0f} s"),
                     ("entropy", f"{r.get('entropy', float('nan')):.3f} of {r.get('max_entropy', float('nan')):.3f}"),
                     ("expected MFLOPs", f"{r.get('expected_mflops', float('nan')):.4g}")])
                + "<h3>Most likely Arch</h3>" + drawings.img(key)
                + "<h3>Most likely Archs (top-N)</h3><table class='plain'><thead><tr><th>#</th><th>MFLOPs</th>"
                  "<th>params (M)</th><th>log p</th><th>choices</th></tr></thead><tbody>" + rows + "</tbody></table>")
    pairs = [(k, f"{v:.2f}" if isinstance(v, float) else v) for k, v in r.items()
             if not isinstance(v, (dict, list)) and v is not None]
    return _kv(pairs)


def _predictor(c: RunContents) -> str:
    p = c.predictor or {}
    parts = [_kv([("file", p.get("path"))])]
    fit, check = p.get("fit"), p.get("eval")
    if fit:
        tau = fit.get("kendall_tau")
        parts.append(f"<p>Fitted on {fit['archs']} Archs; Kendall tau on the {fit['holdout']:.0%} held out: "
                     f"<b>{tau:.3f}</b></p>" if tau is not None else
                     f"<p>Fitted on {fit['archs']} Archs, none held out: no Kendall tau.</p>")
    if check:
        parts.append(f"<p>On {check['archs']} Archs it was not fitted on: Kendall tau "
                     f"<b>{check['kendall_tau']:.3f}</b>, "
                     f"Pearson r {check['pearson']:.3f}, mean absolute error {check['mae']:.2f} top-1 points.</p>")
        fig = figures.predictor_figure(c, check)
        if fig is not None:
            parts.append(figures.figure_html(fig, "predictor-check"))
    if not fit and not check:
        parts.append("<p>No record of its Kendall tau (fitted before supernas kept one): "
                     f"<code>supernas predictor eval {_esc(c.path)}</code> measures it.</p>")
    return "".join(parts)
