"""The `supernas` parser: every command's arguments as the command declares them, then numbers and
paths read and checked before anything runs."""
from __future__ import annotations

import argparse
import os
from typing import Sequence

from ..errors import SupernasError
from . import inspection, stage2, training  # noqa: F401 - each registers its commands
from .commands import SPECS

# The commands in the order `supernas --help` lists them.
ORDER = ("config", "data", "spaces", "flops", "sample", "train", "fpnas", "retrain", "finetune", "search",
         "predictor", "export", "eval", "import", "report", "quickstart")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    p = argparse.ArgumentParser(prog="supernas", description="Neural architecture search of efficient image "
                                "classifiers: AttentiveNAS and FP-NAS. Numbers on the command line are plain decimals "
                                "(1000, 1e3, 0.5): no underscores (1_000 is refused), finite, whole where a "
                                "count is asked.")
    p.add_argument("--version", action="version", version=f"supernas {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in ORDER:
        spec = SPECS[name]
        s = sub.add_parser(name, help=spec.help, description=spec.help, epilog=spec.epilog)
        spec.arguments(s)
    return p


# The numeric flags: (integer?, minimum, maximum, why the maximum), by dest and, where a command
# bounds a flag its own way, by (command, dest). argparse hands them over as text; they are read by
# utils.numbers (no underscores, finite, whole numbers for counts) before anything is allocated.
_SEED = (True, 0, 2**63 - 1, "a seed of 63 bits")
_NUMERIC: dict = {
    "num_classes": (True, 1, 1_000_000, "more classes than any dataset has"),
    "n": (True, 1, 1_000_000, "the Archs are held in memory"),
    ("predictor", "n"): (True, 1, 100_000, "each Arch is scored by the supernet"),
    ("offline-sets", "n"): (True, 1, 10_000_000, "the ranked Archs are held in memory"),
    "seed": _SEED,
    "min_mflops": (False, None, None, ""), "max_mflops": (False, None, None, ""),
    "workers": (True, 1, 100_000, ""),
    "bn_batches": (True, 1, 1_000_000, ""), "max_batches": (True, 1, None, ""),
    "latency_batch": (True, 1, 65_536, "a batch that large fits no device"),
    "latency_warmup": (True, 0, 1_000_000, ""), "latency_repeats": (True, 1, 1_000_000, ""),
    "latency_window": (False, 0.0, 3600.0, ""),
    "population": (True, None, 1_000_000, "the population is held in memory"),  # the strategy says >= 1
    "mutations": (True, 0, 1_000_000, "each generation's children are held in memory"),
    "crossovers": (True, 0, 1_000_000, "each generation's children are held in memory"),
    "generations": (True, 0, 1_000_000, ""),
    "holdout": (False, 0.0, 1.0, ""), "bin_width": (False, 0.0, None, ""), "pick": (False, 0.0, None, ""),
    "bn_batch_size": (True, 1, 65_536, "a batch that large fits no device"),
    "batch_size": (True, 1, 65_536, "a batch that large fits no device"),
}


def read_numbers(args: argparse.Namespace) -> None:
    """Each numeric flag of `args` read from its text and checked against its bounds, in place."""
    from ..utils.numbers import check_real, parse_int

    action = getattr(args, "action", None)
    for dest, value in vars(args).items():
        rule = _NUMERIC.get((action, dest)) or _NUMERIC.get((args.command, dest)) or _NUMERIC.get(dest)
        if rule is None or value is None:
            continue
        integer, low, high, why = rule
        flag = "-n" if dest == "n" else f"--{dest.replace('_', '-')}"
        if integer:
            setattr(args, dest, parse_int(value, flag, low, high, why))
        else:
            exclusive = dest in ("bin_width", "pick")
            setattr(args, dest, check_real(value, flag, low, high, exclusive_min=exclusive))


# Flags naming a folder or file: an empty one would be the current folder (or nothing at all).
_PATH_FLAGS = ("out", "dir", "data", "predictor", "search", "path", "run", "model", "checkpoint")


def refuse_empty_paths(args: argparse.Namespace) -> None:
    for dest in _PATH_FLAGS:
        value = getattr(args, dest, None)
        if isinstance(value, str) and not value.strip():
            flag = f"--{dest}" if dest in ("out", "dir", "data", "predictor", "search") else dest.upper()
            raise SupernasError(f"{flag} is empty; give it a path (an empty one would be the current folder)")


def parse_args(argv: Sequence[str] | None = None, numbers: bool = True) -> argparse.Namespace:
    """The command line as `supernas` reads it: argparse's reading, key=value settings after options,
    and (with `numbers`) each numeric flag read from its text and checked (a SupernasError if not)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value settings may follow options (`search RUN --budgets 300 data.path=...`): argparse
    # hands the positional list only those before the first option
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    run = getattr(args, "run", None)
    if args.command == "search" and run is not None and "=" in run and not os.path.isdir(run):
        args.overrides, args.run = [run, *args.overrides], None  # no run (a predictor's search): a setting came first
    if numbers:
        read_numbers(args)
    return args


def apply_threads(value: str) -> None:
    """--threads of the commands after training: 'auto' or a positive count."""
    from ..runtime.threads import apply_threads

    if value != "auto" and not (value.isdigit() and int(value) > 0):
        raise SupernasError(f"--threads must be auto or a positive integer, got '{value}'")
    apply_threads(value if value == "auto" else int(value), workers=0)
