"""Where prompt versions live: the canonical file store, and an in-memory fake."""

from __future__ import annotations

from autoopt.infrastructure.storage.filesystem import FileSystemStorage
from autoopt.infrastructure.storage.memory import InMemoryVersionStorage

__all__ = ["FileSystemStorage", "InMemoryVersionStorage"]
