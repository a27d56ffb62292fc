"""Folder names for prompt ids, which are arbitrary user text.

The name is the first 32 hex digits of the id's SHA-256 (128 bits: no two ids
collide in practice), then a short readable slug of safe ASCII characters. The
hash comes first, so the name never starts with a dot or a dash, is never a
Windows-reserved device name (``CON``, ``NUL``, ...), and ids that differ only
in case get different folders even on case-insensitive file systems. Nothing
from the id other than ``[a-z0-9_-]`` reaches the file system, so ``../``,
``/``, NUL and the like cannot escape the store.
"""

from __future__ import annotations

import hashlib
import re

_UNSAFE = re.compile(r"[^a-z0-9_-]+")
SLUG_LENGTH = 40


def prompt_hash(prompt_id: str) -> str:
    return hashlib.sha256(prompt_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def prompt_dir_name(prompt_id: str) -> str:
    slug = _UNSAFE.sub("-", prompt_id.lower()).strip("-")[:SLUG_LENGTH].rstrip("-")
    digest = prompt_hash(prompt_id)
    return f"{digest}-{slug}" if slug else digest


def shard_parts(prompt_id: str) -> tuple[str, str]:
    """Two levels of 256 folders each, for stores with more than ~10k prompts."""
    digest = prompt_hash(prompt_id)
    return digest[:2], digest[2:4]
