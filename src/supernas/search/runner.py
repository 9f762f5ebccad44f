"""AttentiveNAS stage 2 on a trained run directory: evolutionary search per FLOPs budget (scored by
the BN-recalibrated supernet or by a predictor) and the Pareto set written out.

    result = search_run(SearchJob(budgets=(50, 100, 150), run="runs/cifar10-supernet"))
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, cast

import torch

from ..errors import SupernasError
from ..evaluation import Evaluator, LatencyTable, build_latency_table, load_run
from ..runtime import distributed as ddp
from ..runtime.checkpoint import weights_fingerprint
from ..runtime.logging import progress_bar
from ..runtime.run_dir import SEARCH_MARKS, locked_dir
from ..spaces import CostModel
from ..utils.file_names import LATENCY_TABLE, SEARCH_STATE
from ..utils.io import atomic_write_text, file_sha256
from .job import SearchJob
from .pareto import write_pareto
from .plots import plot_search_results
from .stepwise import SearchResult
from .strategies import STRATEGIES


def score_source(evaluator: "Evaluator | None", predictor: "str | Path | None") -> dict[str, Any]:
    """Where a search's accuracies come from, for pareto.json: the predictor file (and what it was
    fitted on, when its fit record is beside it), or the supernet on which split, how many images
    and BN batches."""
    if predictor:
        path = Path(predictor).expanduser()
        fit = path.with_suffix(".fit.json")
        fitted = json.loads(fit.read_text()) if fit.is_file() else None
        return {"source": "predictor", "predictor": str(path), **({"fit": fitted} if fitted else {})}
    assert evaluator is not None  # without a predictor the supernet scores: every caller gives its Evaluator
    images = len(evaluator.view)
    if evaluator.max_batches is not None:
        images = min(images, evaluator.max_batches * evaluator.batch_size)
    # the batches that ran (fewer than asked when the training split holds fewer), and what was asked
    ran = evaluator.batches_per_arch()[0]
    return {"source": "supernet", "split": evaluator.split, "images": images, "bn_batches": ran,
            **({"bn_batches_asked": evaluator.bn_batches} if ran != evaluator.bn_batches else {}),
            **({"max_batches": evaluator.max_batches} if evaluator.max_batches is not None else {}),
            **({"note": evaluator.fallback} if evaluator.fallback else {})}


def scored_by(net: torch.nn.Module, data: Any, predictor: "str | Path | None") -> dict[str, Any]:
    """What a search's scores depend on beyond its own settings: the supernet's weights (their
    fingerprint), the data and the predictor file (its sha256); a saved search resumes only on the same."""
    return {"weights": weights_fingerprint(net.state_dict()), "data": data.describe(),
            "predictor": file_sha256(Path(predictor).expanduser()) if predictor else None}


def read_search_state(path: Path, scored: Mapping[str, Any]) -> dict[str, Any]:
    """search_state.json, refused with one line when it cannot be read, is not a saved search, or
    scored something else than `scored` (other weights, data or predictor)."""
    fix = "delete it to start the search afresh, or choose another --out"
    try:
        state = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SupernasError(f"'{path}' cannot be read as a saved search ({type(e).__name__}: "
                            f"{str(e).splitlines()[0]}); {fix}") from None
    except RecursionError:  # a hostile file nested deeper than the parser goes
        raise SupernasError(f"'{path}' cannot be read as a saved search (nested too deeply); {fix}") from None
    if not isinstance(state, dict) or not isinstance(state.get("search"), dict):
        raise SupernasError(f"'{path}' is not a saved search (it holds no 'search' state); {fix}")
    saved = state.get("scored_by")
    saved = saved if isinstance(saved, dict) else {}
    differ = [what for key, what in (("weights", "other supernet weights"), ("data", "other data"),
                                     ("predictor", "another predictor")) if saved.get(key) != scored[key]]
    if differ:
        raise SupernasError(f"the search saved in '{path}' scored {', '.join(differ)} than this one, so its scores "
                            f"do not hold here; resume on what it scored, or {fix}")
    return state


class Scoring:
    """What scores a search's Archs: a run's supernet (BN re-calibrated), or a predictor, which
    needs no run: then the space and the head's classes come from the predictor and `num_classes`."""

    def __init__(self, job: SearchJob):
        from ..predictors import load_predictor

        run_dir, predictor, device = job.run, job.predictor, job.device
        space, num_classes = job.space, job.num_classes
        self.evaluator: Evaluator | None = None
        if run_dir is None:
            if not predictor:
                raise SupernasError("a search without a run directory scores with a predictor: give --predictor "
                                    "(supernas predictor import attentivenas FILE, or one fitted on a run)")
            model = load_predictor(predictor, space)
            self.space, self.num_classes = model.space, num_classes or 1000
            self.device = ddp.resolve_device(device)
            self.scored = {"weights": None, "data": None, "predictor": file_sha256(Path(predictor).expanduser())}
            self.data_description = None
        else:
            if space is not None or num_classes is not None:
                raise SupernasError("--space and --num-classes are for a search without a run (the run's own are "
                                    "used); drop them, or the run directory")
            net, _, data = load_run(run_dir, device, job.overrides)
            self.space, self.num_classes = net.space, data.num_classes
            self.device = next(net.parameters()).device
            self.scored = scored_by(net, data, predictor)
            self.data_description = data.describe()
            self.evaluator = Evaluator(net, data, device=self.device, bn_batches=job.bn_batches,
                                       max_batches=job.max_batches,
                                       amp_dtype=torch.bfloat16 if self.device.type == "cuda" else None)
            if predictor:
                model = load_predictor(predictor, self.space)
        # without a predictor there is a run (refused above otherwise), hence an evaluator
        self.score_fn: Any = ((lambda archs: model.predict(archs)) if predictor
                              else cast(Evaluator, self.evaluator).score_fn)
        self.source = score_source(self.evaluator, predictor)

    def cache_state(self) -> dict[str, Any]:
        return self.evaluator.cache_state() if self.evaluator is not None else {}

    def load_cache(self, state: Any) -> None:
        if self.evaluator is not None:
            self.evaluator.load_cache(state)


def search_run(job: SearchJob, progress: bool = True) -> SearchResult:
    """Search each of `job`'s budgets with its strategy (a name of STRATEGIES: evolution, random,
    guided); write pareto.json/.csv/.png, evaluated.json/.csv (every scored Arch),
    best_per_budget.json and search_state.json into `job.out_dir` (default RUN/search), the job
    whole in their metadata. With `job.resume`, continue from search_state.json.

    `cost="latency"`: budgets are in ms of latency on the search device, estimated by a
    LatencyTable (batch `latency_batch`) kept in latency_table.json beside the results and reused
    from there; the Pareto front is then accuracy against latency. Without a run (`job.run` None)
    a predictor scores, over its own space with a head of `num_classes` (1000 when None).

        search_run(SearchJob(budgets=(50, 100, 150), run="runs/cifar10-supernet"))
    """
    STRATEGIES.get(job.strategy, "--strategy")  # an unknown name fails before any work
    job.settings()  # so does a bad option
    out = job.out_dir
    with locked_dir(out, "--out", fresh=not job.resume, ours=SEARCH_MARKS):  # one search writes a folder at a time
        return _search(job, Scoring(job), out, progress)


def _steps_done(search: Any, per_budget: int) -> int:
    """The steps (populations, or budgets) a resumed search had done before: its budget and
    generation counters when it has them (the built-in strategies), else 0."""
    budget, generation = getattr(search, "_bi", 0), getattr(search, "_gen", -1)
    if not isinstance(budget, int) or not isinstance(generation, int):
        return 0
    return budget * per_budget + (generation + 1 if per_budget > 1 else 0)


def _latency_table(job: SearchJob, scoring: Scoring, path: Path, progress: bool) -> LatencyTable | None:
    """For latency budgets (`job.cost="latency"`), the latency table kept at `path`, or one measured
    now; None for MFLOPs budgets."""
    if job.cost != "latency":
        return None
    table = LatencyTable(scoring.space, scoring.num_classes, job.latency_batch, job.latency_warmup,
                         job.latency_repeats, scoring.device, window_s=job.latency_window)
    if path.exists():
        return table.load(path)
    # layers measured in interleaved rounds, the per-Arch overhead fitted end to end
    table = build_latency_table(table, seed=job.seed)
    if progress and ddp.current().is_main:
        print(table.describe_fit(), flush=True)
    return table


def _write_results(job: SearchJob, scoring: Scoring, out: Path, result: SearchResult) -> None:
    """pareto.json/.csv/.png, evaluated.json/.csv and best_per_budget.json of a finished search into
    `out`, the job and what scored it in their metadata."""
    front = result.pareto()
    # the weights' fingerprint: `export --pick` takes an Arch only for the weights that scored it
    run = Path(job.run).expanduser() if job.run is not None else None
    meta = {"run": str(run) if run is not None else None, "weights": scoring.scored["weights"],
            "data": scoring.data_description, "cost": result.cost, "num_classes": scoring.num_classes,
            "budgets": list(result.budgets), "score": scoring.source,
            # the job whole, and the Archs the real scorer scored and a surrogate rated (guided search)
            "search": {**job.record(scoring.device.type), "scored": result.scored, "ranked": result.ranked}}
    write_pareto(out, front, scoring.space, meta=meta)
    # every scored Arch, not just the front
    write_pareto(out, result.evaluated, scoring.space, name="evaluated", meta=meta)
    export = run / "export" if run is not None else None
    plot_search_results(out, export if export is not None and export.is_dir() else None)
    best = [{"budget": b, **(e.to_dict() if e else {})} for b, e in zip(result.budgets, result.best)]
    atomic_write_text(out / "best_per_budget.json", json.dumps(best, indent=1))


def _search(job: SearchJob, scoring: Scoring, out: Path, progress: bool) -> SearchResult:
    """The body of `search_run`, while it holds the lock on `out`."""
    resume, strategy, generations = job.resume, job.strategy, job.generations
    state_path = out / SEARCH_STATE
    if state_path.exists() and not resume:
        raise SupernasError(f"'{out}' already holds a search; continue it with --resume or choose another --out")
    build = STRATEGIES.get(strategy, "--strategy")
    scored, space, score_fn = scoring.scored, scoring.space, scoring.score_fn
    cost_model = CostModel(space, scoring.num_classes)
    state = read_search_state(state_path, scored) if resume and state_path.exists() else None
    if state is not None and "evaluator" in state:
        scoring.load_cache(state["evaluator"])
    table_path = out / LATENCY_TABLE
    table = _latency_table(job, scoring, table_path, progress)
    search = build(space, cost_model, score_fn, job.budgets, job.settings(), state=state["search"] if state else None,
                   constraint=("latency_ms", table.latency_indices) if table else None)
    info = ddp.current()
    # evolution scores per budget an initial population and `generations` more: the bar counts the
    # populations scored, and its postfix says which one; random search counts budgets
    evolution = strategy == "evolution"
    per_budget = generations + 1 if evolution else 1
    bar = progress_bar(len(search.budgets) * per_budget, strategy, "populations" if evolution else "budgets",
                       enabled=progress and info.is_main)
    if bar is not None and state is not None:  # a resumed search: what the saved state had done
        bar.update(_steps_done(search, per_budget))

    def on_generation(generation, budget, best):
        if bar is not None:  # the postfix first: a LineProgress prints it with the update
            where = f"{budget:g}"
            if evolution:
                where += " (initial population)" if generation == 0 else f" (generation {generation} of {generations})"
            bar.set_postfix(budget=where, best=f"{best.accuracy:.2f}" if best else "-", refresh=False)
            bar.update(1)

    def checkpoint(search_state):
        if info.is_main:
            if table is not None:  # first: the state must not rely on latencies that were not kept
                table.save(table_path)
            atomic_write_text(state_path, json.dumps({"search": search_state, "evaluator": scoring.cache_state(),
                                                      "scored_by": scored}))

    result = search.run(callback=on_generation, checkpoint=checkpoint)
    if bar is not None:
        bar.close()
    if info.is_main:
        _write_results(job, scoring, out, result)
    return result
