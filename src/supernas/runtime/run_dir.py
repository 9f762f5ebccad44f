"""The run directory: held by one run at a time (a lock for the life of the run), cleared of what
interrupted writes left, refused when it already holds a run (unless resuming), the resolved
config written into it, and the run's logger."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..config import dump_config
from ..errors import SupernasError
from ..utils.file_names import CHECKPOINT, CONFIG, LATENCY_TABLE, LOCK, METRICS, PARETO, SEARCH_STATE
from ..utils.lock import DirectoryLock
from . import distributed as ddp
from .logging import RunLogger

# Files that mark a folder as made by a supernas command once its lock file is gone (a run removes
# it when it ends): a run's checkpoint and metrics (written from its first step: a config.yaml
# alone may be the user's own, which a run would overwrite); a search's state and Pareto set.
RUN_MARKS = (LOCK, CHECKPOINT, METRICS)
SEARCH_MARKS = (LOCK, SEARCH_STATE, PARETO, LATENCY_TABLE)  # a table put there to reuse


def foreign_files(folder: Path, ours: Iterable[str] = (LOCK,)) -> list[str]:
    """The names in `folder` when it holds files and none of `ours` (the marks a supernas command
    leaves: a run's checkpoint or config, an export's arch.json, the lock file a killed command
    left), else []: an empty or missing folder, or one a
    supernas command made, may be written; a folder of the user's own files may not."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        return []
    names = sorted(p.name for p in folder.iterdir())
    return [] if not names or any(name in names for name in ours) else names


def require_own_folder(folder: Path, what: str, ours: Iterable[str] = (LOCK,), force: str = "") -> None:
    """Refuse to write into `folder` (chosen by the setting `what`) when it holds files no supernas
    command wrote there (see `foreign_files`); `force` names the flag that allows it, if any."""
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise SupernasError(f"{what} '{folder}' is a file, not a folder; give {what} a folder")
    names = foreign_files(folder, ours)
    if names:
        shown = ", ".join(names[:5]) + (f", ... ({len(names)} entries)" if len(names) > 5 else "")
        raise SupernasError(f"'{folder}' holds files supernas did not write ({shown}); give {what} a new or empty "
                            f"folder so that none of them is overwritten{f', or add {force}' if force else ''}")


@contextmanager
def locked_dir(folder: Path, what: str, name: str = LOCK, files: str = "", fresh: bool = False,
               ours: Iterable[str] = RUN_MARKS) -> Iterator[None]:
    """`folder`'s lock (the lock file `name` in it) while the block writes there, on every rank of
    a run: a run directory for the life of a run, a search's or a predictor's output. The main rank
    takes it (one process writes the files) and removes the temporary files of writes a kill
    interrupted (of names starting with `files`); every rank learns whether it got the lock, so
    that all stop alike when another process holds it. `what` names the setting that chose the
    folder (run.dir, --out), for the error's fix. A lock on some files of a folder (a predictor in
    a run directory) takes its own lock file `name`. With `fresh`, a folder holding files no supernas
    command wrote (a user's own folder: none of the marks `ours`) is refused before anything is
    written there. The lock file is removed when the block ends."""
    lock, error = None, None
    if ddp.current().is_main:
        try:
            if fresh:  # a run's marks: the message after this one says how to continue it
                require_own_folder(folder, what, ours=ours)
            lock = DirectoryLock(folder, what, name, clean=files).acquire()
        except SupernasError as e:
            error = str(e)
    error = ddp.broadcast_object(error)
    if error is not None:
        raise SupernasError(error)
    try:
        yield
    finally:
        if lock is not None:
            lock.release()


def open_run(run_dir: Path, cfg: Any, resume: bool, total: int, initial: int) -> RunLogger:
    """Refuse to overwrite an existing run unless resuming, write the resolved config (a schema of
    `supernas.config`), and return the run's logger (progress bar over `total` steps from
    `initial`, as `cfg.log` asks; a resumed run's metrics are cut back to its checkpoint's step
    `initial`, so the steps it repeats are logged once).

    Every rank checks, so that none is left waiting at the barrier when the others stop."""
    if not resume and (run_dir / CHECKPOINT).exists():
        raise SupernasError(f"'{run_dir}' already holds a run; continue it with --resume, or choose another run.dir")
    if ddp.current().is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        dump_config(cfg, run_dir / CONFIG)
    ddp.barrier()
    return RunLogger(run_dir, ddp.current().is_main, cfg.log.tensorboard, cfg.log.progress, total=total,
                     initial=initial, resumed_at=initial if resume else None)
