"""Prompt versions to bytes and back: the JSON that a version file holds."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import ValidationError

from autoopt.domain.errors import StorageError
from autoopt.domain.models import PromptVersion


def encode_version(version: PromptVersion) -> bytes:
    return version.model_dump_json(indent=2).encode("utf-8") + b"\n"


def content_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decode_version(data: bytes, source: Path | str) -> PromptVersion:
    """Parse a version file; a corrupt one is an error naming it, never data."""
    try:
        return PromptVersion.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "document"
        raise StorageError(f"{source}: corrupt version file ({where}: {first['msg']})") from exc
