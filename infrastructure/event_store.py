"""The SQL event log (SQLAlchemy Core), for SQLite and PostgreSQL.

Every append runs in one write transaction: on SQLite that is ``BEGIN
IMMEDIATE``, on PostgreSQL a transaction-scoped advisory lock. Either way only
one appender at a time reads ``max(position)`` and writes after it, so
positions are gap-free and equal to commit order, and a reader that has seen
position p never later finds a p' < p appear.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from uuid import UUID

from sqlalchemy import Engine, String, Text, cast, func, select, type_coerce
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from autoopt.domain.errors import (
    ConcurrencyError,
    ImmutableRecordError,
    NotFoundError,
    OptimizerError,
    StorageError,
)
from autoopt.domain.events import DomainEvent
from autoopt.domain.ports import (
    RecordedEvent,
    check_batch_ids,
    check_expected_version,
    check_same_stream,
)
from autoopt.infrastructure.event_mapper import payload_text, row_to_recorded, sqlite_time
from autoopt.infrastructure.settings import describe_url
from autoopt.infrastructure.tables import events

# Every column as stored, but the time and the payload as text: SQLAlchemy parses
# SQLite's DATETIME text with a regular expression and the payload into a dict,
# the two largest costs of reading the log; the mapper parses the time with
# fromisoformat and hands the payload text to pydantic's JSON validator (in
# Rust). PostgreSQL's driver returns a datetime either way; JSONB is cast to text.
_EVENT_COLUMNS = [
    type_coerce(c, String).label(c.name)
    if c.name == "occurred_at"
    else cast(c, Text).label(c.name)
    if c.name == "payload"
    else c
    for c in events.columns
]

READ_PAGE_SIZE = 500
_INSERT_COLUMNS = (
    "position",
    "event_id",
    "stream_id",
    "stream_version",
    "event_type",
    "schema_version",
    "occurred_at",
    "correlation_id",
    "causation_id",
    "payload",
)


@dataclass(frozen=True)
class AppendStatements:
    """The append's SQL for one dialect, as driver-level strings with positional markers."""

    marker: str
    begin: str
    heads: str
    insert: str
    dialect: str

    @classmethod
    def for_dialect(cls, dialect: str, paramstyle: str) -> AppendStatements:
        marker = "?" if paramstyle == "qmark" else "%s"
        columns = ", ".join(_INSERT_COLUMNS)
        values = ", ".join([marker] * len(_INSERT_COLUMNS))
        return cls(
            marker=marker,
            # SQLite: take the write lock now, not at the first write. PostgreSQL:
            # serialize position assignment; any key works if every process uses it.
            begin=(
                "SELECT pg_advisory_xact_lock(7316842001)"
                if dialect == "postgresql"
                else "BEGIN IMMEDIATE"
            ),
            heads=(
                "SELECT (SELECT COALESCE(MAX(stream_version), 0) FROM events"
                f" WHERE stream_id = {marker}), (SELECT COALESCE(MAX(position), 0) FROM events)"
            ),
            insert=f"INSERT INTO events ({columns}) VALUES ({values})",
            dialect=dialect,
        )

    def find_ids(self, count: int) -> str:
        markers = ", ".join([self.marker] * count)
        return f"SELECT event_id, position, stream_id FROM events WHERE event_id IN ({markers})"

    def heads_and_known(self, count: int) -> str:
        """The heads, and whether any of ``count`` ids is stored, in one query.

        Ids are new on every append but a retry; the full lookup runs only then.
        """
        markers = ", ".join([self.marker] * count)
        head = self.heads.removeprefix("SELECT ")
        return f"SELECT {head}, EXISTS (SELECT 1 FROM events WHERE event_id IN ({markers}))"

    def row(
        self, event: DomainEvent, event_id: str, position: int, stream_id: str, version: int
    ) -> tuple[Any, ...]:
        """One event's INSERT parameters, in ``_INSERT_COLUMNS`` order."""
        at = sqlite_time(event.occurred_at) if self.dialect == "sqlite" else event.occurred_at
        return (
            position,
            event_id,
            stream_id,
            version,
            event.event_type,
            event.schema_version,
            at,
            event.correlation_id,
            event.causation_id,
            payload_text(event),
        )


def _stored_position(stored: tuple[int, str], event_id: str, stream_id: str) -> int:
    position, stored_stream = stored
    check_same_stream(event_id, stored_stream, stream_id)
    return position


class SqlEventLog:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._where = describe_url(str(engine.url))
        self._sql = AppendStatements.for_dialect(engine.dialect.name, engine.dialect.paramstyle)
        self._writer: Any = None
        self.appended = 0  # events this object wrote: tells callers to catch projections up
        self._writer_lock = threading.Lock()
        self._heads_and_known = lru_cache(maxsize=128)(self._sql.heads_and_known)
        # Caught by type around each append: a context manager there cost more
        # than the Python side of a single-event append's statements.
        self._driver_error: type[Exception] = engine.dialect.loaded_dbapi.Error

    @property
    def engine(self) -> Engine:
        return self._engine

    def append(
        self,
        stream_id: str,
        new_events: Sequence[DomainEvent],
        expected_version: int | None,
    ) -> list[int]:
        if not new_events:
            return []
        ids = [str(e.event_id) for e in new_events]
        with self._writer_lock:
            try:
                return self._append_locked(stream_id, new_events, ids, expected_version)
            except self._driver_error as exc:
                raise self._domain_error(exc) from exc

    def _append_locked(
        self,
        stream_id: str,
        new_events: Sequence[DomainEvent],
        ids: list[str],
        expected_version: int | None,
    ) -> list[int]:
        sql = self._sql
        connection = self._writer_connection().dbapi_connection
        cursor = connection.cursor()
        try:
            cursor.execute(sql.begin)
            cursor.execute(self._heads_and_known(len(ids)), (stream_id, *ids))
            current, last, known = cursor.fetchone()
            if known:
                cursor.execute(sql.find_ids(len(ids)), ids)
                stored = {eid: (position, stream) for eid, position, stream in cursor}
                if len(stored) == len(ids):
                    connection.rollback()
                    return [_stored_position(stored[i], i, stream_id) for i in ids]
                check_batch_ids(len(stored), len(ids))
            check_expected_version(stream_id, current, expected_version)
            rows = [
                sql.row(event, event_id, last + offset, stream_id, current + offset)
                for offset, (event_id, event) in enumerate(
                    zip(ids, new_events, strict=True), start=1
                )
            ]
            cursor.executemany(sql.insert, rows)
            connection.commit()
            self.appended += len(rows)
        except BaseException:
            connection.rollback()
            raise
        finally:
            cursor.close()
        return [last + offset for offset in range(1, len(rows) + 1)]

    def close(self) -> None:
        with self._writer_lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None

    def _writer_connection(self) -> Any:
        """The driver connection appends run on, checked out once and kept.

        Appends bypass SQLAlchemy's connection and transaction machinery: a
        checkout, a Core BEGIN and a Core COMMIT cost more CPU than the whole
        SQLite append (see benchmarks/event_log.py). The connection still
        comes from the engine's pool, so it carries the engine's PRAGMAs.
        """
        if self._writer is None:
            self._writer = self._engine.raw_connection()
        return self._writer

    def _domain_error(self, exc: Exception) -> OptimizerError:
        """A driver error from an append, as the domain's error."""
        if isinstance(exc, self._engine.dialect.loaded_dbapi.IntegrityError):
            # UNIQUE(stream_id, stream_version) is the last word on concurrency
            # should two writers ever slip past the lock.
            return ConcurrencyError(f"{self._where}: conflicting append ({exc})")
        if self._writer is not None:
            # The connection may be broken; the next append takes a fresh one.
            self._writer.invalidate()
            self._writer = None
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return StorageError(f"{self._where}: {message}")

    def read_stream(self, stream_id: str, after_version: int = 0) -> list[RecordedEvent]:
        query = (
            select(*_EVENT_COLUMNS)
            .where(events.c.stream_id == stream_id, events.c.stream_version > after_version)
            .order_by(events.c.stream_version)
        )
        with self._translated(), self._engine.connect() as conn:
            return [row_to_recorded(row) for row in conn.execute(query)]

    def read_all(
        self, after_position: int = 0, limit: int | None = None
    ) -> Iterator[RecordedEvent]:
        """Events after a position, in order, fetched a page at a time.

        Memory stays constant however long the log is, and no read transaction
        stays open between pages (a long one would stop WAL checkpoints).
        """
        remaining = limit
        cursor = after_position
        while remaining is None or remaining > 0:
            page = READ_PAGE_SIZE if remaining is None else min(READ_PAGE_SIZE, remaining)
            query = (
                select(*_EVENT_COLUMNS)
                .where(events.c.position > cursor)
                .order_by(events.c.position)
            ).limit(page)
            with self._translated(), self._engine.connect() as conn:
                rows = [row_to_recorded(row) for row in conn.execute(query)]
            yield from rows
            if len(rows) < page:
                return
            cursor = rows[-1].position
            if remaining is not None:
                remaining -= len(rows)

    def get(self, position: int) -> RecordedEvent:
        return self._one(events.c.position == position, f"no event at position {position}")

    def find_by_event_id(self, event_id: UUID) -> RecordedEvent:
        return self._one(events.c.event_id == str(event_id), f"no event with id {event_id}")

    def stream_version(self, stream_id: str) -> int:
        query = select(func.coalesce(func.max(events.c.stream_version), 0)).where(
            events.c.stream_id == stream_id
        )
        with self._translated(), self._engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def last_position(self) -> int:
        with self._translated(), self._engine.connect() as conn:
            return int(
                conn.execute(select(func.coalesce(func.max(events.c.position), 0))).scalar_one()
            )

    def _one(self, condition: object, missing: str) -> RecordedEvent:
        with self._translated(), self._engine.connect() as conn:
            row = conn.execute(select(*_EVENT_COLUMNS).where(condition)).first()  # type: ignore[arg-type]
        if row is None:
            raise NotFoundError(missing)
        return row_to_recorded(row)

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """The seam where SQLAlchemy errors become the domain's."""
        try:
            yield
        except IntegrityError as exc:
            # The UNIQUE(stream_id, stream_version) constraint is the last word
            # on concurrency should two writers ever slip past the lock.
            raise ConcurrencyError(f"{self._where}: conflicting append ({exc.orig})") from exc
        except DBAPIError as exc:
            message = str(exc.orig).strip()
            if "append-only" in message:
                raise ImmutableRecordError(message.splitlines()[0]) from exc
            raise StorageError(f"{self._where}: {message}") from exc
        except SQLAlchemyError as exc:
            raise StorageError(f"{self._where}: database error ({type(exc).__name__})") from exc
