"""What a run reports: a progress bar, `metrics.jsonl`, TensorBoard events and a plain log file."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Mapping

from tqdm.auto import tqdm

from ..utils.io import atomic_write_text

METRICS = "metrics.jsonl"


def keep_metrics_until(path: Path, step: int) -> int:
    """Cut `metrics.jsonl` back to what a run had logged when it wrote its checkpoint at `step`:
    training records up to `step`, validations before it (the loop validates after saving, so a
    validation at `step` comes after the checkpoint), other records up to `step`. A line torn by
    a kill is dropped. Returns the number of records removed."""
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
            at = int(record["step"])
        except (ValueError, KeyError, TypeError):
            dropped += 1
            continue
        if at < step or (at == step and record.get("kind") != "val"):
            kept.append(line)
        else:
            dropped += 1
    if dropped:
        atomic_write_text(path, "".join(f"{line}\n" for line in kept))
    return dropped


class RunLogger:
    """Metrics go to `metrics.jsonl` (one JSON object per event) and TensorBoard; messages go to
    the terminal (through the progress bar, so it is not broken) and to `log.txt`. Only the
    main rank writes."""

    def __init__(self, run_dir: "str | Path", enabled: bool = True, tensorboard: bool = True,
                 progress: bool = True, total: int = 0, initial: int = 0, unit: str = "step",
                 resumed_at: "int | None" = None):
        """`resumed_at`: the step of the checkpoint a resumed run starts from; what was logged
        after it (the steps the run repeats, a validation it runs again) is removed first."""
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.writer = None
        self.bar = None
        if not enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if resumed_at is not None:
            keep_metrics_until(self.run_dir / METRICS, resumed_at)
        self._metrics = open(self.run_dir / METRICS, "a", buffering=1)
        self._log = open(self.run_dir / "log.txt", "a", buffering=1)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                # purge_step hides the events of steps after the checkpoint a resumed run repeats
                self.writer = SummaryWriter(str(self.run_dir / "tensorboard"),
                                            purge_step=None if resumed_at is None else resumed_at + 1)
            except ImportError:
                self.info("TensorBoard events are off: `pip install tensorboard` to get them")
        if progress:
            self.bar = tqdm(total=total, initial=initial, unit=unit, dynamic_ncols=True, file=sys.stderr,
                            disable=None)

    def info(self, message: str) -> None:
        if not self.enabled:
            return
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        self._log.write(f"{stamp} {message}\n")
        if self.bar is not None:
            self.bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr)

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

    def close(self) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()
        self._metrics.close()
        self._log.close()
