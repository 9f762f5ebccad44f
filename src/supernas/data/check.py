"""`supernas data check PATH`: decode every image of a dataset, in parallel, and list the files
that do not decode, before a long run meets them."""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Optional

from .build import read_sources
from .config import DataConfig
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


def check_data(config: DataConfig, workers: Optional[int] = None) -> CheckReport:
    """Decode every image of the train and val/test files of `config`'s data on `workers`
    processes (default: every core)."""
    fmt, *sources = read_sources(config)
    report = CheckReport(fmt)
    paths = [p for s in sources if isinstance(s, ImageFiles) for p, _ in s.samples]
    report.images = sum(len(s) for s in sources if s is not None)
    if not paths:
        report.in_memory = True
        return report
    workers = workers or os.cpu_count() or 1
    if workers == 1:
        reasons = map(_check_file, paths)
    else:
        pool = ProcessPoolExecutor(workers)
        reasons = pool.map(_check_file, paths, chunksize=max(1, min(256, len(paths) // (8 * workers))))
    try:
        for path, reason in zip(paths, reasons):
            if reason is not None:
                report.unreadable.append((path, reason))
    finally:
        if workers != 1:
            pool.shutdown()
    return report
