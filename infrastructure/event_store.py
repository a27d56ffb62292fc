"""The SQL event log (SQLAlchemy Core), for SQLite and PostgreSQL.

Every append runs in one write transaction: on SQLite that is ``BEGIN
IMMEDIATE``, on PostgreSQL a transaction-scoped advisory lock. Either way only
one appender at a time reads ``max(position)`` and writes after it, so
positions are gap-free and equal to commit order, and a reader that has seen
position p never later finds a p' < p appear.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from uuid import UUID

from sqlalchemy import Connection, Engine, func, insert, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from autoopt.domain.errors import (
    ConcurrencyError,
    ImmutableRecordError,
    NotFoundError,
    StorageError,
)
from autoopt.domain.events import DomainEvent
from autoopt.domain.ports import RecordedEvent, check_batch_ids, check_expected_version
from autoopt.infrastructure.db import describe_url, write_transaction
from autoopt.infrastructure.event_mapper import event_to_row, row_to_recorded
from autoopt.infrastructure.tables import events

# Any constant works; it only has to be the same in every process.
_POSTGRES_APPEND_LOCK = 7_316_842_001
READ_PAGE_SIZE = 500


class SqlEventLog:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._where = describe_url(str(engine.url))

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
        with self._translated(), write_transaction(self._engine) as conn:
            self._lock_positions(conn)
            stored = dict(
                conn.execute(
                    select(events.c.event_id, events.c.position).where(events.c.event_id.in_(ids))
                ).all()
            )
            if len(stored) == len(ids):
                return [stored[i] for i in ids]
            check_batch_ids(len(stored), len(ids))
            current = conn.execute(
                select(func.coalesce(func.max(events.c.stream_version), 0)).where(
                    events.c.stream_id == stream_id
                )
            ).scalar_one()
            check_expected_version(stream_id, current, expected_version)
            last = conn.execute(select(func.coalesce(func.max(events.c.position), 0))).scalar_one()
            rows = [
                event_to_row(
                    event,
                    position=last + offset,
                    stream_id=stream_id,
                    stream_version=current + offset,
                )
                for offset, event in enumerate(new_events, start=1)
            ]
            conn.execute(insert(events), rows)
            return [row["position"] for row in rows]

    def read_stream(self, stream_id: str, after_version: int = 0) -> list[RecordedEvent]:
        query = (
            select(events)
            .where(events.c.stream_id == stream_id, events.c.stream_version > after_version)
            .order_by(events.c.stream_version)
        )
        with self._translated(), self._engine.connect() as conn:
            return [row_to_recorded(row._mapping) for row in conn.execute(query)]

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
                select(events).where(events.c.position > cursor).order_by(events.c.position)
            ).limit(page)
            with self._translated(), self._engine.connect() as conn:
                rows = [row_to_recorded(row._mapping) for row in conn.execute(query)]
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
            row = conn.execute(select(events).where(condition)).first()  # type: ignore[arg-type]
        if row is None:
            raise NotFoundError(missing)
        return row_to_recorded(row._mapping)

    def _lock_positions(self, conn: Connection) -> None:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _POSTGRES_APPEND_LOCK})

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
