"""Atomic file writes: a crash mid-write leaves the previous file intact, never a torn one."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable, IO


def _atomic(path: "str | Path", write: Callable[[IO[bytes]], None]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX and Windows
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: "str | Path", data: bytes) -> Path:
    return _atomic(path, lambda f: f.write(data))


def atomic_write_text(path: "str | Path", text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def atomic_torch_save(obj: Any, path: "str | Path") -> Path:
    import torch

    return _atomic(path, lambda f: torch.save(obj, f))
