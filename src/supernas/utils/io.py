"""Atomic file writes: a crash mid-write leaves the previous file intact, never a torn one.

A write goes to a hidden temporary file beside the target (`.NAME.RANDOM.tmp`) and replaces the
target in one rename. An exception or Ctrl-C removes the temporary file; a `kill -9` cannot, so
whoever next takes the directory's lock removes what is left (`remove_temporaries`). A full disk
is a SupernasError naming the file and the space it needed, not a traceback.
"""
from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import IO, Any, Callable, Optional, cast

from ..errors import SupernasError

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def atomic_write(path: "str | Path", write: Callable[[IO[bytes]], object],
                 size: Optional[Callable[[], int]] = None) -> Path:
    """Write `path` through `write(file)` atomically; `size()` tells a full-disk error how many
    bytes the file needed (asked only then)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Named before it exists, so an interrupt at any point below finds the name to remove.
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as for open()
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX and Windows
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno in DISK_FULL:
            raise SupernasError(disk_full_message(path, size)) from None
        raise
    return path


def disk_full_message(path: Optional[Path], size: Optional[Callable[[], int]] = None) -> str:
    """One line: which file could not be written, how much it needed and how much is free."""
    if path is None:
        return "no space left on the device (a write failed); free some space or write elsewhere"
    try:
        free = f"{_human(shutil.disk_usage(path.parent).free)} free"
    except OSError:
        free = "free space unknown"
    needed = f"{_human(size())} needed, " if size is not None else ""
    return f"no space left on the device to write '{path}' ({needed}{free}); free some space or write elsewhere"


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def atomic_write_bytes(path: "str | Path", data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data), size=lambda: len(data))


def atomic_write_text(path: "str | Path", text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


class _ByteCounter:
    """A sink that only counts what is written: the size a save would have, without the disk."""

    def __init__(self) -> None:
        self.n = 0

    def write(self, b: bytes) -> int:
        self.n += len(b)
        return len(b)

    def flush(self) -> None:
        pass


def atomic_torch_save(obj: Any, path: "str | Path") -> Path:
    import torch

    def size() -> int:
        sink = _ByteCounter()
        torch.save(obj, cast("IO[bytes]", sink))  # torch.save only writes to it (and flushes)
        return sink.n

    return atomic_write(path, lambda f: torch.save(obj, f), size=size)


# .NAME.RANDOM.tmp: 12 hex digits (ours), or the 8 characters of tempfile.mkstemp (earlier releases)
TEMPORARY = re.compile(r"\..+\.([0-9a-f]{12}|[a-z0-9_]{8})\.tmp")


def remove_temporaries(folder: "str | Path", prefix: str = "") -> list[Path]:
    """Remove the temporary files that interrupted atomic writes left directly in `folder`, those
    of files named `prefix`... only when given (call it only while holding the lock on what they
    belong to: the temporary files of another writer look the same)."""
    removed = []
    for p in Path(folder).glob(f".{prefix}*.tmp"):
        if TEMPORARY.fullmatch(p.name) and p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def file_sha256(path: "str | Path") -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
