"""The argument groups several commands share: a training's CONFIG and overrides, stage 2's run
and scoring flags, latency measurement, CPU threads."""
from __future__ import annotations

import argparse

NUM_CLASSES_HELP = "classes of the head, counted in the MFLOPs and parameters (default 1000, ImageNet's)"


def run_args(s: argparse.ArgumentParser, configs: str, example: str, optional: bool = False) -> None:
    """CONFIG [key=value ...] [--resume] [--dry-run], as every training command takes them."""
    s.add_argument("config", nargs="?" if optional else None, help=f"YAML config (see {configs})")
    s.add_argument("overrides", nargs="*", metavar="key=value", help=f"e.g. {example}")
    s.add_argument("--resume", action="store_true", help="continue the run in run.dir from its checkpoint")
    s.add_argument("--dry-run", action="store_true", help="print the resolved config, the data, the steps and "
                   "an estimate of the wall time from a few timed steps, then exit without writing the run")


def force_arg(s: argparse.ArgumentParser, what: str, actions: str = "") -> None:
    """--force: replace an existing output file that is not `what` (never a run's own files); `actions`:
    the actions of the command it applies to, when not all."""
    s.add_argument("--force", action="store_true", help=f"{actions + ': ' if actions else ''}replace an existing "
                   f"{what} (a run's own files are never replaced)")


def threads_arg(s: argparse.ArgumentParser) -> None:
    s.add_argument("--threads", default="auto", help="CPU threads of torch's operators (as run.threads of the "
                   "training commands; auto: the cores this process may use)")


def latency_args(s: argparse.ArgumentParser, what: str, statistic: str) -> None:
    s.add_argument("--latency-batch", default=1, help="batch size of the latency measurements")
    s.add_argument("--latency-warmup", default=10, help=f"untimed runs of {what} before timing")
    s.add_argument("--latency-repeats", default=30, help=f"timed runs of {what} ({statistic})")


def stage2_args(s: argparse.ArgumentParser, run_optional: bool = False) -> None:
    """RUN [data.KEY=VALUE ...] and how Archs are scored on it: BN re-calibration, device, seed, threads."""
    if run_optional:
        s.add_argument("run", nargs="?", help="run directory of `supernas train` or `supernas import` (none: "
                       "--predictor scores alone, over --space)")
    else:
        s.add_argument("run", help="run directory of `supernas train` or `supernas import`")
    s.add_argument("overrides", nargs="*", metavar="data.KEY=VALUE",
                   help="data settings replacing the run's, e.g. data.path=~/imagenet")
    s.add_argument("--bn-batches", default=64, help="training batches for BN re-calibration")
    s.add_argument("--max-batches", help="evaluate on at most this many batches of the split")
    s.add_argument("--device", default="auto", help="where Archs are scored: auto (a GPU when there is one), "
                   "cpu, cuda, cuda:N")
    s.add_argument("--seed", default=0, help="seed of the command's draws (Archs sampled, data order)")
    threads_arg(s)
