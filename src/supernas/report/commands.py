"""The commands that made what a run directory holds, rebuilt from its files: config.yaml is the
resolved config of the run, and each later stage recorded its settings (pareto.json "search",
predictor.fit.json, arch.json "made_by"). Each command given here makes the same thing again."""
from __future__ import annotations

import shlex
from pathlib import Path

from ..predictors import run_predictor_path
from ..utils.file_names import ARCH, CONFIG
from .collect import RunContents


def _cmd(*words: object) -> str:
    return shlex.join(str(w) for w in words)


def _search_command(run: Path | None, search) -> str | None:
    meta = search.front
    settings = meta.get("search")
    if settings is None or "budgets" not in meta:
        return None
    searched = meta.get("run", run)  # the supernet run it searched (a search --out may lie elsewhere)
    run = Path(searched) if searched else None  # None: a predictor searched alone
    cost = meta.get("cost", "mflops")
    words: list[object] = ["supernas", "search", *([run] if run else []), *settings.get("overrides", []),
                           "--budgets", ",".join(f"{b:g}" for b in meta["budgets"])]
    if cost == "latency_ms":
        words += ["--cost", "latency"]
        for key in ("latency_batch", "latency_warmup", "latency_repeats", "latency_window"):
            if key in settings:
                words += [f"--{key.replace('_', '-')}", settings[key]]
    if settings.get("strategy", "evolution") != "evolution":
        words += ["--strategy", settings["strategy"]]
    for key in ("population", "mutations", "crossovers", "generations", "seed"):
        words += [f"--{key}", settings[key]]
    score = meta.get("score", {})
    if score.get("source") == "predictor":
        words += ["--predictor", score["predictor"]]
    elif score.get("source") == "supernet":
        words += ["--bn-batches", score["bn_batches"]]
        if score.get("max_batches"):
            words += ["--max-batches", score["max_batches"]]
    if "device" in settings:
        words += ["--device", settings["device"]]
    if run is None or search.path.parent != run or search.path.name != "search":
        words += ["--out", search.path]
    words += settings.get("options", [])  # search.KEY=VALUE last: before any flag, one would read as the run
    return _cmd(*words)


def commands(c: RunContents) -> list[tuple[str, str]]:
    """(command, what it made) pairs in the order they ran; a stage whose settings were not
    recorded (files from before supernas kept them) is said so instead of guessed."""
    run, out = c.path, []
    cfg = c.config
    config = run / CONFIG
    if cfg is not None:
        again = "; add run.dir=OTHER to make it again beside this one"
        if c.kind == "supernet":
            out.append((_cmd("supernas", "train", config), "the supernet (config.yaml: its resolved config)" + again))
        elif c.kind in ("fpnas", "parsec"):
            out.append((_cmd("supernas", "fpnas", config), f"the {c.kind} search (config.yaml)" + again))
        elif c.kind == "retrain":
            out.append((_cmd("supernas", "retrain", cfg["arch"], config), "the retrained model" + again))
        elif c.kind == "finetune":
            out.append((_cmd("supernas", "finetune", cfg["init"], config), "the fine-tuned model" + again))
    if c.predictor is not None:
        fit = c.predictor["fit"]
        if fit:
            words: list[object] = ["supernas", "predictor", "fit", run, *fit.get("overrides", []), "-n", fit["archs"],
                                   "--holdout", fit["holdout"], "--seed", fit["seed"],
                                   "--bn-batches", fit["scored"]["bn_batches"]]
            if fit.get("max_batches"):
                words += ["--max-batches", fit["max_batches"]]
            if fit.get("device"):
                words += ["--device", fit["device"]]
            if c.predictor["path"] != run_predictor_path(run):
                words += ["--predictor", c.predictor["path"]]
            out.append((_cmd(*words), f"the accuracy predictor ({c.predictor['path'].name})"))
        else:
            out.append(("", f"{c.predictor['path'].name}: its fit settings were not recorded"))
        ev = c.predictor["eval"]
        if ev and "scored" in ev:
            # the command passes --seed + 1 to the check, so that it draws other Archs than the fit
            words = ["supernas", "predictor", "eval", run, "-n", ev["archs"], "--seed", ev["seed"] - 1,
                     "--bn-batches", ev["scored"]["bn_batches"]]
            if ev.get("max_batches"):
                words += ["--max-batches", ev["max_batches"]]
            out.append((_cmd(*words), "the predictor's check on Archs it was not fitted on (predictor.eval.json)"))
    for s in c.searches:
        if c.kind in ("fpnas", "parsec") and s.path == run:
            continue  # its top Archs scored by the FP-NAS run itself (pareto.json beside result.json)
        line = _search_command(run, s)
        out.append((line or "", f"the search in {s.where}" if line else
                    f"the search in {s.where}: its settings were not recorded (pareto.json predates them)"))
    for e in c.exports:
        made = e.meta.get("made_by")
        if c.kind in ("retrain", "finetune") and e.path == run / "export":
            continue  # written by the run itself
        if made:
            out.append((_cmd("supernas", "export", run, "--arch", e.path / ARCH, "--format", made["format"],
                             "--bn-batches", made["bn_batches"], "--bn-batch-size", made["bn_batch_size"],
                             "--out", e.path), f"the exported model in {e.path.name}/"))
        else:
            out.append(("", f"the exported model in {e.path.name}/: its export settings were not recorded"))
    return out
