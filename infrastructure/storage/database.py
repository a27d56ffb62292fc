"""Prompt versions in the SQL database (``storage.backend: database``).

For workers that share a database but no file system. The contract is the file
store's: a version is saved whole or not at all, its number is the next one
after every version and tombstone the prompt ever had (even with writers in
other processes or on other machines), the latest version is one primary-key
read, and parsed versions go through an LRU cache (they never change, and a
number is never given out twice, so a cached entry cannot go stale).

Tables (``infrastructure/tables.py``, migration 0007):

    prompt_versions(prompt_id, version, document, content_sha256, deleted_at)
    prompt_heads(prompt_id, latest_version, next_version)

``document`` is exactly what ``encode_version`` gives (what a version file
holds), so ``content_sha256`` agrees with the file store for the same version.
A save is one transaction: a compare-and-set on the head row (``next_version``
must be the number being saved), then the insert. A deleted version stays as a
tombstone row without its document.

The prompt lock (``locked``) must span a caller's whole "number, save, append
the event" step, and the event goes to the log over another connection, so
the lock must not be a database write lock, or the log's append would wait for
it forever:

- PostgreSQL: a session-level advisory lock, ``pg_advisory_lock(key)`` with
  key a stable signed 64-bit hash of the prompt id, taken on a pooled
  connection of its own in autocommit mode (no transaction stays open while
  it is held) and released when the outermost ``with`` ends. Every worker on
  every machine that reaches the database takes the same key.
- SQLite: an ``flock`` on a file per prompt in ``<database file>.locks/``,
  beside the database: every process that can open the file can take it, and
  it never touches SQLite's own locks. A database named ``:memory:`` or by a
  ``file:`` URI gets a lock inside the process only.

Either lock (``database_locks.py``) is re-entrant for the thread that holds it. Saves and deletes do
not need it: their transaction (``BEGIN IMMEDIATE`` on SQLite, a row lock on
the head in PostgreSQL) keeps the numbers unique on its own, and a writer that
raced past a number gets ``ConcurrencyError``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, LargeBinary, and_, cast, func, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from autoopt.domain.errors import (
    ConcurrencyError,
    ConfigurationError,
    ImmutableRecordError,
    NotFoundError,
    StorageError,
)
from autoopt.domain.models import PromptVersion
from autoopt.infrastructure.db import write_transaction
from autoopt.infrastructure.settings import describe_url
from autoopt.infrastructure.storage.codec import content_sha256, decode_version, encode_version
from autoopt.infrastructure.storage.database_locks import prompt_lock
from autoopt.infrastructure.storage.lru import LRUCache
from autoopt.infrastructure.tables import prompt_heads, prompt_versions

_live = prompt_versions.c.deleted_at.is_(None)


class DatabaseStorage:
    def __init__(self, engine: Engine, use_cache: bool = True, cache_size: int = 128) -> None:
        self._engine = engine
        self._where = describe_url(str(engine.url))
        self._cache: LRUCache[tuple[str, int], PromptVersion] = LRUCache(
            cache_size if use_cache else 0
        )
        if engine.dialect.name not in ("postgresql", "sqlite"):
            raise ConfigurationError(
                "storage.backend 'database' supports SQLite and PostgreSQL, "
                f"not {engine.dialect.name}"
            )
        self._lock = prompt_lock(engine, self._translated)

    def close(self) -> None:
        """Nothing to flush: every save is committed. The engine belongs to the caller."""

    # -- cache counters -------------------------------------------------------------

    @property
    def hits(self) -> int:
        return self._cache.hits

    @property
    def misses(self) -> int:
        return self._cache.misses

    def get_hit_rate(self) -> float:
        return self._cache.get_hit_rate()

    # -- versions -------------------------------------------------------------------

    def locked(self, prompt_id: str) -> AbstractContextManager[None]:
        return self._lock(prompt_id)

    def save_version(self, version: PromptVersion) -> str:
        """Store a new version in one transaction; returns the SHA-256 of its document."""
        prompt_id, number = version.prompt_id, version.version
        data = encode_version(version)
        digest = content_sha256(data)
        with self._translated(), write_transaction(self._engine) as conn:
            # Compare-and-set: only the writer that saw next_version == number
            # moves the head, and the row lock it takes makes others wait.
            moved = conn.execute(
                update(prompt_heads)
                .where(prompt_heads.c.prompt_id == prompt_id, prompt_heads.c.next_version == number)
                .values(latest_version=number, next_version=number + 1)
            ).rowcount
            if not moved:
                taken = conn.execute(
                    select(prompt_heads.c.next_version).where(prompt_heads.c.prompt_id == prompt_id)
                ).scalar_one_or_none()
                if taken is not None or number != 1:
                    high = (taken or 1) - 1
                    raise ConcurrencyError(
                        f"prompt {prompt_id!r} is at version {high}; the next version is "
                        f"{high + 1}, not {number}"
                    )
                # A rival creating the same prompt makes this insert fail on
                # the primary key: ConcurrencyError, below.
                conn.execute(
                    insert(prompt_heads).values(
                        prompt_id=prompt_id, latest_version=1, next_version=2
                    )
                )
            conn.execute(
                insert(prompt_versions).values(
                    prompt_id=prompt_id,
                    version=number,
                    document=data.decode("utf-8"),
                    content_sha256=digest,
                )
            )
        self._cache.put((prompt_id, number), version)
        return digest

    def get_version(self, prompt_id: str, version: int) -> PromptVersion:
        cached = self._cache.get((prompt_id, version))
        if cached is not None:
            return cached
        document = self._document(prompt_id, version)
        loaded = decode_version(document.encode("utf-8"), self._row_name(prompt_id, version))
        if (loaded.prompt_id, loaded.version) != (prompt_id, version):
            raise StorageError(
                f"{self._row_name(prompt_id, version)}: corrupt version "
                f"(holds {loaded.prompt_id!r} version {loaded.version})"
            )
        self._cache.put((prompt_id, version), loaded)
        return loaded

    def content_sha256(self, prompt_id: str, version: int) -> str:
        """SHA-256 of the stored document, as ``VersionCreated`` records it."""
        return content_sha256(self._document(prompt_id, version).encode("utf-8"))

    def get_latest_version(self, prompt_id: str) -> PromptVersion | None:
        latest = self.latest_version_number(prompt_id)
        return self.get_version(prompt_id, latest) if latest else None

    def latest_version_number(self, prompt_id: str) -> int:
        return self._head(prompt_id)[0]

    def next_version_number(self, prompt_id: str) -> int:
        """One past every version and tombstone: the only number a save accepts."""
        return self._head(prompt_id)[1]

    def list_versions(self, prompt_id: str) -> list[int]:
        return self._numbers(prompt_id, _live)

    def delete_version(self, prompt_id: str, version: int) -> None:
        """Drop a version's document, keeping its row as a tombstone; the number stays taken."""
        with self._translated(), write_transaction(self._engine) as conn:
            # Lock the head first, as a save does, so that the latest computed
            # below includes a save that committed while this one waited.
            conn.execute(
                select(prompt_heads.c.prompt_id)
                .where(prompt_heads.c.prompt_id == prompt_id)
                .with_for_update()
            )
            removed = conn.execute(
                update(prompt_versions)
                .where(
                    prompt_versions.c.prompt_id == prompt_id,
                    prompt_versions.c.version == version,
                    _live,
                )
                .values(document=None, deleted_at=datetime.now(UTC))
            ).rowcount
            if not removed:
                raise NotFoundError(f"prompt {prompt_id!r} has no version {version}")
            latest = conn.execute(
                select(func.coalesce(func.max(prompt_versions.c.version), 0)).where(
                    prompt_versions.c.prompt_id == prompt_id, _live
                )
            ).scalar_one()
            conn.execute(
                update(prompt_heads)
                .where(prompt_heads.c.prompt_id == prompt_id)
                .values(latest_version=latest)
            )
        self._cache.discard((prompt_id, version))

    def deleted_versions(self, prompt_id: str) -> list[int]:
        return self._numbers(prompt_id, prompt_versions.c.deleted_at.is_not(None))

    def list_prompts(self) -> list[str]:
        """Every prompt with a live version, in code-point order whatever the collation."""
        query = select(prompt_heads.c.prompt_id).where(prompt_heads.c.latest_version > 0)
        with self._translated(), self._engine.connect() as conn:
            return sorted(conn.execute(query).scalars())

    # -- maintenance ----------------------------------------------------------------

    def get_storage_stats(self) -> dict[str, Any]:
        size = (
            func.octet_length(prompt_versions.c.document)
            if self._engine.dialect.name == "postgresql"
            else func.length(cast(prompt_versions.c.document, LargeBinary))
        )
        query = select(
            func.count(func.distinct(prompt_versions.c.prompt_id)).filter(_live),
            func.count().filter(_live),
            func.count().filter(prompt_versions.c.deleted_at.is_not(None)),
            func.coalesce(func.sum(size), 0),
        )
        with self._translated(), self._engine.connect() as conn:
            prompts, versions, deleted, size_total = conn.execute(query).one()
        return {
            "backend": "database",
            "database": self._where,
            "prompts": prompts,
            "versions": versions,
            "deleted_versions": deleted,
            "bytes": int(size_total),
            # prompt_heads is this store's index, and it is never optional.
            "index": True,
            "cache_size": self._cache.capacity,
            "cache_entries": len(self._cache),
            "cache_hits": self.hits,
            "cache_misses": self.misses,
            "cache_hit_rate": round(self.get_hit_rate(), 4),
        }

    def verify(self) -> list[str]:
        """Every problem found, one line each: unreadable documents, digests, heads."""
        problems: list[str] = []
        seen: dict[str, tuple[int, int]] = {}  # prompt -> (latest live, highest taken)
        rows = select(prompt_versions).order_by(
            prompt_versions.c.prompt_id, prompt_versions.c.version
        )
        with self._translated(), self._engine.connect() as conn:
            for row in conn.execution_options(yield_per=500).execute(rows):
                prompt_id, number, document = row.prompt_id, row.version, row.document
                latest, _high = seen.get(prompt_id, (0, 0))
                if row.deleted_at is not None:
                    seen[prompt_id] = (latest, number)
                    continue
                seen[prompt_id] = (number, number)
                name = self._row_name(prompt_id, number)
                if content_sha256(document.encode("utf-8")) != row.content_sha256:
                    problems.append(f"{name}: document differs from its content_sha256")
                try:
                    loaded = decode_version(document.encode("utf-8"), name)
                except StorageError as exc:
                    problems.append(str(exc))
                    continue
                if (loaded.prompt_id, loaded.version) != (prompt_id, number):
                    problems.append(f"{name}: holds {loaded.prompt_id!r} version {loaded.version}")
            heads = {
                r.prompt_id: (r.latest_version, r.next_version - 1)
                for r in conn.execute(select(prompt_heads))
            }
        for prompt_id in sorted(set(seen) | set(heads)):
            expected, found = seen.get(prompt_id, (0, 0)), heads.get(prompt_id)
            if found != expected:
                problems.append(
                    f"prompt_heads: {prompt_id!r} is {_head_text(found)}, "
                    f"the versions say {_head_text(expected)}"
                )
        return problems

    # -- internals ------------------------------------------------------------------

    def _head(self, prompt_id: str) -> tuple[int, int]:
        """(latest live version, next free number); (0, 1) for a prompt never saved."""
        query = select(prompt_heads.c.latest_version, prompt_heads.c.next_version).where(
            prompt_heads.c.prompt_id == prompt_id
        )
        with self._translated(), self._engine.connect() as conn:
            row = conn.execute(query).one_or_none()
        return (0, 1) if row is None else (row.latest_version, row.next_version)

    def _document(self, prompt_id: str, version: int) -> str:
        query = select(prompt_versions.c.document).where(
            prompt_versions.c.prompt_id == prompt_id,
            prompt_versions.c.version == version,
            _live,
        )
        with self._translated(), self._engine.connect() as conn:
            document = conn.execute(query).scalar_one_or_none()
        if document is None:
            raise NotFoundError(f"prompt {prompt_id!r} has no version {version}")
        return str(document)

    def _numbers(self, prompt_id: str, condition: Any) -> list[int]:
        query = (
            select(prompt_versions.c.version)
            .where(and_(prompt_versions.c.prompt_id == prompt_id, condition))
            .order_by(prompt_versions.c.version)
        )
        with self._translated(), self._engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def _row_name(self, prompt_id: str, version: int) -> str:
        return f"{self._where}: prompt_versions {prompt_id!r} version {version}"

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """The seam where SQLAlchemy errors become the domain's."""
        try:
            yield
        except DBAPIError as exc:
            message = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else ""
            # Checked first: SQLite reports a trigger's RAISE(ABORT) as an IntegrityError.
            if "immutable" in message:
                raise ImmutableRecordError(message) from exc
            if isinstance(exc, IntegrityError):
                # A primary key is the last word should two writers race for a number.
                raise ConcurrencyError(
                    f"{self._where}: another writer saved this version first ({message})"
                ) from exc
            raise StorageError(f"{self._where}: {message or type(exc.orig).__name__}") from exc
        except SQLAlchemyError as exc:
            raise StorageError(f"{self._where}: database error ({type(exc).__name__})") from exc


def _head_text(head: tuple[int, int] | None) -> str:
    return "missing" if head is None else f"latest {head[0]}, highest number {head[1]}"
