"""Stopping a run without losing its work: SIGINT (Ctrl-C) and SIGTERM (what a cluster scheduler
sends before it kills a job) become a request that the loop honours at the next step boundary,
with a checkpoint and the command that continues the run."""
from __future__ import annotations

import os
import shlex
import shutil
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Iterator, Sequence

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """While entered, the first SIGINT or SIGTERM sets `signal` (the loop checks it after each
    step); a second one stops at once (KeyboardInterrupt). Handlers are installed only in the
    main thread, where Python delivers signals; elsewhere the request never comes."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for s in SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)  # type: ignore[arg-type]
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signum
        print(f"\n{signal.Signals(signum).name}: stopping after this step with a checkpoint "
              "(send it again to stop at once, losing the steps since the last checkpoint)", file=sys.stderr,
              flush=True)

    @property
    def requested(self) -> bool:
        return self.signal is not None


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """While entered (in the main thread), SIGTERM raises KeyboardInterrupt as Ctrl-C does: the
    commands without a training loop (search, predictor) then end with the same message and exit
    status on a scheduler's stop as on Ctrl-C. A training loop's StopRequest takes over inside."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _program(argv0: str) -> list[str] | None:
    """How the command was started: `supernas`, `python -m supernas.cli`, or None (not the CLI)."""
    path = Path(argv0)
    if path.name == "supernas":
        return ["supernas"]
    if path.name == "__main__.py" and (path.parent.name == "supernas"
                                       or (path.parent.name == "cli" and path.parent.parent.name == "supernas")):
        python = Path(sys.executable).name
        return [python if shutil.which(python) == sys.executable else sys.executable, "-m", "supernas.cli"]
    return None


def resume_command(argv: Sequence[str] | None = None) -> str:
    """The exact command line that continues this run (`--resume` added), rebuilt from sys.argv;
    under torchrun the launcher's own options cannot be seen, so they are left for the user to
    repeat. A run started from Python (not the CLI) is continued by the same call with resume=True."""
    argv = list(sys.argv if argv is None else argv)
    head = _program(argv[0]) if argv else None
    if head is None:
        return "the same call with resume=True"
    args = argv[1:] + ([] if "--resume" in argv[1:] else ["--resume"])
    if "TORCHELASTIC_RUN_ID" in os.environ:  # started by torchrun, which runs `python -m supernas.cli`
        return f"torchrun <the same options> -m supernas.cli {shlex.join(args)}"
    return shlex.join(head + args)

