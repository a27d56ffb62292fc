"""Atomic file replacement: a reader sees the old file or the new one, never a torn one."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

TEMP_SUFFIX = ".tmp"


def temp_name(target: Path) -> Path:
    """A temp file beside ``target``; the pid in its name tells cleanup whose it is."""
    return target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}")


def temp_owner(path: Path) -> int | None:
    """The pid that wrote a temp file named by ``temp_name``, or None."""
    parts = path.name.split(".")
    if not path.name.endswith(TEMP_SUFFIX) or len(parts) < 4:
        return None
    try:
        return int(parts[-3])
    except ValueError:
        return None


def write_atomic(target: Path, data: bytes, *, durable: bool = True) -> None:
    """Write to a temp file in the same folder, then rename it over ``target``.

    ``durable`` adds fsync of the file before the rename and of the folder
    after it, so the new content survives a power cut once this returns.
    """
    temp = temp_name(target)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(target.parent)


def fsync_dir(folder: Path) -> None:
    if os.name == "nt":  # pragma: no cover - Windows cannot open a folder
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True
