"""`supernas data check PATH`: decode every image of a dataset, in parallel, and list the files
that do not decode, before a long run meets them."""
from __future__ import annotations

import multiprocessing
import multiprocessing.pool
import os
import signal
from dataclasses import dataclass, field
from typing import Iterator, Optional

from .build import read_sources
from .config import DataConfig, as_data_config
from .datasets import ImageFiles, decode_image


@dataclass
class CheckReport:
    format: str
    images: int = 0
    in_memory: bool = False  # a format read whole into memory: reading it checked every image
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (file, why)


def _check_file(path: str) -> Optional[str]:
    """None when the image at `path` decodes, else why not (in a worker process)."""
    return decode_image(path)[1]


_STOPS = {signal.SIGINT, signal.SIGTERM}


def _worker_signals() -> None:
    # A forked worker inherits the CLI's handlers, which turn SIGTERM into KeyboardInterrupt: each
    # worker would print a traceback. The main process alone handles Ctrl-C and SIGTERM (and ends
    # the workers); a SIGTERM sent to the whole process group just ends a worker, silently. The
    # worker started with both blocked (_start_pool), so one sent before this ran waits until now.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOPS)


def _start_pool(workers: int) -> "multiprocessing.pool.Pool":
    """A pool whose workers, and the thread that replaces them, start with Ctrl-C and SIGTERM
    blocked: a signal that reached a worker before `_worker_signals` would print the CLI's traceback."""
    before = signal.pthread_sigmask(signal.SIG_BLOCK, _STOPS) if hasattr(signal, "pthread_sigmask") else None
    try:
        return multiprocessing.get_context().Pool(workers, initializer=_worker_signals)
    finally:
        if before is not None:  # the main process handles them, as before
            signal.pthread_sigmask(signal.SIG_SETMASK, before)


def check_data(config: DataConfig, workers: Optional[int] = None) -> CheckReport:
    """Decode every image of the train and val/test files of `config`'s data on `workers`
    processes (default: every core)."""
    fmt, *sources = read_sources(as_data_config(config))
    report = CheckReport(fmt)
    paths = [p for s in sources if isinstance(s, ImageFiles) for p, _ in s.samples]
    report.images = sum(len(s) for s in sources if s is not None)
    if not paths:
        report.in_memory = True
        return report
    # never more processes than cores or files (`--workers 10000` for 24 files started 10000)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    workers = max(1, min(workers or cores, cores, len(paths)))
    pool = None
    reasons: Iterator[Optional[str]]
    if workers == 1:
        reasons = map(_check_file, paths)
    else:  # a Pool replaces a worker that died and can be ended at once (terminate) on an interrupt
        pool = _start_pool(workers)
        reasons = pool.imap(_check_file, paths, chunksize=max(1, min(256, len(paths) // (8 * workers))))
    finished = False
    try:
        for path, reason in zip(paths, reasons):
            if reason is not None:
                report.unreadable.append((path, reason))
        finished = True
    finally:
        if pool is not None:
            if finished:
                pool.close()
            else:  # interrupted (Ctrl-C, SIGTERM) or failed: the decodes still queued are not waited for
                pool.terminate()
            pool.join()
    return report
