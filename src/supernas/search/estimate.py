"""`supernas search --dry-run`: how many Archs a search would score and about how long that takes
on this device, from a few Archs scored with shortened settings; nothing is written.

The defaults are the paper's (a population of 512 and 20 generations of 128 mutations and 128
crossovers per budget; 64 BatchNorm re-calibration batches per Arch): on a GPU cluster an
afternoon, on a CPU days. The estimate says so before the search starts, and what to lower.
"""
from __future__ import annotations

import time
from typing import Sequence, cast

import numpy as np
import torch

from ..evaluation import Evaluator, LatencyTable
from ..runtime.logging import format_duration
from ..spaces import Arch, CostModel
from .job import SearchJob
from .pareto import COSTS
from .strategies import STRATEGIES

TIMED_ARCHS = 2
SHORTEN = ("to shorten it: fewer Archs per budget (--population, --generations, --mutations, --crossovers), "
           "fewer batches per Arch (--bn-batches, --max-batches), fewer --budgets, or --predictor PATH (a fitted "
           "predictor scores thousands of Archs a second; `supernas predictor fit` scores about 1000)")


def _seconds_per_arch(evaluator: Evaluator, archs: Sequence) -> float:
    """The mean seconds of a full evaluation by `evaluator`, from evaluations of `archs` shortened
    to one batch of each kind, after one more, untimed, that warms up."""
    e = evaluator
    short = Evaluator(e.net, e.data, e.device, bn_batches=1, batch_size=e.batch_size, split=e.split, max_batches=1,
                      amp_dtype=e.amp_dtype)
    short.evaluate(archs[0])
    t = time.perf_counter()
    for a in archs[1:]:
        short.evaluate(a)
    if e.device.type == "cuda":
        torch.cuda.synchronize(e.device)
    per_batch = (time.perf_counter() - t) / (2 * (len(archs) - 1))
    return per_batch * sum(e.batches_per_arch())


def estimate_search(job: SearchJob) -> list[str]:
    """Lines saying what `search_run(job)` would score and an estimate of its time."""
    from .runner import Scoring

    budgets, strategy, cost, predictor = job.budgets, job.strategy, job.cost, job.predictor
    population, mutations, crossovers, generations = job.population, job.mutations, job.crossovers, job.generations
    build = STRATEGIES.get(strategy, "--strategy")
    scoring = Scoring(job)
    space, dev = scoring.space, scoring.device
    cost_model = CostModel(space, scoring.num_classes)
    constraint = "latency_ms" if cost == "latency" else "mflops"
    unit = COSTS[constraint]
    if cost == "latency":
        table = LatencyTable(space, scoring.num_classes, job.latency_batch, job.latency_warmup, job.latency_repeats,
                             dev, window_s=job.latency_window)
        cost_of = table.latency_indices
    else:
        cost_of = cost_model.mflops_indices
    settings = job.settings()
    # built as the search would be (nothing is scored yet): its settings and budgets are checked alike
    build(space, cost_model, lambda archs: [], budgets, settings, constraint=(constraint, cost_of))
    lo, hi = (float(c) for c in cost_of(space.to_indices([space.smallest(), space.largest()])))
    guided = strategy == "guided"
    per_budget = settings.guided_calls if guided else settings.archs_per_budget
    total = per_budget * len(budgets)
    rng = np.random.default_rng(job.seed)
    archs = cast(list[Arch], space.sample(rng, TIMED_ARCHS + 1))  # n given: a list
    lines = [f"# dry run of the search on {job.run or 'the predictor alone'}: nothing is written",
             f"space {space.name} ({lo:.4g} to {hi:.4g} {unit}); data "
             f"{scoring.data_description or 'none (the predictor scores)'}",
             f"{len(budgets)} budget(s): {', '.join(f'{b:g}' for b in budgets)} {unit}",
             f"per budget ({strategy}): " + (
                 f"a population of {population}, then {generations} generation{'' if generations == 1 else 's'} of "
                 f"{mutations} mutations and "
                 f"{crossovers} crossovers" if strategy == "evolution" else
                 f"Archs chosen by a surrogate refitted on the scores so far, "
                 f"{settings.batch or max(8, per_budget // 16)} at a time (search.calls, search.batch)" if guided else
                 "as many Archs as the evolution would score") +
             f": up to {per_budget} Archs scored ({total} for all budgets; an Arch scored once is not scored again)"]
    if predictor:  # the predictor scores, with or without a run
        many = space.sample(rng, 1000)
        t = time.perf_counter()
        scoring.score_fn(many)
        per_arch = (time.perf_counter() - t) / len(many)
        lines.append(f"scored by the predictor {predictor}: {per_arch * 1e3:.3g} ms an Arch")
    else:
        evaluator = scoring.evaluator
        assert evaluator is not None  # without a predictor Scoring has a run, hence an evaluator
        bn, scored_batches = evaluator.batches_per_arch()
        per_arch = _seconds_per_arch(evaluator, archs)
        lines.append(f"each Arch: BatchNorm re-calibration on {bn} batches of {evaluator.batch_size} images, then "
                     f"top-1 on {scored_batches} batch{'es' if scored_batches != 1 else ''} of the "
                     f"{evaluator.split} split; "
                     f"timed on {dev.type} "
                     f"with {torch.get_num_threads()} thread(s) (--threads) "
                     f"({TIMED_ARCHS} random Archs, shortened to one batch of each): about {per_arch:.3g} s an Arch")
    extra = " plus measuring each distinct layer's latency once" if cost == "latency" else ""
    lines.append(f"estimate: up to {total} Archs x {per_arch:.3g} s = about {format_duration(total * per_arch)}{extra}")
    lines.append(SHORTEN)
    return lines
