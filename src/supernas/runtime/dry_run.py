"""`--dry-run`: what a run would do and about how long it would take, without writing it.

The estimate times real steps of the real task on its data and device (after one untimed step:
the first pays for worker start-up and allocator warm-up), and a validation shortened to one
batch of each kind, scaled by the batches a full one runs. A task whose steps differ in cost
(FP-NAS: weight steps only during the architecture warm-up, then architecture steps as well)
names its phases (`step_phases`), and each is timed on its own.
"""
from __future__ import annotations

import time
from typing import Any, Callable

import torch
import yaml

from .logging import format_duration
from .loop import Loop, Schedule
from .threads import apply_threads

MAX_TIMING_SECONDS = 60.0  # stop timing a phase early when its steps are this slow in all


def validations_left(s: Schedule, step: int) -> int:
    """Validations from `step` to the end: every `eval_every_epochs` epochs before the last step,
    then the final one."""
    periodic = 0
    if s.eval_every_epochs:
        for epoch in range(step // s.steps_per_epoch + 1, s.stop_step // s.steps_per_epoch + 1):
            if epoch % s.eval_every_epochs == 0 and epoch * s.steps_per_epoch < s.stop_step:
                periodic += 1
    return periodic + 1


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _batches(loop: Loop, first: int, stop: int):
    """The batches of steps `first` .. `stop` - 1, across epoch ends."""
    spe = loop.schedule.steps_per_epoch
    step = first
    while step < stop:
        epoch, start = divmod(step, spe)
        for batch in loop.loader.epoch(epoch, start):
            yield batch
            step += 1
            if step >= stop:
                return


def _time_steps(loop: Loop, first: int, stop: int, timed: int) -> tuple[float, int]:
    """(seconds per step, steps timed) of the task's steps from step `first` on (at most up to `stop`)."""
    task = loop.task
    task.step = first
    elapsed, done, warmup = 0.0, 0, float("nan")
    for i, (x, y) in enumerate(_batches(loop, first, min(stop, first + timed + 1))):
        x, y = x.to(loop.device), y.to(loop.device)
        if loop.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        _synchronize(loop.device)
        t = time.perf_counter()
        with loop.out_of_memory(f"a timed step of the dry run (step {first + i + 1})", "train.batch_size",
                                dry_run=True):
            task.train_step(x, y)
            _synchronize(loop.device)
        if i == 0:  # the first step warms up; it counts only when it is the one step there is
            warmup = time.perf_counter() - t
        else:
            elapsed += time.perf_counter() - t
            done += 1
        if done and elapsed >= MAX_TIMING_SECONDS:
            break
    return (elapsed / done, done) if done else (warmup, 1)


# the settings that bound a validation's batches: eval (train, retrain, finetune), the end's scoring (fpnas)
_VALIDATION_SIZE = {"eval": ("max_batches", "bn_batches"), "search": ("score_images", "score_bn_batches")}


def _shortened(cfg: Any) -> Callable[[], object]:
    """Set the settings that bound a validation to 1 (one batch of each kind); returns the undo."""
    saved = [(getattr(cfg, part), key, getattr(getattr(cfg, part), key))
             for part, keys in _VALIDATION_SIZE.items() if hasattr(cfg, part)
             for key in keys if hasattr(getattr(cfg, part), key)]
    for section, key, _ in saved:
        setattr(section, key, 1)
    return lambda: [setattr(section, key, v) for section, key, v in saved]  # type: ignore[func-returns-value]


def _time_validation(loop: Loop) -> tuple[str, float] | None:
    """(what a validation runs, its estimated seconds), or None when the task validates nothing."""
    plan = loop.task.validation_plan()
    if plan is None:
        return None
    what, batches = plan
    undo = _shortened(loop.cfg)
    try:
        _, short = loop.task.validation_plan()  # type: ignore[misc]
        t = time.perf_counter()
        loop.task.validate()
        _synchronize(loop.device)
        seconds = time.perf_counter() - t
    finally:
        undo()
    return what, seconds / max(short, 1) * batches


def dry_run(loop: Loop, resume: bool = False, timed_steps: int = 3) -> list[str]:
    """The resolved config, the data, the steps and the estimated wall time of `loop`'s run, as
    lines to print; trains nothing that is kept and writes nothing into the run directory."""
    task, s, cfg = loop.task, loop.schedule, loop.cfg
    threads = apply_threads(cfg.run.threads, loop.loader.workers)
    if resume:
        loop.load()
    first = task.step
    lines = ["# the resolved config", yaml.safe_dump(cfg.to_dict(), sort_keys=False).rstrip(), "",
             f"# dry run: nothing is written (run.dir {loop.run_dir} "
             f"{'exists' if loop.run_dir.exists() else 'is not created'})",
             task.header(), threads,
             f"steps: {first} to {s.stop_step} ({s.stop_step / s.steps_per_epoch:g} epochs of {s.steps_per_epoch} "
             f"steps{', resumed from its checkpoint' if resume else ''}); a checkpoint every "
             f"{s.checkpoint_every} steps, every {cfg.checkpoint.every_minutes:g} minutes and at each epoch's end"]
    if first >= s.stop_step:
        return lines + ["nothing left to train: the run has reached its last step"]
    phases = task.step_phases(s.stop_step)
    total, parts = 0.0, []
    try:
        for what, start, stop in phases:
            start = max(start, first)
            if stop <= start:
                continue
            per_step, timed = _time_steps(loop, start, stop, timed_steps)
            batch = getattr(cfg.train, "batch_size", 0) * loop.info.world_size
            lines.append(f"timed {timed} of the {what} on {loop.device.type}: {per_step:.3g} s a step"
                         + (f" ({batch / per_step:.0f} images/s)" if batch else ""))
            total += per_step * (stop - start)
            parts.append(f"{stop - start} {what} {format_duration(per_step * (stop - start))}")
        validation = _time_validation(loop)
        if validation is not None:
            what, seconds = validation
            count = validations_left(s, first)
            total += count * seconds
            parts.append(f"{count} validation(s) of {format_duration(seconds)} ({what})")
    finally:
        task.close()
        loop.loader.close()
    lines.append(f"estimate: about {format_duration(total)} in all: " + "; ".join(parts))
    return lines
