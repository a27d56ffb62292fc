"""Dify DSL files on disk: read with a size limit, write atomically.

The domain parses and validates (``autoopt.domain.dsl_loading``); this module
only moves bytes, and turns OS errors into ``DSLFormatError`` naming the file.
"""

from __future__ import annotations

import glob
import hashlib
import os
import stat
from pathlib import Path
from typing import Any, BinaryIO

from autoopt.domain.dsl_loading import DifyApp, dump_dsl, load_dsl
from autoopt.domain.errors import ConfigurationError, DSLFormatError
from autoopt.infrastructure.storage.atomic import (
    TEMP_SUFFIX,
    process_alive,
    temp_owner,
    write_atomic,
)


def read_app(path: Path, max_bytes: int) -> DifyApp:
    return load_dsl(read_bytes(path, max_bytes), str(path), max_bytes)


def read_bytes(path: Path, max_bytes: int) -> bytes:
    """A whole input file, refused past ``max_bytes`` without reading it all."""
    try:
        with _open_for_reading(path) as handle:
            # One byte over the limit is enough to refuse; never read a huge file whole.
            data = handle.read(max_bytes + 1)
    except FileNotFoundError as exc:
        raise DSLFormatError(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise DSLFormatError(f"{path}: is a folder, not a file") from exc
    except OSError as exc:
        raise DSLFormatError(f"{path}: cannot read ({exc.strerror})") from exc
    if len(data) > max_bytes:
        raise DSLFormatError(f"{path}: more than the limit of {max_bytes} bytes")
    return data


def _open_for_reading(path: Path) -> BinaryIO:
    """Open ``path``, refusing a named pipe or socket instead of waiting on it.

    A plain ``open`` of a FIFO blocks until some process writes to it, which
    would hang the command; opening non-blocking and looking at what was
    opened costs nothing for a regular file.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
            raise DSLFormatError(f"{path}: not a regular file (a named pipe or socket)")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def write_app(path: Path, document: dict[str, Any]) -> None:
    """Write the document in Dify's export style; readers see the old file or the new one."""
    FileSink(path).write(document)


class FileSink:
    """Writes the patched document to one file, atomically and durably."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def name(self) -> str:
        return str(self.path)

    def write(self, document: dict[str, Any]) -> str:
        data = dump_dsl(document).encode("utf-8")
        try:
            _remove_dead_writers_temp_files(self.path)
            write_atomic(self.path, data, durable=True)
        except OSError as exc:
            raise DSLFormatError(f"{self.path}: cannot write ({exc.strerror})") from exc
        return hashlib.sha256(data).hexdigest()


def refuse_overwriting_input(out_file: Path, source: Path) -> None:
    """``--out`` naming the input itself is refused: the original export would be gone.

    Compares files, not spellings, so a link or a relative path to the input
    is caught too; commands let ``--overwrite-input`` skip this.
    """
    try:
        same = out_file.samefile(source)
    except OSError:  # either is missing: the same file only if they spell one place
        same = out_file.resolve() == source.resolve()
    if same:
        raise ConfigurationError(
            f"{out_file}: --out is the input file; pass --overwrite-input to replace it"
        )


def default_output(source: Path) -> Path:
    """``app.yml`` -> ``app.optimized.yml`` beside it."""
    return source.with_name(f"{source.stem}.optimized{source.suffix or '.yml'}")


def _remove_dead_writers_temp_files(target: Path) -> None:
    """Temp files of ``target`` whose writer died (a killed run) go before the next write.

    Only this target's own temp names are touched, and only when the pid in
    the name is not running, so a concurrent writer's file is left alone.
    """
    for path in target.parent.glob(f".{glob.escape(target.name)}.*{TEMP_SUFFIX}"):
        owner = temp_owner(path)
        if owner is not None and not process_alive(owner):
            path.unlink(missing_ok=True)
