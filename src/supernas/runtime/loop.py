"""One training loop for every trainer: a *task* says what a step, a checkpoint and a validation
are; the loop owns the rest.

    Loop(task, run_dir, cfg, loader, device, schedule).run(resume)

The loop walks epochs and steps from wherever the run stands (the data order is a function of
seed, epoch and batch, so a resumed run starts at its batch), moves each batch to the device,
keeps the step's losses on the device and reads them every `log.every_steps` (and before a
checkpoint, so a non-finite loss never reaches one), writes the metrics and a progress line,
checkpoints atomically every `checkpoint.every_steps`, every `checkpoint.every_minutes` and at
every epoch's end, validates every `eval.every_epochs` epochs and at the end, and hands the end
of the run to the task. SIGINT / SIGTERM stop it at the next step boundary with a checkpoint
(`interrupts.py`); `dry_run.py` times a few steps instead of running.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from ..errors import RunInterrupted, SupernasError
from ..utils.file_names import CHECKPOINT
from . import distributed as ddp
from .checkpoint import load_checkpoint, rng_states, save_checkpoint, set_rng_states
from .data_order import ResumableLoader
from .device_metrics import DeviceMeans, require_finite
from .interrupts import StopRequest, resume_command
from .logging import RunLogger, format_duration
from .out_of_memory import out_of_memory_names_the_fix
from .resume import compare_resumed_config
from .run_dir import locked_dir, open_run
from .task import Task
from .threads import apply_threads


def command_of(cfg: Any) -> str:
    """The command whose schema `cfg` is (train, fpnas, retrain, finetune): checkpoints record it."""
    from ..config import SCHEMAS

    return next((name for name, schema in SCHEMAS.items() if type(cfg) is schema), type(cfg).__name__)


def _describe(value: Any) -> str:
    if isinstance(value, Mapping):
        keys = ", ".join(map(str, list(value)[:5]))
        return f"a mapping of {keys}{', ...' if len(value) > 5 else ''}" if value else "an empty mapping"
    return f"a {type(value).__name__}"



# Steps a time-left estimate skips: the first steps of a process are slow (memory allocation,
# kernel selection, the data loader's start, samplers building their tables) and made the first
# estimate of the quickstart 8x the truth.
WARMUP_STEPS = 3


class SteadyRate:
    """Seconds per training step for the time-left estimate, from steady-state steps: those after
    the first WARMUP_STEPS of this process, not counting time between steps (checkpoints,
    validations), which `resume` marks. Before any steady step, the mean over all steps so far."""

    def __init__(self, step0: int, t0: float):
        self.step0, self.t0 = step0, t0
        self.steady_step: int | None = None
        self.steady_seconds = 0.0
        self._last = t0  # when the current step started

    def seconds_per_step(self, step: int, now: float) -> float:
        if self.steady_step is not None and step > self.steady_step:
            return (self.steady_seconds + now - self._last) / (step - self.steady_step)
        return (now - self.t0) / max(step - self.step0, 1)

    def stepped(self, step: int, now: float) -> None:
        """Step `step` ended at `now`."""
        if self.steady_step is not None:
            self.steady_seconds += now - self._last
        elif step - self.step0 >= WARMUP_STEPS:
            self.steady_step = step
        self._last = now

    def resume(self, now: float) -> None:
        """The next step starts at `now` (what ran since the last step is not step time)."""
        self._last = now

@dataclass(frozen=True)
class Schedule:
    """When the loop stops, logs, checkpoints and validates (all in steps but `eval_every_epochs`)."""

    steps_per_epoch: int
    stop_step: int
    log_every: int
    checkpoint_every: int
    eval_every_epochs: int = 0  # 0: only at the end
    validate_at_end: bool = True
    lr_key: str = "train.lr"  # the setting a diverging run is told to lower


class Loop:
    def __init__(self, task: Task, run_dir: Path, cfg: Any, loader: ResumableLoader,
                 device: torch.device, schedule: Schedule, channels_last: bool = False):
        self.task, self.run_dir, self.cfg, self.loader = task, Path(run_dir), cfg, loader
        self.device, self.schedule, self.channels_last = device, schedule, channels_last
        self.info = ddp.current()

    # ------------------------------------------------------------------ checkpoints
    def save(self) -> None:
        if self.info.is_main:
            save_checkpoint(self.run_dir, {**self.task.state_dict(), "step": self.task.step, "rng": rng_states(),
                                           "seconds": self.task.seconds, "config": self.cfg.to_dict(),
                                           "command": command_of(self.cfg), "train_images": self.loader.rows.n,
                                           "world_size": self.info.world_size, "bad_images": self._bad_seen()})

    def load(self) -> list[str]:
        """Restore the task from the run's checkpoint; returns the setting changes the resume is
        allowed to make (see `runtime.resume`), for the log. Anything but a checkpoint this run
        can continue is a one-line error."""
        ck = load_checkpoint(self.run_dir)
        where = self.run_dir / CHECKPOINT
        if not isinstance(ck, Mapping) or "step" not in ck or "rng" not in ck:
            if isinstance(ck, Mapping) and "model" in ck:
                raise SupernasError(f"'{self.run_dir}' holds imported weights (no training state), not an "
                                    "interrupted run, so there is nothing to resume; run stage 2 on it (search, "
                                    "predictor, export)")
            raise SupernasError(f"'{where}' is not the checkpoint of a supernas run (it holds "
                                f"{_describe(ck)}); point run.dir at the run to resume, or start without --resume")
        mine = command_of(self.cfg)
        if ck.get("command", mine) != mine:
            raise SupernasError(f"the run in '{self.run_dir}' was written by `supernas {ck['command']}`, not "
                                f"`supernas {mine}`; resume it with that command, or choose another run.dir")
        if ck.get("world_size", 1) != self.info.world_size:
            raise SupernasError(f"the checkpoint in '{self.run_dir}' was written by {ck['world_size']} process(es); "
                                f"resume with the same number (now {self.info.world_size}) so the data order holds")
        changes = compare_resumed_config(ck["config"], self.cfg, str(self.run_dir)) if "config" in ck else []
        if ck.get("train_images", self.loader.rows.n) != self.loader.rows.n:
            raise SupernasError(f"the run in '{self.run_dir}' trained on {ck['train_images']} images, the data now "
                                f"gives {self.loader.rows.n}; resume on the data it was started with")
        if ck["step"] > self.schedule.stop_step:
            raise SupernasError(f"the checkpoint in '{self.run_dir}' is at step {ck['step']}, past the "
                                f"{self.schedule.stop_step} steps this config ends at (train.epochs, train.max_steps)")
        try:
            self.task.load_state_dict(ck)
        except SupernasError:
            raise
        except (KeyError, RuntimeError, TypeError, ValueError) as e:  # the right keys, the wrong content
            detail = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            raise SupernasError(f"the checkpoint in '{self.run_dir}' does not fit this run ({detail}); resume with "
                                "the config it was written under, or start a new run") from None
        set_rng_states(ck["rng"])
        if self.loader.bad_images is not None:  # skipped before: not logged again, still counted
            self.loader.bad_images.restore(ck.get("bad_images", []))
        self.task.step = ck["step"]
        self.task.seconds = float(ck.get("seconds", ck.get("search_seconds", 0.0)))
        return changes

    # ------------------------------------------------------------------ the loop
    def run(self, resume: bool = False) -> Any:
        """Train from the start, or from the checkpoint with `resume`, holding the run directory's
        lock throughout (another run there is refused, naming the holder)."""
        threads = apply_threads(self.cfg.run.threads, self.loader.workers)
        s, task = self.schedule, self.task
        try:
            with locked_dir(self.run_dir, "run.dir", fresh=not resume):
                changes = self.load() if resume else []
                log = open_run(self.run_dir, self.cfg, resume, total=s.stop_step, initial=task.step)
                try:
                    log.info(task.header())
                    log.info(threads)
                    if resume:
                        log.info(f"resuming {self.run_dir} from step {task.step} of {s.stop_step}"
                                 + "".join(f"; {c}" for c in changes))
                        if task.step and self._validation_due(task.step):  # killed between checkpoint and validation
                            self._validate(log, final=task.step >= s.stop_step)
                    with StopRequest() as stop:
                        self._train(log, stop)
                    log.end_progress()
                    with self.out_of_memory("the final validation and export", "eval.batch_size"):
                        result = task.finish(log)
                finally:
                    log.close()
        finally:
            task.close()
            self.loader.close()
        ddp.barrier()
        return result

    def _validation_due(self, step: int) -> bool:
        """Whether the schedule validates after the checkpoint of `step`: every `eval_every_epochs`
        epochs (not at the last step) and at the last step when `validate_at_end`."""
        s = self.schedule
        last = step >= s.stop_step
        epochs_done, into_epoch = divmod(step, s.steps_per_epoch)
        periodic = into_epoch == 0 and s.eval_every_epochs and epochs_done % s.eval_every_epochs == 0
        return bool((periodic and not last) or (last and s.validate_at_end))

    def _train(self, log: RunLogger, stop: StopRequest) -> None:
        s, task = self.schedule, self.task
        means, seen = DeviceMeans(), 0
        t0, seconds0, step0 = time.perf_counter(), task.seconds, task.step
        saved_at, save_seconds = t0, self.cfg.checkpoint.every_minutes * 60
        rate = SteadyRate(step0, t0)
        while task.step < s.stop_step:
            epoch, start = divmod(task.step, s.steps_per_epoch)
            task.on_epoch_start(epoch, log)
            for x, y in self.loader.epoch(epoch, start):
                x = x.to(self.device, non_blocking=True)
                y = y.to(self.device, non_blocking=True)
                if self.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                with self.out_of_memory(f"training step {task.step + 1}", "train.batch_size"):
                    means.add(**task.train_step(x, y))
                task.step += 1
                seen += x.shape[0] * self.info.world_size
                now = time.perf_counter()
                task.seconds = seconds0 + now - t0
                images_per_s = seen / max(task.seconds - seconds0, 1e-9)
                step, last = task.step, task.step >= s.stop_step
                end_of_epoch = step % s.steps_per_epoch == 0
                log_now = step % s.log_every == 0 or last
                planned_save = end_of_epoch or step % s.checkpoint_every == 0 or last
                # steps every rank reaches alike: where they agree on stopping (one small all-reduce)
                stopping = not last and self._stop_agreed(stop, log_now or planned_save)
                # by time on the main rank only: the other ranks neither write nor need to know
                save_now = planned_save or stopping or now - saved_at >= save_seconds
                if log_now or save_now:  # read before saving: a non-finite loss must not reach a checkpoint
                    values = means.read(reset=log_now)
                    require_finite(values, step, s.lr_key)
                log.progress(1, **({"loss": f"{values['loss']:.3f}", "img_s": f"{images_per_s:.0f}"}
                                   if log_now else {}))
                self._log_bad_images(log)
                if log_now:
                    skipped = self._bad_seen()
                    log.metrics(step, {**values, **task.log_extra(epoch), "epoch": epoch,
                                       "images_per_s": images_per_s, "seconds": round(task.seconds, 3),
                                       **({"bad_images": len(skipped)} if skipped else {})})
                    log.step_line(self._progress_line(values, images_per_s, rate.seconds_per_step(step, now)))
                rate.stepped(step, now)
                if end_of_epoch:
                    task.on_epoch_end(epoch)
                if save_now:
                    self.save()
                    saved_at = time.perf_counter()
                if stopping:
                    self._stop(log, stop)
                if last:
                    log.end_progress()
                if self._validation_due(step):
                    self._validate(log, final=last)
                if last:
                    break
                rate.resume(time.perf_counter())  # the checkpoint and validation are not step time

    def out_of_memory(self, where: str, batch_key: str, dry_run: bool = False):
        """Within it, running out of device memory ends the run with a SupernasError that names the
        settings to change (the checkpoint before it is intact: with it, what `--resume` may change
        comes first). Tasks without an `eval` section (the FP-NAS search) pass their validation's
        errors on as they are."""
        if batch_key.startswith("eval.") and not hasattr(self.cfg, "eval"):
            return contextlib.nullcontext()
        return out_of_memory_names_the_fix(self.cfg, self.device, where, batch_key,
                                           self.task.amp_dtype == torch.bfloat16,
                                           None if dry_run else self.run_dir / CHECKPOINT)

    def _progress_line(self, values: Mapping[str, float], images_per_s: float, seconds_per_step: float) -> str:
        """'step 40/1000 (epoch 0.32/8): loss 2.301, ... | 512 images/s | 1m20s elapsed, 32m05s left'."""
        s, step = self.schedule, self.task.step
        losses = ", ".join(f"{k} {v:.4g}" for k, v in values.items())
        left = format_duration(seconds_per_step * (s.stop_step - step))
        epochs = round(s.stop_step / s.steps_per_epoch, 2)
        return (f"step {step}/{s.stop_step} (epoch {step / s.steps_per_epoch:.2f}/{epochs:g}): "
                f"{losses} | {images_per_s:.0f} images/s | {format_duration(self.task.seconds)} elapsed, {left} left")

    def _stop_agreed(self, stop: StopRequest, sync_point: bool) -> bool:
        """Whether to stop after this step: on a signal at once with one process; under torchrun at
        the next step where every rank asks (log or planned checkpoint steps), stopping when any
        rank got the signal, so that none is left waiting in a collective of the next step."""
        if not self.info.enabled:
            return stop.requested
        if not sync_point:
            return False
        flag = torch.tensor([float(stop.requested)], device=self.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return bool(flag.item())

    def _stop(self, log: RunLogger, stop: StopRequest) -> None:
        """After the checkpoint of this step: say how to continue, and end the run."""
        import signal

        why = signal.Signals(stop.signal).name if stop.signal is not None else "a signal on another rank"
        message = (f"interrupted at step {self.task.step} of {self.schedule.stop_step} ({why}), checkpoint written "
                   f"to {self.run_dir}; continue with: {resume_command()}")
        log.end_progress()
        log.info(message)
        raise RunInterrupted(message)

    def _bad_seen(self) -> list[str]:
        return list(self.loader.bad_images.seen) if self.loader.bad_images is not None else []

    def _log_bad_images(self, log: RunLogger) -> None:
        """Each unreadable image skipped (data.on_bad_image: skip), once, as the run meets it."""
        if self.loader.bad_images is not None:
            for path in self.loader.bad_images.new():
                log.info(f"skipped unreadable image '{path}' (data.on_bad_image: skip): the next readable image "
                         "of its split takes its place")

    def _validate(self, log: RunLogger, final: bool = False) -> None:
        plan = self.task.validation_plan()
        if plan is not None:
            log.info(f"{'final ' if final else ''}validation at step {self.task.step}: {plan[0]}")
        with self.out_of_memory(f"the validation at step {self.task.step}", "eval.batch_size"):
            res = self.task.validate()
        self._log_bad_images(log)
        if res:
            log.metrics(self.task.step, res, kind="val")
            log.info(f"step {self.task.step} (epoch {self.task.step / self.schedule.steps_per_epoch:.2f}): "
                     + ", ".join(f"{k} {v:.2f}" for k, v in res.items()))
