"""The trainings: AttentiveNAS stage 1 (`train`), FP-NAS / PARSEC (`fpnas`), a standalone Arch
(`retrain`, `finetune`), and the quickstart that runs both stages on the built-in digits."""
from __future__ import annotations

import argparse
from typing import Any, Callable

from .arguments import run_args
from .commands import command


def _train_arguments(s: argparse.ArgumentParser) -> None:
    run_args(s, "configs/attentivenas_*.yaml; defaults fill what it leaves out", "train.epochs=10 data.path=~/cifar10",
             optional=True)


@command("train", "AttentiveNAS stage 1: train a supernet (sandwich rule, in-place distillation, "
         "attentive sampling); under torchrun on many GPUs or nodes", _train_arguments)
def cmd_train(args: argparse.Namespace) -> None:
    from ..config import SupernetConfig
    from ..train.supernet import SupernetTrainer

    run_dir = _fit_configured(SupernetTrainer, SupernetConfig, args)
    if run_dir is not None:
        print(f"supernet trained: {run_dir}/checkpoint.pt")


def _fpnas_arguments(s: argparse.ArgumentParser) -> None:
    run_args(s, "configs/fpnas_*.yaml", "train.epochs=10 data.path=~/cifar10", optional=True)


@command("fpnas", "FP-NAS (or PARSEC with search.mode=parsec): learn a distribution over Archs with the "
         "shared weights", _fpnas_arguments)
def cmd_fpnas(args: argparse.Namespace) -> None:
    from ..config import FpnasConfig
    from ..fpnas.probabilistic import ProbabilisticSearch

    run_dir = _fit_configured(ProbabilisticSearch, FpnasConfig, args)
    if run_dir is not None:
        print(f"search done: {run_dir}/result.json (most likely Arch and top-N), plots {run_dir}/search.png, "
              f"{run_dir}/arch.png")


def _standalone_command(name: str, help: str, source: str, source_help: str, configs: str, example: str,
                        trainer: str) -> Callable[[argparse.Namespace], None]:
    """retrain ARCH and finetune MODEL: one Arch trained as a standalone model, from a `source` the
    function `trainer` of train.standalone turns into its trainer."""
    def arguments(s: argparse.ArgumentParser) -> None:
        s.add_argument(source, help=source_help)
        run_args(s, configs, example, optional=True)

    @command(name, help, arguments)
    def handler(args: argparse.Namespace) -> None:
        from ..train import standalone

        config, overrides = _config_and_overrides(args)
        result = _fit_or_dry_run(getattr(standalone, trainer)(getattr(args, source), config, overrides,
                                                              resume=args.resume), args)
        if result is not None:
            _print_standalone(result)
    return handler


cmd_retrain = _standalone_command(
    "retrain", "train one Arch from scratch as a standalone model (label smoothing, AutoAugment, EMA, optional "
    "stochastic depth and distillation) and export it", "arch", "an FP-NAS run directory, an export directory, a "
    "JSON file or string with an Arch (give its space with space=... when the file has none), a0..a6, or smallest / "
    "largest", "configs/retrain_*.yaml", "train.epochs=10 data.path=~/cifar10", "retrain_trainer")
cmd_finetune = _standalone_command(
    "finetune", "train an exported model further (optionally distilling from a supernet's largest Arch with "
    "train.teacher=RUN) and export it again", "model", "directory written by `supernas export` (or RUN/export of "
    "`supernas retrain`)", "configs/finetune_*.yaml", "train.teacher=runs/supernet", "finetune_trainer")


def _quickstart_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("--dir", default="runs/quickstart", help="the run's folder (new or empty)")
    s.add_argument("--device", default="auto", help="auto (a GPU when there is one), cpu, cuda, cuda:N")


@command("quickstart", "stage 1 and stage 2 on the built-in digits, on CPU in a few minutes", _quickstart_arguments)
def cmd_quickstart(args: argparse.Namespace) -> None:
    from ..quickstart import quickstart

    quickstart(args.dir, device=args.device)


def _fit_configured(trainer: Callable[..., Any], schema: type, args: argparse.Namespace) -> Any:
    """`_fit_or_dry_run` of the `trainer` of the config (a `schema`) that CONFIG and the overrides give."""
    from ..config import load_config

    return _fit_or_dry_run(trainer(load_config(schema, *_config_and_overrides(args)), resume=args.resume), args)


def _fit_or_dry_run(trainer: Any, args: argparse.Namespace) -> Any:
    """What `trainer.fit()` returns; with --dry-run, None after printing the resolved config, the
    data, the steps and an estimate of the wall time instead."""
    if not args.dry_run:
        return trainer.fit()
    from ..runtime.dry_run import dry_run

    print("\n".join(dry_run(trainer.loop(), args.resume)))
    return None


def _config_and_overrides(args: argparse.Namespace) -> tuple[str | None, list[str]]:
    """CONFIG is optional before the overrides: a first word with '=' that is no file is an override."""
    from pathlib import Path

    if args.config is not None and "=" in args.config and not Path(args.config).is_file():
        return None, [args.config, *args.overrides]
    return args.config, list(args.overrides)


def _print_standalone(r: dict) -> None:
    ema = f", EMA {r['top1_ema']:.2f}" if r["top1_ema"] is not None else ""
    print(f"top-1 {r['top1']:.2f} ({r['weights']} weights; raw {r['top1_raw']:.2f}{ema}), {r['mflops']:.1f} MFLOPs, "
          f"{r['steps']} steps in {r['seconds']:.0f} s; model: {r['export']}, result: {r['run_dir']}/result.json")
