"""One contract for every ``EventLog``: the in-memory fake, SQLite, and PostgreSQL.

PostgreSQL joins when ``AUTOOPT_TEST_POSTGRES_URL`` is set (``.ci/run`` sets it).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from autoopt.domain.errors import ConcurrencyError, DuplicateEventError, NotFoundError
from autoopt.domain.events import IterationCompleted, RunStarted
from autoopt.domain.models import ChatMessage, LLMExchange
from autoopt.domain.ports import EventLog
from autoopt.infrastructure.event_store import SqlEventLog
from autoopt.infrastructure.memory_event_log import InMemoryEventLog
from tests.factories import at, prompt_extracted, run_failed, run_started
from tests.postgres import postgres_backends, temporary_postgres_engine

BACKENDS = ["memory", "sqlite", *postgres_backends()]


@pytest.fixture(params=BACKENDS)
def log(request: pytest.FixtureRequest) -> Iterator[EventLog]:
    if request.param == "memory":
        yield InMemoryEventLog()
    elif request.param == "sqlite":
        yield SqlEventLog(request.getfixturevalue("sqlite_engine"))
    else:
        with temporary_postgres_engine() as engine:
            yield SqlEventLog(engine)


def test_new_log_is_empty(log: EventLog) -> None:
    assert list(log.read_all()) == []
    assert log.last_position() == 0
    assert log.stream_version("run-1") == 0


def test_append_assigns_consecutive_positions_and_stream_versions(log: EventLog) -> None:
    assert log.append("run-1", [run_started("1"), prompt_extracted("1", 1)], 0) == [1, 2]
    assert log.append("run-2", [run_started("2")], 0) == [3]
    assert log.append("run-1", [prompt_extracted("1", 2)], 2) == [4]

    stream = log.read_stream("run-1")
    assert [(r.position, r.stream_version) for r in stream] == [(1, 1), (2, 2), (4, 3)]
    assert log.stream_version("run-1") == 3
    assert log.last_position() == 4


def test_events_read_back_equal_to_what_was_appended(log: EventLog) -> None:
    exchange = LLMExchange(
        provider="openai",
        model="gpt-4o-mini",
        base_url="http://127.0.0.1:9/v1",
        messages=(ChatMessage(role="user", content="改进这个提示 {{#sys.query#}}"),),
        parameters={"temperature": 0.2},
        response_text="更好的提示 {{#sys.query#}}",
        prompt_tokens=12,
        completion_tokens=8,
        cost_usd=0.0001,
    )
    iteration = IterationCompleted(
        event_id=uuid.uuid4(),
        occurred_at=at(5),
        correlation_id="run-1",
        causation_id=str(uuid.uuid4()),
        run_id="run-1",
        prompt_id="wf/1/prompt",
        strategy="llm_guided",
        iteration=1,
        candidate_text="更好的提示 {{#sys.query#}}",
        score_before=41.5,
        score_after=77.25,
        confidence=0.81,
        decision="accepted",
        reason="score +35.75",
        llm_exchange=exchange,
    )
    started = run_started("run-1", dsl_text="app:\n  name: 日本語のアプリ\n")
    log.append("run-1", [started, iteration], 0)

    assert [r.event for r in log.read_all()] == [started, iteration]


def test_wrong_expected_version_is_a_concurrency_error_and_appends_nothing(log: EventLog) -> None:
    log.append("run-1", [run_started()], 0)
    with pytest.raises(ConcurrencyError, match="at version 1, the writer expected 0"):
        log.append("run-1", [prompt_extracted()], 0)
    with pytest.raises(ConcurrencyError):
        log.append("run-1", [prompt_extracted()], 5)
    assert log.last_position() == 1


def test_expected_version_none_appends_after_whatever_is_there(log: EventLog) -> None:
    log.append("run-1", [run_started()], None)
    log.append("run-1", [prompt_extracted()], None)
    assert [r.stream_version for r in log.read_stream("run-1")] == [1, 2]


def test_appending_a_stored_event_again_is_a_no_op_returning_its_position(log: EventLog) -> None:
    started = run_started()
    extracted = prompt_extracted()
    assert log.append("run-1", [started, extracted], 0) == [1, 2]
    log.append("run-9", [run_started("9")], 0)

    # The retry carries a stale expected version; it must still succeed as a no-op.
    assert log.append("run-1", [started, extracted], 0) == [1, 2]
    assert log.append("run-1", [extracted], None) == [2]
    assert log.last_position() == 3


def test_a_batch_mixing_stored_and_new_events_is_refused_whole(log: EventLog) -> None:
    started = run_started()
    log.append("run-1", [started], 0)
    with pytest.raises(DuplicateEventError):
        log.append("run-1", [started, prompt_extracted()], None)
    assert log.last_position() == 1


def test_a_stored_event_appended_to_another_stream_is_refused(log: EventLog) -> None:
    started = run_started()
    log.append("run-1", [started], 0)
    with pytest.raises(DuplicateEventError, match="is stored in stream 'run-1', not 'run-2'"):
        log.append("run-2", [started], None)
    assert log.stream_version("run-2") == 0


def test_a_failed_batch_leaves_no_trace(log: EventLog) -> None:
    log.append("run-1", [run_started()], 0)
    with pytest.raises(ConcurrencyError):
        log.append("run-1", [prompt_extracted("1", n) for n in range(1, 6)], 0)
    assert log.append("run-2", [run_started("2")], 0) == [2]


def test_read_all_pages_by_position_and_limit(log: EventLog) -> None:
    for n in range(1, 8):
        log.append(f"run-{n}", [run_started(str(n))], 0)
    assert [r.position for r in log.read_all(after_position=3)] == [4, 5, 6, 7]
    assert [r.position for r in log.read_all(after_position=2, limit=3)] == [3, 4, 5]
    assert list(log.read_all(after_position=7)) == []


def test_read_stream_after_version(log: EventLog) -> None:
    log.append("run-1", [run_started(), prompt_extracted("1", 1), run_failed()], 0)
    assert [r.stream_version for r in log.read_stream("run-1", after_version=1)] == [2, 3]
    assert log.read_stream("nobody") == []


def test_get_and_find_by_event_id(log: EventLog) -> None:
    started = run_started()
    log.append("run-1", [started], 0)
    assert log.get(1).event == started
    assert log.find_by_event_id(started.event_id).position == 1
    with pytest.raises(NotFoundError):
        log.get(2)
    with pytest.raises(NotFoundError):
        log.find_by_event_id(uuid.uuid4())


def test_empty_batch_appends_nothing(log: EventLog) -> None:
    assert log.append("run-1", [], 0) == []
    assert log.last_position() == 0


def test_run_started_keeps_the_dsl_text_byte_for_byte(log: EventLog) -> None:
    text = "app:\n  name: \"引号\" 'quotes' \\ back\\slash\n  emoji: 🚀\n\ttab\r\n"
    started: RunStarted = run_started(dsl_text=text)
    log.append("run-1", [started], 0)
    recorded = log.get(1).event
    assert isinstance(recorded, RunStarted)
    assert recorded.dsl_text == text


@pytest.mark.parametrize(
    "correlation_id",
    ['quote " and \\ backslash', "line\nbreak\ttab", "中文 ✓", "", None],
    ids=["quote-backslash", "control", "unicode", "empty", "none"],
)
def test_envelope_text_of_any_shape_reads_back_equal(
    log: EventLog, correlation_id: str | None
) -> None:
    """Reading builds each event's JSON from its columns: any id text must survive it."""
    event = prompt_extracted().model_copy(
        update={"correlation_id": correlation_id, "causation_id": correlation_id}
    )
    log.append("run-odd", [event], 0)
    [stored] = log.read_stream("run-odd")
    assert stored.event == event
