"""How read-model rows reach the database: the same stored text SQLAlchemy would write."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from sqlalchemy import Column, DateTime, Engine, text
from sqlalchemy.dialects import sqlite

from autoopt.infrastructure.event_store import SqlEventLog
from autoopt.infrastructure.projections.projectors import PROJECTORS
from autoopt.infrastructure.projections.row_writer import DriverInsert
from autoopt.infrastructure.projections.runner import ProjectionRunner
from tests.factories import run_started

DATETIME_COLUMNS = [
    column
    for table in (projector.table for projector in PROJECTORS)
    for column in table.columns
    if isinstance(column.type, DateTime)
]
VALUES = [
    None,
    datetime(2026, 1, 1),
    datetime(2026, 12, 5, 10, 30, 59, 123456, tzinfo=UTC),
    datetime(2026, 12, 5, 10, 30, 59, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    datetime(1, 1, 1, 0, 0, 0, 1),
    date(2026, 3, 4),
]


@pytest.mark.parametrize("column", DATETIME_COLUMNS, ids=lambda c: f"{c.table.name}.{c.name}")
def test_sqlite_datetime_text_is_sqlalchemys_own(column: Column[datetime]) -> None:
    dialect = sqlite.dialect()
    statement = DriverInsert.build(column.table, dialect)
    ours = dict(statement.processed)[statement.columns.index(column.name)]
    theirs = column.type.dialect_impl(dialect).bind_processor(dialect)
    assert theirs is not None
    assert [ours(v) for v in VALUES] == [theirs(v) for v in VALUES]


def test_a_rebuild_stores_times_in_sqlalchemys_text_form(sqlite_engine: Engine) -> None:
    moment = datetime(2026, 12, 5, 10, 30, 59, 123456, tzinfo=UTC)
    started = run_started("run-a").model_copy(update={"occurred_at": moment})
    log = SqlEventLog(sqlite_engine)
    log.append("run-run-a", [started], 0)
    ProjectionRunner(sqlite_engine, log).rebuild()
    log.close()
    with sqlite_engine.connect() as conn:
        stored = conn.execute(text("SELECT started_at FROM runs")).scalar_one()
    assert stored == "2026-12-05 10:30:59.123456"
