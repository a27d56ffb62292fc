"""Exclusive file locks held by the process, re-entrant for the thread that holds them.

The OS lock (``fcntl.flock`` on POSIX, ``msvcrt.locking`` on Windows) makes
separate processes take turns; a ``threading.RLock`` in front of it makes
threads of one process take turns and lets the holder enter again (the version
manager holds a prompt's lock while the store's own ``save_version`` takes it).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _lock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_LOCK, 1)

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


class FileLock:
    """One lock file; ``hold()`` blocks until this process and thread own it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None

    @contextmanager
    def hold(self) -> Iterator[None]:
        with self._thread_lock:
            if self._depth == 0:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    _lock(fd)
                except BaseException:
                    os.close(fd)
                    raise
                self._fd = fd
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0 and self._fd is not None:
                    # Closing the descriptor also drops the lock should unlock fail.
                    try:
                        _unlock(self._fd)
                    finally:
                        os.close(self._fd)
                        self._fd = None


class LockTable:
    """One ``FileLock`` per path, shared by every caller in the process."""

    def __init__(self) -> None:
        self._locks: dict[Path, FileLock] = {}
        self._guard = threading.Lock()

    def get(self, path: Path) -> FileLock:
        with self._guard:
            lock = self._locks.get(path)
            if lock is None:
                lock = self._locks[path] = FileLock(path)
            return lock
