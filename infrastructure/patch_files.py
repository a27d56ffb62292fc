"""Patch files: a JSON list of ``PromptPatch`` objects."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from autoopt.domain.errors import DSLFormatError
from autoopt.domain.models import PromptPatch
from autoopt.infrastructure.dsl_files import read_bytes

MAX_PATCH_FILE_BYTES = 50_000_000
_PATCHES = TypeAdapter(list[PromptPatch])


def read_patches(path: Path) -> list[PromptPatch]:
    data = read_bytes(path, MAX_PATCH_FILE_BYTES)
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DSLFormatError(f"{path}: not JSON ({exc})") from exc
    except RecursionError as exc:
        raise DSLFormatError(f"{path}: nested too deeply to be a list of patches") from exc
    try:
        return _PATCHES.validate_python(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
        raise DSLFormatError(f"{path}: {where.lstrip('.') or 'document'}: {first['msg']}") from exc
