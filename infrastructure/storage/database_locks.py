"""The prompt lock of the database version store, for PostgreSQL and SQLite.

Why these locks, and not a database write lock, is told in ``database.py``.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from autoopt.domain.errors import StorageError
from autoopt.infrastructure.storage.locks import LockTable

PromptLock = Callable[[str], AbstractContextManager[None]]

# SQLite lock files belong to the process, like the file store's.
_FILE_LOCKS = LockTable()


def prompt_lock(
    engine: Engine, translated: Callable[[], AbstractContextManager[None]]
) -> PromptLock:
    """``lock(prompt_id)`` for the engine's database; ``translated`` maps driver errors."""
    if engine.dialect.name == "postgresql":
        return _AdvisoryLocks(engine, translated).hold
    return _sqlite_locks(engine.url.database)


class _AdvisoryLocks:
    """PostgreSQL session-level advisory locks, re-entrant per thread."""

    def __init__(
        self, engine: Engine, translated: Callable[[], AbstractContextManager[None]]
    ) -> None:
        self._engine = engine
        self._translated = translated
        self._local = threading.local()

    @contextmanager
    def hold(self, prompt_id: str) -> Iterator[None]:
        key = advisory_key(prompt_id)
        # Counted per key, not per prompt: two ids that share a key nest
        # without the thread waiting for itself.
        depth: dict[int, int] = self._local.__dict__.setdefault("depth", {})
        if depth.get(key):
            depth[key] += 1
            try:
                yield
            finally:
                depth[key] -= 1
            return
        with self._translated():
            conn = self._engine.connect()
        try:
            with self._translated():
                conn.execution_options(isolation_level="AUTOCOMMIT")
                conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
        except BaseException:
            # Interrupted while waiting, the server may still grant the lock to
            # this session: the session must end, not go back to the pool.
            conn.invalidate()
            conn.close()
            raise
        depth[key] = 1
        try:
            yield
        finally:
            del depth[key]
            try:
                released = conn.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": key}
                ).scalar()
            except SQLAlchemyError:
                released = False
            if not released:
                # Ending the session is what frees a session lock for certain.
                conn.invalidate()
            conn.close()


def advisory_key(prompt_id: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_lock``, the same in every process."""
    digest = hashlib.sha256(b"autoopt prompt lock\0" + prompt_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _sqlite_locks(database: str | None) -> PromptLock:
    if not database or database == ":memory:" or database.startswith("file:"):
        process_lock = threading.RLock()

        @contextmanager
        def hold_in_process(_prompt_id: str) -> Iterator[None]:
            with process_lock:
                yield

        return hold_in_process
    folder = Path(database).resolve().parent / f"{Path(database).name}.locks"

    @contextmanager
    def hold(prompt_id: str) -> Iterator[None]:
        try:
            folder.mkdir(exist_ok=True)
        except OSError as exc:
            raise StorageError(f"{folder}: cannot create ({exc.strerror})") from exc
        name = hashlib.sha256(prompt_id.encode("utf-8")).hexdigest()[:32]
        with _FILE_LOCKS.get(folder / f"{name}.lock").hold():
            yield

    return hold
