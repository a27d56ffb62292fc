"""What the SQL event log guarantees beyond the contract: the database itself
refuses changes, old payloads are upcast on read, reads stream page by page."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError

from autoopt.domain.errors import EventSchemaError
from autoopt.domain.events import IterationCompleted
from autoopt.infrastructure import event_store
from autoopt.infrastructure.db import open_database
from autoopt.infrastructure.event_store import SqlEventLog
from autoopt.infrastructure.settings import DatabaseSettings
from autoopt.infrastructure.tables import events as events_table
from tests.factories import prompt_extracted, run_started
from tests.postgres import postgres_backends, temporary_postgres_engine
from tests.unit.test_events import V1_ITERATION_PAYLOAD


@pytest.fixture(params=["sqlite", *postgres_backends()])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    if request.param == "sqlite":
        yield request.getfixturevalue("sqlite_engine")
    else:
        with temporary_postgres_engine() as pg:
            yield pg


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE events SET event_type = 'Forged' WHERE position = 1",
        "UPDATE events SET payload = payload",
        "DELETE FROM events WHERE position = 1",
        "DELETE FROM events",
    ],
)
def test_the_database_refuses_update_and_delete(engine: Engine, statement: str) -> None:
    log = SqlEventLog(engine)
    log.append("run-1", [run_started(), prompt_extracted()], 0)
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text(statement))
    assert [r.event.event_type for r in log.read_all()] == ["RunStarted", "PromptExtracted"]


def test_postgres_refuses_truncate_too() -> None:
    if not postgres_backends():
        pytest.skip("AUTOOPT_TEST_POSTGRES_URL is not set")
    with temporary_postgres_engine() as pg:
        SqlEventLog(pg).append("run-1", [run_started()], 0)
        with pytest.raises(DBAPIError, match="append-only"), pg.begin() as conn:
            conn.execute(text("TRUNCATE events"))
        assert SqlEventLog(pg).last_position() == 1


def _insert_raw(db_file: Path, position: int, event_type: str, version: int, payload: dict) -> None:
    """Write a row the way an older autoopt did, with no help from our code."""
    with sqlite3.connect(db_file) as conn:
        conn.execute(
            "INSERT INTO events (position, event_id, stream_id, stream_version, event_type,"
            " schema_version, occurred_at, correlation_id, causation_id, payload)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                position,
                str(uuid.uuid4()),
                "run-7",
                position,
                event_type,
                version,
                "2025-06-01 08:30:00.000000",
                "run-7",
                None,
                json.dumps(payload),
            ),
        )


def test_a_stored_v1_payload_is_upcast_on_read_and_left_as_stored(tmp_path: Path) -> None:
    db_file = tmp_path / "old.db"
    log = SqlEventLog(open_database(DatabaseSettings(url=f"sqlite:///{db_file}")))
    _insert_raw(db_file, 1, "IterationCompleted", 1, V1_ITERATION_PAYLOAD)

    [record] = list(log.read_all())
    event = record.event
    assert isinstance(event, IterationCompleted)
    assert event.schema_version == 2
    assert (event.decision, event.candidate_text) == ("accepted", V1_ITERATION_PAYLOAD["candidate"])
    assert event.occurred_at.isoformat() == "2025-06-01T08:30:00+00:00"

    with sqlite3.connect(db_file) as conn:
        stored_version, stored = conn.execute(
            "SELECT schema_version, payload FROM events"
        ).fetchone()
    assert stored_version == 1 and json.loads(stored) == V1_ITERATION_PAYLOAD


def test_an_unreadable_stored_event_names_its_position(tmp_path: Path) -> None:
    db_file = tmp_path / "odd.db"
    log = SqlEventLog(open_database(DatabaseSettings(url=f"sqlite:///{db_file}")))
    log.append("run-1", [run_started()], 0)
    _insert_raw(db_file, 2, "SomethingElse", 1, {})
    with pytest.raises(EventSchemaError, match="event at position 2: unknown event type"):
        list(log.read_all())


def test_read_all_fetches_lazily_page_by_page(
    sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(event_store, "READ_PAGE_SIZE", 10)
    log = SqlEventLog(sqlite_engine)
    for n in range(25):
        log.append(f"run-{n}", [run_started(str(n))], 0)

    reader = log.read_all()
    first = next(reader)
    # Appended after reading began: a reader that loaded everything up front would miss it.
    log.append("late", [run_started("late")], 0)
    rest = [r.position for r in reader]
    assert [first.position, *rest] == list(range(1, 27))


@pytest.mark.parametrize(("setting", "expected"), [("FULL", 2), ("NORMAL", 1), ("EXTRA", 3)])
def test_sqlite_connections_use_wal_and_the_configured_synchronous(
    tmp_path: Path, setting: str, expected: int
) -> None:
    engine = open_database(
        DatabaseSettings(
            url=f"sqlite:///{tmp_path / 'p.db'}", sqlite_synchronous=setting, busy_timeout_ms=1234
        )
    )
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == expected
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 1234


def test_stored_payload_text_reads_back_as_the_payload(engine: Engine) -> None:
    # The append writes pydantic's JSON text; small floats, escapes and
    # non-BMP text must come back exactly as event.payload() has them.
    from autoopt.domain.models import ChatMessage, LLMExchange

    exchange = LLMExchange(
        provider="openai",
        model="gpt-4o-mini",
        messages=(ChatMessage(role="user", content='quote " slash \\ \u2028 \U0001f600 é'),),
        parameters={"temperature": 0.2, "top_p": 1e-07, "seed": 3, "stop": None},
        cost_usd=4.5e-05,
    )
    iteration = IterationCompleted(
        event_id=uuid.uuid4(),
        occurred_at=datetime(2026, 12, 5, 8, 0, 0, 123456, tzinfo=UTC),
        run_id="run-7",
        prompt_id="wf/1711528915811/prompt_template/0/text",
        strategy="llm_guided",
        iteration=1,
        candidate_text="Summarize {{#sys.query#}}.",
        score_before=52.0,
        score_after=1e-05,
        confidence=0.74,
        decision="rejected",
        reason="a reason with a tab\tand a newline\n",
        llm_exchange=exchange,
    )
    events = [run_started(), prompt_extracted("1", 1), iteration]
    log = SqlEventLog(engine)
    for number, event in enumerate(events, start=1):
        log.append(f"s-{number}", [event], 0)
    for event, record in zip(events, log.read_all(), strict=True):
        assert record.event == event
        assert record.event.payload() == event.payload()
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT payload FROM events ORDER BY position")).scalars()
        for event, payload in zip(events, stored, strict=True):
            parsed = payload if isinstance(payload, dict) else json.loads(payload)
            assert parsed == event.payload()


def test_sqlite_stores_the_utc_time_as_sqlalchemy_writes_a_datetime(sqlite_engine: Engine) -> None:
    # The append writes the time text itself; a reader through SQLAlchemy's
    # DateTime (and `autoopt sql`) expects exactly its text form, in UTC.
    moments = [
        datetime(2026, 12, 5, 8, 0, 0, 123456, tzinfo=UTC),
        datetime(2026, 12, 5, 8, 0, 0, tzinfo=UTC),
        datetime(2026, 12, 5, 13, 30, 0, 7, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    ]
    log = SqlEventLog(sqlite_engine)
    for number, moment in enumerate(moments, start=1):
        started = run_started(f"r{number}").model_copy(update={"occurred_at": moment})
        log.append(f"run-r{number}", [started], 0)
    log.close()
    with sqlite_engine.connect() as conn:
        texts = conn.execute(text("SELECT occurred_at FROM events ORDER BY position")).scalars()
        assert list(texts) == [
            "2026-12-05 08:00:00.123456",
            "2026-12-05 08:00:00.000000",
            "2026-12-05 08:00:00.000007",
        ]
        read = conn.execute(select(events_table.c.occurred_at).order_by("position")).scalars()
        assert [t.replace(tzinfo=UTC) for t in read] == [m.astimezone(UTC) for m in moments]
