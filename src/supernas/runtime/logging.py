"""What a run reports: progress, `metrics.jsonl`, TensorBoard events and a plain log file.

Progress has two forms. On a terminal, a bar that redraws itself in place. Anywhere else (output
to a file under nohup or a cluster scheduler, a pipe into `tee`), whole lines at regular
intervals, flushed as they are written: a bar's carriage-return fragments would pile up in the
file as one unreadable line, and a block-buffered stdout would show nothing for minutes.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

from tqdm.auto import tqdm

from ..utils.file_names import LOG, METRICS
from ..utils.io import atomic_write_text


def read_metric_records(path: Path) -> tuple[list[tuple[str, dict[str, Any]]], list[int]]:
    """The records of a `metrics.jsonl` in file order, each with its line, and the numbers of the
    damaged lines: not JSON, or not a record with a numeric step (a kill mid-write tears the last
    line). Blank lines are neither."""
    records, damaged = [], []
    for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            damaged.append(n)
            continue
        step = record.get("step") if isinstance(record, dict) else None
        if isinstance(step, (int, float)) and not isinstance(step, bool):
            records.append((line, record))
        else:
            damaged.append(n)
    return records, damaged


def last_per_step(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The last record of each (kind, step), in step order: a resumed run logs the steps after its
    checkpoint again."""
    last = {(r.get("kind", "train"), r["step"]): r for r in records}
    return sorted(last.values(), key=lambda r: r["step"])


def keep_metrics_until(path: Path, step: int) -> int:
    """Cut `metrics.jsonl` back to what a run had logged when it wrote its checkpoint at `step`:
    training records up to `step`, validations before it (the loop validates after saving, so a
    validation at `step` comes after the checkpoint), other records up to `step`. A line torn by
    a kill is dropped. Returns the number of records removed."""
    if not path.is_file():
        return 0
    records, damaged = read_metric_records(path)
    kept = [line for line, r in records if r["step"] < step or (r["step"] == step and r.get("kind") != "val")]
    dropped = len(damaged) + len(records) - len(kept)
    if dropped:
        atomic_write_text(path, "".join(f"{line}\n" for line in kept))
    return dropped


def on_terminal() -> bool:
    """Whether a redrawn bar can be shown: stdout and stderr both go to a terminal."""
    return all(getattr(s, "isatty", lambda: False)() for s in (sys.stdout, sys.stderr))


def format_duration(seconds: float) -> str:
    """'45s', '3m12s', '2h05m', '3d04h': two units at most, for estimates and time left."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


class LineProgress:
    """The progress of `total` units as whole lines on stdout: one every `every` units (default:
    a twentieth of the total) and one at the end. Takes the calls of a tqdm bar that the search
    and evaluation loops make (update, set_postfix, close; a context manager)."""

    def __init__(self, total: int, desc: str, unit: str, every: int | None = None):
        self.total, self.desc, self.unit = total, desc, unit
        self.every = every or max(1, total // 20)
        self.n, self.postfix = 0, ""
        self.start = time.perf_counter()

    def update(self, n: int = 1) -> None:
        before, self.n = self.n, self.n + n
        if self.n // self.every > before // self.every or self.n == self.total:
            print(self.line(), flush=True)

    def set_postfix(self, values: Mapping[str, Any] | None = None, refresh: bool = False, **kw: Any) -> None:
        self.postfix = ", ".join(f"{k} {v}" for k, v in {**(values or {}), **kw}.items())

    def line(self) -> str:
        elapsed = time.perf_counter() - self.start
        done = f"{self.n}/{self.total} {self.unit}" + (f" ({self.n / self.total:.0%})" if self.total else "")
        left = ""
        if 0 < self.n < self.total:
            left = f", {format_duration(elapsed / self.n * (self.total - self.n))} left"
        return f"{self.desc}: {done}{', ' + self.postfix if self.postfix else ''}; {format_duration(elapsed)}" \
               f" elapsed{left}"

    def close(self) -> None:
        pass

    def __enter__(self) -> "LineProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def progress_bar(total: int, desc: str, unit: str, enabled: bool = True) -> "tqdm | LineProgress | None":
    """A tqdm bar on a terminal, LineProgress elsewhere, None when not `enabled`."""
    if not enabled:
        return None
    if on_terminal():
        return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, file=sys.stderr)
    return LineProgress(total, desc, unit)


class RunLogger:
    """Metrics go to `metrics.jsonl` (one JSON object per event) and TensorBoard; messages go to
    the terminal (through the progress bar, so it is not broken) and to `log.txt`. The loop's
    progress lines (`step_line`) always go to `log.txt`, and to stdout when there is no bar to
    show them (`progress` on, but not on a terminal). Only the main rank writes."""

    def __init__(self, run_dir: "str | Path", enabled: bool = True, tensorboard: bool = True,
                 progress: bool = True, total: int = 0, initial: int = 0, unit: str = "step",
                 resumed_at: "int | None" = None):
        """`resumed_at`: the step of the checkpoint a resumed run starts from; what was logged
        after it (the steps the run repeats, a validation it runs again) is removed first."""
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.writer = None
        self.bar = None
        self.lines_to_stdout = False
        if not enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if resumed_at is not None:
            keep_metrics_until(self.run_dir / METRICS, resumed_at)
        self._metrics = open(self.run_dir / METRICS, "a", buffering=1)
        self._log = open(self.run_dir / LOG, "a", buffering=1)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                # purge_step hides the events of steps after the checkpoint a resumed run repeats
                self.writer = SummaryWriter(str(self.run_dir / "tensorboard"),
                                            purge_step=None if resumed_at is None else resumed_at + 1)
            except ImportError:
                self.info("TensorBoard events are off: `pip install tensorboard` to get them")
        if progress and on_terminal():
            self.bar = tqdm(total=total, initial=initial, unit=unit, dynamic_ncols=True, file=sys.stderr)
        else:
            self.lines_to_stdout = progress

    def _to_file(self, message: str) -> None:
        self._log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")

    def info(self, message: str) -> None:
        if not self.enabled:
            return
        self._to_file(message)
        if self.bar is not None:
            self.bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr, flush=True)

    def step_line(self, message: str) -> None:
        """A plain progress line (step, loss, speed, time left) for files and pipes."""
        if not self.enabled:
            return
        self._to_file(message)
        if self.lines_to_stdout:
            print(message, flush=True)

    def metrics(self, step: int, values: Mapping[str, Any], kind: str = "train") -> None:
        if not self.enabled:
            return
        record = {"kind": kind, "step": step, "time": round(time.time(), 3), **values}
        self._metrics.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)):
                    self.writer.add_scalar(f"{kind}/{k}", v, step)

    def progress(self, n: int = 1, **postfix: Any) -> None:
        if self.bar is not None:
            self.bar.update(n)
            if postfix:
                self.bar.set_postfix(postfix, refresh=False)

    def end_progress(self) -> None:
        """Close the bar once the steps are done, so that what runs after them (a final
        validation, writing results) is said on lines of its own below it."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def close(self) -> None:
        if not self.enabled:
            return
        self.end_progress()
        if self.writer is not None:
            self.writer.close()
        self._metrics.close()
        self._log.close()
