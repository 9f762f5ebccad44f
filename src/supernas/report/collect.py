"""What a run directory holds, read for the report: each file once, forgivingly. A missing or
damaged file becomes a note that the report shows; only a path that is no run at all is an error."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import run_kind
from ..errors import SupernasError
from ..predictors import run_predictor_path
from ..runtime.logging import last_per_step, read_metric_records
from ..search.pareto import read_results, search_dirs
from ..search.plots import exported_model
from ..utils.file_names import CHECKPOINT, CONFIG, METRICS, PARETO, RESULT, WEIGHTS
from ..utils.structured import UniqueKeyLoader

# config keys that tell the commands apart (their DEFAULTS): FP-NAS has search.mode, a standalone
# run arch and init, a supernet the sampler
KINDS = {"fpnas": "FP-NAS search", "parsec": "PARSEC search", "retrain": "retrain", "finetune": "finetune",
         "supernet": "supernet", "search": "search results"}
RUN_FILES = (CONFIG, METRICS, RESULT, PARETO, CHECKPOINT)


@dataclass
class Search:
    """One search folder: its pareto.json (fields and entries) and every scored Arch."""

    path: Path
    front: dict[str, Any]
    evaluated: list[dict[str, Any]]
    where: str  # how the page names it: "search/", or "./" when the report is of the folder itself


@dataclass
class Export:
    """An export folder: its arch.json and the model files beside it."""

    path: Path
    meta: dict[str, Any]
    files: list[str]


@dataclass
class RunContents:
    path: Path
    kind: str
    config: dict[str, Any] | None = None
    config_text: str = ""
    metrics: list[dict[str, Any]] = field(default_factory=list)
    result: dict[str, Any] | None = None
    searches: list[Search] = field(default_factory=list)
    predictor: dict[str, Any] | None = None  # {"path", "fit": fit.json or None, "eval": eval.json or None}
    exports: list[Export] = field(default_factory=list)
    snapshots: list[dict[str, Any]] = field(default_factory=list)  # FP-NAS dist_epoch*.pt, by epoch
    notes: list[str] = field(default_factory=list)  # what is missing or damaged

    @property
    def space_definition(self) -> Any:
        """The run's space: a built-in name or a definition, from whichever file names it."""
        for src in (self.result, *(e.meta for e in self.exports), *(s.front for s in self.searches)):
            if src and src.get("space_definition"):
                return src["space_definition"]
        if self.config and self.config.get("space"):
            return self.config["space"]
        return next((s.front["space"] for s in self.searches if s.front.get("space")), None)


def _json(path: Path, notes: list[str], what: str) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deeply
        notes.append(f"{path.name} is damaged (not JSON): {what} not shown")
        return None


def read_metrics_lines(path: Path, notes: list[str]) -> list[dict[str, Any]]:
    """Records of a metrics.jsonl, the last of each (kind, step) as a resumed run logs some steps
    twice; damaged lines (a crash mid-write) are skipped and noted."""
    if not path.is_file():
        notes.append("no metrics.jsonl: no training curves (an imported supernet has none)")
        return []
    records, bad = read_metric_records(path)
    if bad:
        notes.append(f"metrics.jsonl: {len(bad)} damaged line(s) skipped (line {', '.join(map(str, bad[:5]))}"
                     + (", ..." if len(bad) > 5 else "") + ")")
    if not records and not bad:
        notes.append("metrics.jsonl is empty: no training curves")
    return last_per_step(r for _, r in records)


def _kind(config: dict[str, Any] | None, result: dict[str, Any] | None, searches: list[Search]) -> str | None:
    kind = run_kind(config) if config is not None else None
    if kind is not None:
        return kind
    if result is not None:
        if "mode" in result:
            return result["mode"]
        if "top1" in result:
            return "retrain"
    return "search" if searches else None


def _searches(run: Path, notes: list[str]) -> list[Search]:
    out = []
    for d in search_dirs(run):
        name = "./" if d == run else f"{d.name}/"
        try:
            front = read_results(d)
        except SupernasError as e:
            notes.append(f"{name}: {e}; its front is not shown")
            continue
        try:
            evaluated = read_results(d, "evaluated")["entries"]
        except SupernasError as e:
            notes.append(f"{name}: {e}; the table shows the front only")
            evaluated = front["entries"]
        if "score" not in front:
            notes.append(f"{name}: its pareto.json predates score records; where its accuracies were "
                         "measured is not known")
        out.append(Search(d, front, evaluated, name))
    return out


def _exports(run: Path) -> list[Export]:
    found = []
    for d in [run / "export", *sorted(p for p in run.iterdir() if p.is_dir() and p.name != "export")]:
        meta = exported_model(d)
        if meta is not None:
            files = sorted(f.name for f in d.iterdir() if f.is_file() and (f.name.startswith("model")
                                                                             or f.name == WEIGHTS))
            found.append(Export(d, meta, files))
    return found


def _snapshots(run: Path, notes: list[str]) -> list[dict[str, Any]]:
    import torch

    snaps = []
    for f in run.glob("dist_epoch*.pt"):
        try:
            snap = torch.load(f, map_location="cpu", weights_only=True)
            snaps.append({"epoch": int(snap["epoch"]), "marginals": snap["marginals"],
                          "entropy": float(snap["entropy"]), "kind": snap.get("kind")})
        except Exception as e:  # noqa: BLE001 - any unreadable snapshot is a note, not a failed report
            notes.append(f"{f.name} is unreadable ({type(e).__name__}); its epoch is left out")
    return sorted(snaps, key=lambda s: s["epoch"])


def collect(run_dir: "str | Path") -> RunContents:
    """Everything the report shows about `run_dir`; SupernasError when it is no run directory."""
    import yaml

    run = Path(run_dir).expanduser()
    if not run.exists():
        raise SupernasError(f"no run directory at '{run_dir}'; give the run.dir of train, fpnas, retrain or "
                            "finetune, or the --out of search")
    if not run.is_dir():
        raise SupernasError(f"'{run_dir}' is a file, not a run directory; give the folder that holds config.yaml")
    notes: list[str] = []
    config, text = None, ""
    if (run / CONFIG).is_file():
        text = (run / CONFIG).read_text(errors="replace")
        try:
            config = yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader
        except yaml.YAMLError:
            config = None
        if not isinstance(config, dict):
            notes.append("config.yaml is damaged (not a YAML mapping): the commands that made the run are unknown")
            config = None
    result = _json(run / RESULT, notes, "the result")
    searches = _searches(run, notes)
    kind = _kind(config, result if isinstance(result, dict) else None, searches)
    if kind is None:
        present = [f for f in RUN_FILES if (run / f).exists()]
        if not present:
            raise SupernasError(f"'{run_dir}' is not a run directory: it holds none of {', '.join(RUN_FILES)}; give "
                                "the run.dir of train, fpnas, retrain or finetune, or the --out of search")
        kind = "supernet" if (run / CHECKPOINT).exists() else "search"
    contents = RunContents(run, kind, config, text, result=result if isinstance(result, dict) else None,
                           searches=searches, notes=notes)
    if kind != "search":
        contents.metrics = read_metrics_lines(run / METRICS, notes)
    if kind in ("fpnas", "parsec", "retrain", "finetune") and contents.result is None \
            and not (run / RESULT).is_file():
        notes.append("no result.json: the run has not finished (or was interrupted); showing what it logged")
    contents.exports = _exports(run)
    if kind == "supernet":
        pred = run_predictor_path(run)
        if pred.is_file():
            contents.predictor = {"path": pred, "fit": _json(pred.with_suffix(".fit.json"), notes, "the fit record"),
                                  "eval": _json(pred.with_suffix(".eval.json"), notes, "the predictor check")}
        if not searches:
            notes.append("no search results (pareto.json): run `supernas search RUN --budgets ...` for a front")
        if not contents.exports:
            notes.append("no exported model: `supernas export RUN --pick BUDGET` writes RUN/export")
    if kind in ("fpnas", "parsec"):
        contents.snapshots = _snapshots(run, notes)
    return contents
