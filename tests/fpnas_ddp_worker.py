"""Run by torchrun in test_fpnas_ddp.py: an FP-NAS (or PARSEC) search on 2 gloo ranks; each rank
saves what the test compares (weights, alpha, counters, the Archs and batches it saw).

usage: fpnas_ddp_worker.py OUT RUN_DIR [key=value ...]  (overrides on fpnas_digits_quick.yaml)
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import torch

from supernas.config import FpnasConfig, load_config
from supernas.fpnas.probabilistic import ProbabilisticSearch

CONFIG = Path(__file__).resolve().parents[1] / "src" / "supernas" / "configs" / "fpnas_digits_quick.yaml"


class RecordingSearch(ProbabilisticSearch):
    """The engine unchanged, but remembering per step the Archs drawn and the batch it trained on,
    and how often this rank wrote the final outputs."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.seen: list[dict[str, Any]] = []
        self.finish_calls = 0

    def weight_step(self, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        self.seen.append({"idx": idx.clone(), "batch": int(x.shape[0]), "labels": y.clone()})
        return super().weight_step(x, y, idx)

    def _write_results(self, scored) -> None:
        self.finish_calls += 1
        super()._write_results(scored)


def main(out: str, run_dir: str, overrides: list[str]) -> None:
    cfg = load_config(FpnasConfig, CONFIG, [f"run.dir={run_dir}", "run.device=cpu", "log.progress=false",
                                         "log.tensorboard=false", *overrides])
    search = RecordingSearch(cfg)
    search.fit()
    torch.save({
        "weights": search.net.state_dict(),
        "alpha": [lg.detach().clone() for lg in search.distribution.logits],
        "kind": search.distribution_kind,
        "samples_total": search.samples_total,
        "step": search.step,
        "arch_steps": search.arch_steps,
        "steps_per_epoch": search.steps_per_epoch,
        "train_size": len(search.data.train),
        "seen": search.seen,
        "finish_calls": search.finish_calls,
        # fit() has returned on this rank: the run's outputs must be there for every rank to read
        "result_exists": (Path(run_dir) / "result.json").is_file(),
        "evaluated_exists": (Path(run_dir) / "evaluated.json").is_file(),
    }, os.path.join(out, f"rank{os.environ['RANK']}.pt"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
