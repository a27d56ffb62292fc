"""Where prompt versions live: the canonical file store, the database store, an in-memory fake."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from autoopt.infrastructure.storage.filesystem import FileSystemStorage
from autoopt.infrastructure.storage.memory import InMemoryVersionStorage

if TYPE_CHECKING:
    from autoopt.infrastructure.storage.database import DatabaseStorage

__all__ = ["DatabaseStorage", "FileSystemStorage", "InMemoryVersionStorage"]


def __getattr__(name: str) -> Any:
    # The database store pulls in SQLAlchemy and Alembic (a second and more to
    # import); commands that only write files (a patched DSL) must not pay it.
    if name == "DatabaseStorage":
        from autoopt.infrastructure.storage.database import DatabaseStorage

        return DatabaseStorage
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
