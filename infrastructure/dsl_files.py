"""Dify DSL files on disk: read with a size limit, write atomically.

The domain parses and validates (``autoopt.domain.dsl_loading``); this module
only moves bytes, and turns OS errors into ``DSLFormatError`` naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autoopt.domain.dsl_loading import DifyApp, dump_dsl, load_dsl
from autoopt.domain.errors import DSLFormatError
from autoopt.infrastructure.storage.atomic import write_atomic


def read_app(path: Path, max_bytes: int) -> DifyApp:
    try:
        with path.open("rb") as handle:
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
    return load_dsl(data, str(path), max_bytes)


def write_app(path: Path, document: dict[str, Any]) -> None:
    """Write the document in Dify's export style; readers see the old file or the new one."""
    try:
        write_atomic(path, dump_dsl(document).encode("utf-8"), durable=True)
    except OSError as exc:
        raise DSLFormatError(f"{path}: cannot write ({exc.strerror})") from exc
