"""PostgreSQL: a reader never passes a position that a slower transaction fills later.

DESIGN section 4: appends serialize position assignment (on PostgreSQL the
transaction-scoped advisory lock ``SqlEventLog`` takes first), so positions are
gap-free and equal to commit order. Here a transaction takes a position exactly
the way ``SqlEventLog.append`` does and holds it uncommitted, while a second
writer and the readers (``read_all`` and a projection catch-up) go on.

Runs only when ``AUTOOPT_TEST_POSTGRES_URL`` is set (``.ci/run`` sets it), each
test on a temporary database of its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from autoopt.infrastructure.event_store import AppendStatements, SqlEventLog
from autoopt.infrastructure.projections import tables
from autoopt.infrastructure.projections.projectors import PROJECTORS
from autoopt.infrastructure.projections.runner import ProjectionRunner
from tests.factories import prompt_extracted, run_started
from tests.postgres import postgres_backends, temporary_postgres_engine

pytestmark = pytest.mark.skipif(
    not postgres_backends(), reason="AUTOOPT_TEST_POSTGRES_URL is not set"
)

WAIT = 20.0  # seconds; only a broken lock (or a hang) comes near it


@pytest.fixture
def engine() -> Iterator[Engine]:
    with temporary_postgres_engine() as engine:
        yield engine


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every projection table and the checkpoints, rows sorted."""
    with engine.connect() as conn:
        return {
            t.name: sorted((tuple(row) for row in conn.execute(select(t))), key=repr)
            for t in [*(p.table for p in PROJECTORS), tables.projection_checkpoints]
        }


def checkpoints(runner: ProjectionRunner) -> set[int]:
    return {s.checkpoint for s in runner.status()}


def waiting_advisory_locks(engine: Engine) -> int:
    """Sessions waiting for an advisory lock (the appenders queued behind the holder)."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
            ).scalar_one()
        )


def wait_until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {WAIT} s: {what}")
        time.sleep(0.01)


def test_an_uncommitted_position_holds_back_writers_and_readers_until_it_commits(
    engine: Engine,
) -> None:
    """A transaction holding position N uncommitted: the next writer waits for it
    instead of taking N+1 (or N), ``read_all`` and a projection catch-up stop
    before N; once N commits, the writer gets N+1, readers see N and N+1 in
    order, and the catch-up applies N (it never skipped it)."""
    log = SqlEventLog(engine)
    assert log.append("run-1", [run_started("1"), prompt_extracted("1", 1)], 0) == [1, 2]
    runner = ProjectionRunner(engine, log)
    runner.catch_up()
    assert checkpoints(runner) == {2}

    # Take position 3 the way SqlEventLog.append does, and do not commit.
    sql = AppendStatements.for_dialect(engine.dialect.name, engine.dialect.paramstyle)
    held_event = prompt_extracted("1", 2)
    holder = engine.raw_connection()
    try:
        cursor = holder.cursor()
        cursor.execute(sql.begin)
        cursor.execute(sql.heads, ("run-1",))
        current, last = cursor.fetchone()
        assert (current, last) == (2, 2)
        row = sql.row(held_event, str(held_event.event_id), 3, "run-1", 3)
        cursor.execute(sql.insert, row)

        # A second writer, on an engine (and so a connection) of its own.
        second: dict[str, Any] = {}

        def append_second() -> None:
            try:
                second["positions"] = SqlEventLog(engine).append("run-2", [run_started("2")], 0)
            except BaseException as exc:  # reported by the test thread
                second["error"] = exc

        writer = threading.Thread(target=append_second, daemon=True)
        writer.start()
        wait_until(lambda: waiting_advisory_locks(engine) == 1, "the second writer queues")
        assert writer.is_alive() and second == {}, second

        # Readers see nothing at or past the uncommitted position.
        assert [r.position for r in log.read_all()] == [1, 2]
        assert log.last_position() == 2
        before = snapshot(engine)
        assert all(
            n == 0 for n in ProjectionRunner(engine, SqlEventLog(engine)).catch_up().values()
        )
        assert checkpoints(runner) == {2}, "a catch-up moved past an uncommitted position"
        assert snapshot(engine) == before
        assert writer.is_alive(), "the second writer passed an uncommitted position"

        holder.commit()
        cursor.close()
    finally:
        holder.close()

    writer.join(WAIT)
    assert not writer.is_alive(), "the second writer never finished"
    assert "error" not in second, second.get("error")
    assert second["positions"] == [4]
    recorded = list(log.read_all())
    assert [(r.position, r.stream_id, r.stream_version) for r in recorded] == [
        (1, "run-1", 1),
        (2, "run-1", 2),
        (3, "run-1", 3),
        (4, "run-2", 1),
    ]
    assert recorded[2].event == held_event

    applied = ProjectionRunner(engine, SqlEventLog(engine)).catch_up()
    assert set(applied.values()) == {2}
    assert checkpoints(runner) == {4}
    with engine.connect() as conn:
        prompt_positions = conn.execute(
            select(tables.prompts.c.position).order_by(tables.prompts.c.position)
        ).scalars()
        assert list(prompt_positions) == [2, 3], "the catch-up skipped the late position"
        assert set(conn.execute(select(tables.runs.c.run_id)).scalars()) == {"1", "2"}
    incremental = snapshot(engine)
    runner.rebuild()
    assert snapshot(engine) == incremental


def test_a_rolled_back_position_is_taken_by_the_next_writer_leaving_no_gap(
    engine: Engine,
) -> None:
    """A transaction that takes position N and rolls back leaves no hole: the
    writer queued behind it gets N, and the log stays 1..N."""
    log = SqlEventLog(engine)
    log.append("run-1", [run_started("1")], 0)
    sql = AppendStatements.for_dialect(engine.dialect.name, engine.dialect.paramstyle)
    holder = engine.raw_connection()
    try:
        cursor = holder.cursor()
        cursor.execute(sql.begin)
        late = prompt_extracted("1", 1)
        cursor.execute(sql.insert, sql.row(late, str(late.event_id), 2, "run-1", 2))

        second: dict[str, Any] = {}

        def append_second() -> None:
            try:
                second["positions"] = SqlEventLog(engine).append("run-2", [run_started("2")], 0)
            except BaseException as exc:  # reported by the test thread
                second["error"] = exc

        writer = threading.Thread(target=append_second, daemon=True)
        writer.start()
        wait_until(lambda: waiting_advisory_locks(engine) == 1, "the second writer queues")
        holder.rollback()
        cursor.close()
    finally:
        holder.close()
    writer.join(WAIT)
    assert not writer.is_alive(), "the second writer never finished"
    assert second == {"positions": [2]}
    assert [(r.position, r.stream_id) for r in log.read_all()] == [(1, "run-1"), (2, "run-2")]
