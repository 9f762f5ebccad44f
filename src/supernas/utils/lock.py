"""Exclusive locks on output directories: one process writes a run, a search, a predictor or an
export at a time.

The lock is `fcntl.flock` on a lock file in the directory: the OS releases it when the holding
process ends, however it ends (`kill -9` included), so a lock is never left stale. The file holds
the holder's pid for the message a second process gets; a holder that ends normally removes it
(under the lock), and a taker checks that the file it locked is still the one at the path, so
that two processes can never hold locks on two different files of one name. A file a `kill -9`
left is harmless: the next taker locks and then removes it. Where `fcntl` does not exist
(Windows) the lock is a no-op.
"""
from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import Optional

from ..errors import SupernasError
from .file_names import LOCK
from .io import remove_temporaries

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

_HELD: set[int] = set()  # descriptors of the locks this process holds


def _close_inherited() -> None:
    # A forked child (a DataLoader worker) shares the parent's lock through the inherited
    # descriptor, which would keep the lock after the parent released it or was killed.
    for fd in list(_HELD):
        os.close(fd)
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_inherited)


def _same_file(fd: int, path: Path) -> bool:
    """Whether the open file `fd` is the file now at `path` (not one removed or replaced since)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


class DirectoryLock:
    """`with DirectoryLock(folder, "run.dir"):` holds `folder`/`name` exclusively, or raises a
    SupernasError naming the folder and the pid of the process that holds it; `what` names the
    setting that chose the folder, for the fix the message suggests. With `clean` (a file name
    prefix, "" for all), the temporary files that interrupted atomic writes of such files left in
    the folder are removed once the lock is held: no other writer can be making them then."""

    def __init__(self, folder: "str | Path", what: str = "directory", name: str = LOCK,
                 clean: Optional[str] = None):
        self.folder = Path(folder).expanduser()
        self.path = self.folder / name
        self.what, self.clean = what, clean
        self._fd: Optional[int] = None

    def acquire(self) -> "DirectoryLock":
        if fcntl is None or self._fd is not None:
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise SupernasError(f"'{self.folder}' is in use by another supernas process (pid {holder}); wait for "
                                    f"it to end, or choose another {self.what}") from None
            if _same_file(fd, self.path):
                break
            # the holder removed the file between our open and our lock: the lock is on a file
            # nobody else will look at, so take the one now at the path
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        _HELD.add(fd)
        if self.clean is not None:
            remove_temporaries(self.folder, self.clean)
        return self

    def release(self) -> None:
        if self._fd is not None:
            _HELD.discard(self._fd)
            if _same_file(self._fd, self.path):  # removed while still held: no taker can lock it then
                try:
                    self.path.unlink()
                except OSError:  # a read-only folder: the file stays, harmless
                    pass
            os.close(self._fd)  # closing the last descriptor releases the lock
            self._fd = None

    def __enter__(self) -> "DirectoryLock":
        return self.acquire()

    def __exit__(self, exc_type: Optional[type], exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self.release()
