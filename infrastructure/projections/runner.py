"""Running projectors over the log: catch-up from a checkpoint, status, rebuild.

Each batch of events is applied in one write transaction together with the
projector's new checkpoint, so a crash applies a batch wholly or not at all:
nothing is applied twice and nothing is skipped. A projector that fails on an
event stops with a ``ProjectionError`` naming the position and the type.

A rebuild empties a projector's table, resets its checkpoint and replays the
whole log in one transaction; readers (WAL on SQLite, MVCC on PostgreSQL)
keep seeing the old rows until it commits, so nobody sees a half-built table.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from autoopt.domain.errors import ProjectionError
from autoopt.domain.ports import RecordedEvent
from autoopt.infrastructure.db import write_transaction
from autoopt.infrastructure.event_store import SqlEventLog
from autoopt.infrastructure.projections.projectors import PROJECTORS, Projector
from autoopt.infrastructure.projections.tables import projection_checkpoints

BATCH = 1000


@dataclass(frozen=True)
class ProjectionStatus:
    name: str
    checkpoint: int
    head: int

    @property
    def lag(self) -> int:
        return self.head - self.checkpoint


class ProjectionRunner:
    def __init__(
        self, engine: Engine, log: SqlEventLog, projectors: Iterable[Projector] = PROJECTORS
    ) -> None:
        self._engine = engine
        self._log = log
        self.projectors = tuple(projectors)

    def status(self) -> list[ProjectionStatus]:
        head = self._log.last_position()
        with self._engine.connect() as conn:
            marks: dict[str, int] = dict(conn.execute(select(projection_checkpoints)).all())
        return [ProjectionStatus(p.name, int(marks.get(p.name, 0)), head) for p in self.projectors]

    def catch_up(self) -> dict[str, int]:
        """Apply every event past each checkpoint; returns how many each projector read."""
        return {p.name: self._catch_up(p) for p in self.projectors}

    def rebuild(self) -> dict[str, int]:
        applied = {}
        for projector in self.projectors:
            with write_transaction(self._engine) as conn:
                conn.execute(delete(projector.table))
                _set_checkpoint(conn, projector.name, 0)
                position = 0
                count = 0
                while True:
                    records = list(self._log.read_all(after_position=position, limit=BATCH))
                    if not records:
                        break
                    _apply(conn, projector, records)
                    position = records[-1].position
                    count += len(records)
                _set_checkpoint(conn, projector.name, position)
            applied[projector.name] = count
        return applied

    def _catch_up(self, projector: Projector) -> int:
        total = 0
        while True:
            with write_transaction(self._engine) as conn:
                # Read the checkpoint under the write lock: two runners never both apply a batch.
                position = _checkpoint(conn, projector.name)
                records = list(self._log.read_all(after_position=position, limit=BATCH))
                if not records:
                    return total
                _apply(conn, projector, records)
                _set_checkpoint(conn, projector.name, records[-1].position)
            total += len(records)


def _apply(conn: Connection, projector: Projector, records: list[RecordedEvent]) -> None:
    for record in records:
        try:
            projector.apply(conn, record)
        except (SQLAlchemyError, LookupError, ValueError) as exc:
            raise ProjectionError(
                f"projection {projector.name} stopped at position {record.position} "
                f"({record.event.event_type}): {exc}"
            ) from exc


def _checkpoint(conn: Connection, name: str) -> int:
    value = conn.execute(
        select(projection_checkpoints.c.position).where(projection_checkpoints.c.name == name)
    ).scalar()
    return int(value or 0)


def _set_checkpoint(conn: Connection, name: str, position: int) -> None:
    moved = conn.execute(
        update(projection_checkpoints)
        .where(projection_checkpoints.c.name == name)
        .values(position=position)
    )
    if moved.rowcount == 0:
        conn.execute(insert(projection_checkpoints).values(name=name, position=position))
