"""`supernas` as a program: what goes wrong becomes one line on stderr and an exit status, in one
place (2: bad input, a full disk, a read-only folder, out of memory; 130: interrupted; a reader that
left a pipe is no error); SupernasWarnings print as one line."""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import Callable, Sequence

from ..errors import RunInterrupted, SupernasError, SupernasWarning
from .commands import COMMANDS
from .parser import apply_threads, parse_args, read_numbers, refuse_empty_paths


def main(argv: Sequence[str] | None = None) -> int:
    python_show = warnings.showwarning
    warnings.showwarning = _one_line_warnings(python_show)
    try:
        return _run(argv)
    finally:
        warnings.showwarning = python_show


def _run(argv: Sequence[str] | None) -> int:
    args = parse_args(argv, numbers=False)
    try:
        read_numbers(args)
        if hasattr(args, "threads"):
            apply_threads(args.threads)
        from ..runtime.interrupts import terminate_as_interrupt

        with terminate_as_interrupt():
            refuse_empty_paths(args)
            code = COMMANDS[args.command](args) or 0
        sys.stdout.flush()  # here, not at exit: a reader that left fails it, and that is handled below
        return code
    except SupernasError as e:
        print(f"supernas {args.command}: error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:  # a training loop names its own fix (runtime/out_of_memory.py); the rest here
        from ..runtime.out_of_memory import is_out_of_memory

        if _TORCH_WITHOUT_NUMPY in str(e):
            print(f"supernas {args.command}: error: {_numpy_fix()}", file=sys.stderr)
            return 2
        if not is_out_of_memory(e):
            raise
        cpu = "can't allocate memory" in str(e)  # the CPU allocator's words; CUDA says "out of memory"
        print(f"supernas {args.command}: error: {_out_of_memory_fix(args, cpu)}", file=sys.stderr)
        return 2
    except RunInterrupted:  # the run said where it stopped and how to continue
        return 130
    except KeyboardInterrupt:
        hint = ""
        # a search saves its state after every generation; a training stopped at once (a second
        # Ctrl-C) continues from its last checkpoint
        saved = {"search": "its state saved after the last finished generation",
                 **dict.fromkeys(("train", "fpnas", "retrain", "finetune"), "its last checkpoint")}
        if args.command in saved and not args.dry_run:
            from ..runtime.interrupts import resume_command

            hint = f"; continue from {saved[args.command]} with: {resume_command()}"
        print(f"supernas {args.command}: interrupted{hint}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader left (`supernas sample ... | head -1`): not an error
        # stdout's buffer cannot be flushed into the closed pipe at exit: point it at nothing
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:  # a full disk met by a write that is not atomic (logs, metrics, plots)
        from pathlib import Path

        from ..utils.io import DISK_FULL, disk_full_message

        if e.errno not in DISK_FULL:
            message = _file_system_message(e)
            if message is None:
                raise
            print(f"supernas {args.command}: error: {message}", file=sys.stderr)
            return 2
        where = Path(e.filename) if isinstance(e.filename, str) else None
        print(f"supernas {args.command}: error: {disk_full_message(where)}", file=sys.stderr)
        return 2


# what torch says when it was built for NumPy 1.x and meets NumPy 2 (torch 2.1 and 2.2; 2.3 reads both)
_TORCH_WITHOUT_NUMPY = "Numpy is not available"


def _numpy_fix() -> str:
    import numpy
    import torch

    return (f"torch {torch.__version__} cannot exchange arrays with the installed NumPy {numpy.__version__} (it was "
            "built for NumPy 1.x): run pip install 'numpy<2', or use torch 2.3 or newer")


def _one_line_warnings(show: Callable) -> Callable:
    """A warnings.showwarning that prints SupernasWarnings as one line naming supernas, and hands
    the others to `show` (Python's)."""
    def showwarning(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, SupernasWarning):
            print(f"supernas: warning: {message}", file=sys.stderr)
        else:
            show(message, category, filename, lineno, file, line)
    return showwarning


def _out_of_memory_fix(args: argparse.Namespace, on_the_cpu: bool = False) -> str:
    flags = [f"--{k.replace('_', '-')} (now {getattr(args, k)})"
             for k in ("batch_size", "bn_batch_size", "latency_batch") if getattr(args, k, None)]
    fix = f"lower {' or '.join(flags)}" if flags else "free the device (another process may hold its memory)"
    on_cpu = "--device cpu" if hasattr(args, "device") else "run.device=cpu"
    if on_the_cpu:  # the CPU allocator's error: --device cpu would change nothing
        return f"out of memory in the CPU's RAM: {fix}"
    return f"out of memory on the device: {fix}, or run it on the CPU with {on_cpu}"


def _file_system_message(e: OSError) -> str | None:
    """One line for what a file system refuses (a read-only folder, a name too long), naming the
    folder or file; None for other errors."""
    import errno
    from pathlib import Path

    name = e.filename if isinstance(e.filename, (str, os.PathLike)) else None
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        where = Path(name) if name is not None else None
        folder = where.parent if where is not None and not where.is_dir() else where
        what = "read-only" if e.errno == errno.EROFS else "not writable by you"
        return (f"the folder '{folder}' is {what} ({e.strerror}); write elsewhere (--out, run.dir) or make it "
                "writable" if folder is not None else f"a folder is {what} ({e.strerror}); write elsewhere")
    if e.errno == errno.ENAMETOOLONG:
        return (f"the name '{name}' is longer than the file system allows ({e.strerror}); choose a shorter one"
                if name is not None else f"a file name is longer than the file system allows ({e.strerror})")
    return None
