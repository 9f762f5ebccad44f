"""What the loop runs: a *task* (stage 1's supernet, the FP-NAS search, a standalone Arch) says what
a step, a checkpoint, a validation and the end of a run are. `Task` holds what every task declares
and the hooks most leave as they are; `set_up_run` the set-up every task starts with."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from . import distributed as ddp
from .logging import RunLogger
from .precision import precision


class Task:
    """A task of `Loop`. The loop advances `step` (optimizer steps taken) and `seconds` (training
    time, resumed runs included); both are in every checkpoint. A task implements `header`,
    `train_step`, `state_dict`, `load_state_dict` and `finish`; the other hooks do nothing here."""

    step: int = 0
    seconds: float = 0.0
    amp_dtype: torch.dtype | None = None  # the autocast dtype of its steps (None: fp32)
    channels_last: bool = False  # NHWC batches
    cudnn_benchmark: bool = False

    def set_up_run(self, run: Any, resume: bool, fixed_shapes: bool) -> None:
        """What every task does first, from the validated `run` section: join the process group and
        take its device, name the run directory, choose precision and layout (`fixed_shapes`: a
        static model's, see runtime.precision), seed torch and numpy with `run.seed`."""
        self.info, self.device = ddp.setup_distributed(run.device)
        self.run_dir = Path(run.dir).expanduser()
        self.resume = resume
        self.amp_dtype, self.channels_last, self.cudnn_benchmark = precision(run, self.device.type == "cuda",
                                                                             fixed_shapes)
        self.seed = run.seed
        torch.manual_seed(self.seed)
        np.random.seed(self.seed)

    def header(self) -> str:
        """One line for the log before the first step."""
        raise NotImplementedError

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> Mapping[str, torch.Tensor]:
        """One optimizer step on a batch already on the device; the losses to log, as device scalars."""
        raise NotImplementedError

    def log_extra(self, epoch: int) -> dict[str, Any]:
        """Host-side figures for the metrics record of a logged step (the learning rate, ...)."""
        return {}

    def on_epoch_start(self, epoch: int, log: RunLogger) -> None:
        """Before the first step of `epoch`."""

    def on_epoch_end(self, epoch: int) -> None:
        """After the last step of `epoch` (before its checkpoint)."""

    def step_phases(self, stop_step: int) -> list[tuple[str, int, int]]:
        """Steps of different cost, for a dry run's estimate: (what, first step, stop step)."""
        return [("training steps", 0, stop_step)]

    def validate(self) -> dict[str, float] | None:
        """Figures on held-out data, or None when the task validates nothing."""
        return None

    def validation_plan(self) -> tuple[str, int] | None:
        """What one validation runs, in words, and how many forward batches (a dry run's estimate
        scales a shortened validation by it); None when the task validates nothing."""
        return None

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint holds besides the loop's own step, RNG states, time and world size."""
        raise NotImplementedError

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def finish(self, log: RunLogger) -> Any:
        """The end of the run (results, exports), on every rank; its return is the loop's. It says
        in the log what it does when that takes a while (a final validation, an export)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the task holds open (loaders, threads), also after an error."""
