"""The event log's concurrency guarantees, tested with real processes on a real SQLite file.

Every writer and reader here is a separate OS process (``sys.executable -m
tests.integration.event_log_worker``) with its own engine on a database file
under ``tmp_path``. Workers announce themselves with ``ready-<round>-<name>``
files and start only when the test creates ``go-<round>``, so that they all hit
the log at the same moment. A worker that crashes or hangs fails the test with
its exit code and stderr.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from autoopt.domain.ports import RecordedEvent
from autoopt.infrastructure.db import current_revision, head_revision, open_database
from autoopt.infrastructure.event_store import SqlEventLog
from autoopt.infrastructure.settings import DatabaseSettings
from tests.factories import prompt_extracted, run_started
from tests.processes import Workers

pytestmark = pytest.mark.slow

WORKER_MODULE = "tests.integration.event_log_worker"

WRITERS = 8
EVENTS_PER_WRITER = 200
TOTAL_EVENTS = WRITERS * EVENTS_PER_WRITER
CONTENDERS = 8
CONTENDED_ROUNDS = 3
IDEMPOTENT_WRITERS = 4
IDEMPOTENT_ROUNDS = 3

# Generous limits that only a hang reaches: the tests take seconds.
START_TIMEOUT = 60.0
RUN_TIMEOUT = 90.0
TAIL_TIMEOUT = RUN_TIMEOUT - 30.0  # the reader gives up, and reports, before it is killed


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def open_log(url: str) -> SqlEventLog:
    return SqlEventLog(open_database(DatabaseSettings(url=url)))


def event_log_workers(folder: Path, db_url: str) -> Workers:
    """Event log workers on the database at ``db_url``, with this suite's time limits."""
    return Workers(
        folder,
        WORKER_MODULE,
        [f"--db={db_url}"],
        start_timeout=START_TIMEOUT,
        run_timeout=RUN_TIMEOUT,
    )


def as_row(record: RecordedEvent) -> list[Any]:
    """A recorded event as the tailing worker reports it."""
    return [record.position, record.stream_id, record.stream_version, str(record.event.event_id)]


@dataclass(frozen=True)
class ConcurrentWrites:
    writers: dict[str, dict[str, Any]]
    reader: dict[str, Any]
    log: list[RecordedEvent]
    db_url: str


@pytest.fixture(scope="module")
def concurrent_writes(tmp_path_factory: pytest.TempPathFactory) -> ConcurrentWrites:
    """8 writer processes x 200 appends, each to its own stream, tailed by a reader process.

    All nine processes are released together; the database is created and
    migrated here first, in the test process.
    """
    folder = tmp_path_factory.mktemp("concurrent-writes")
    db_url = sqlite_url(folder / "autoopt.db")
    open_log(db_url).engine.dispose()
    with event_log_workers(folder, db_url) as workers:
        for i in range(WRITERS):
            workers.start(
                "write", f"writer-{i}", f"--stream=stream-{i}", f"--count={EVENTS_PER_WRITER}"
            )
        workers.start("tail", "reader", f"--expect={TOTAL_EVENTS}", f"--tail-for={TAIL_TIMEOUT}")
        workers.release()
        results = workers.results()
    reader = results.pop("reader")
    log = open_log(db_url)
    records = list(log.read_all(after_position=0))
    log.engine.dispose()
    return ConcurrentWrites(writers=results, reader=reader, log=records, db_url=db_url)


def test_concurrent_writers_get_gap_free_unique_positions(
    concurrent_writes: ConcurrentWrites,
) -> None:
    """8 processes appending at once leave positions exactly 1..1600: no gap, no duplicate.

    Also: each writer was told the positions its events really sit at, and no
    two writers were told the same one.
    """
    positions = [r.position for r in concurrent_writes.log]
    assert positions == list(range(1, TOTAL_EVENTS + 1))

    told = Counter(p for result in concurrent_writes.writers.values() for p in result["positions"])
    assert sorted(told) == list(range(1, TOTAL_EVENTS + 1))
    assert told.most_common(1)[0][1] == 1, "two appends were told the same position"

    stored_at = {str(r.event.event_id): r.position for r in concurrent_writes.log}
    for name, result in concurrent_writes.writers.items():
        assert [stored_at[e] for e in result["event_ids"]] == result["positions"], name

    # Without overlap the test would prove nothing: serial writers leave 8 disjoint
    # blocks. A loaded machine interleaves less, so ask only that most writers'
    # spans of positions cross another writer's span (serial ones cross none).
    spans = [(min(r["positions"]), max(r["positions"])) for r in concurrent_writes.writers.values()]
    crossing = sum(
        any(
            lo < other_hi and other_lo < hi
            for other_lo, other_hi in spans
            if (other_lo, other_hi) != (lo, hi)
        )
        for lo, hi in spans
    )
    assert crossing > WRITERS // 2, f"precondition: the writers barely overlapped ({crossing})"


def test_each_stream_has_versions_one_to_200_in_append_order(
    concurrent_writes: ConcurrentWrites,
) -> None:
    """Under contention each stream still gets versions 1..200, in the order its writer appended."""
    log = open_log(concurrent_writes.db_url)
    try:
        for i in range(WRITERS):
            stream = log.read_stream(f"stream-{i}")
            assert [r.stream_version for r in stream] == list(range(1, EVENTS_PER_WRITER + 1))
            assert [str(r.event.event_id) for r in stream] == (
                concurrent_writes.writers[f"writer-{i}"]["event_ids"]
            )
            positions = [r.position for r in stream]
            assert positions == sorted(positions), "versions out of position order"
            assert log.stream_version(f"stream-{i}") == EVENTS_PER_WRITER
        assert log.last_position() == TOTAL_EVENTS
    finally:
        log.engine.dispose()


def test_a_reader_tailing_during_the_writes_sees_every_position_in_order(
    concurrent_writes: ConcurrentWrites,
) -> None:
    """A reader process polling ``read_all(after_position=last_seen)`` never sees p+1 before p.

    Positions are committed in order, so the positions it observed are exactly
    1, 2, 3, ... 1600: a later commit of a lower position would be a skip (the
    reader has already moved past it and never sees it). What it saw is also
    what the log holds at the end: nothing it read was changed afterwards.
    """
    reader = concurrent_writes.reader
    seen = [row[0] for row in reader["observed"]]
    skip = next(((a, b) for a, b in pairwise([0, *seen]) if b != a + 1), None)
    assert skip is None, f"the reader saw position {skip[1]} right after {skip[0]}"
    assert len(seen) == TOTAL_EVENTS, f"the reader saw only {len(seen)} events"
    assert reader["observed"] == [as_row(r) for r in concurrent_writes.log]

    # The reader must have watched the log grow, or it tailed nothing.
    assert reader["growing_polls"] >= 10, f"precondition: {reader['growing_polls']} growing polls"


def contend_plan(folder: Path, name: str, steps: list[dict[str, Any]]) -> str:
    plan = folder / f"{name}.plan.json"
    plan.write_text(json.dumps(steps), encoding="utf-8")
    return f"--plan={plan}"


def test_only_one_of_simultaneous_appends_at_the_same_expected_version_wins(
    tmp_path: Path,
) -> None:
    """8 processes append to one stream at expected version v at once: one wins, 7 conflict.

    The stream starts with 1 event; in round r every process appends its own
    event with ``expected_version=r``. Each round exactly one append succeeds
    and the other seven raise ``ConcurrencyError``, so after round r the stream
    holds exactly r + 1 events: the seed and the winners', in round order.
    """
    db_url = sqlite_url(tmp_path / "autoopt.db")
    log = open_log(db_url)
    seed = run_started("contested")
    assert log.append("contested", [seed], expected_version=0) == [1]

    with event_log_workers(tmp_path, db_url) as workers:
        for i in range(CONTENDERS):
            steps = [
                {
                    "event": prompt_extracted("contested", r, f"contender {i}").model_dump(
                        mode="json"
                    ),
                    "expected": r,
                }
                for r in range(1, CONTENDED_ROUNDS + 1)
            ]
            plan = contend_plan(tmp_path, f"contender-{i}", steps)
            workers.start("contend", f"contender-{i}", "--stream=contested", plan)
        for r in range(1, CONTENDED_ROUNDS + 1):
            workers.wait_ready(r)
            assert log.stream_version("contested") == r, f"before round {r}"
            workers.go(r)
        results = workers.results()

    winners: list[str] = []
    for r in range(1, CONTENDED_ROUNDS + 1):
        outcomes = {name: result["outcomes"][r - 1] for name, result in results.items()}
        won = [o for o in outcomes.values() if o["ok"]]
        assert len(won) == 1, f"round {r}: {len(won)} appends succeeded: {outcomes}"
        assert won[0]["positions"] == [r + 1], f"round {r}"
        lost = [o["error_type"] for o in outcomes.values() if not o["ok"]]
        assert lost == ["ConcurrencyError"] * (CONTENDERS - 1), f"round {r}: {outcomes}"
        winners.append(won[0]["event_id"])

    stream = log.read_stream("contested")
    assert [str(r.event.event_id) for r in stream] == [str(seed.event_id), *winners]
    assert [r.stream_version for r in stream] == list(range(1, CONTENDED_ROUNDS + 2))
    assert log.last_position() == CONTENDED_ROUNDS + 1
    log.engine.dispose()


def test_the_same_event_appended_by_several_processes_at_once_is_stored_once(
    tmp_path: Path,
) -> None:
    """4 processes append the same event (same id, no version check) at once: stored once.

    Every process is told the same single position, the one the event sits at,
    and the log holds the event exactly once. Three rounds, a new event each.
    """
    db_url = sqlite_url(tmp_path / "autoopt.db")
    log = open_log(db_url)
    # Another stream first, so that positions and stream versions differ.
    assert log.append("other", [run_started("other")], expected_version=0) == [1]
    shared = [
        prompt_extracted("shared", r, "the one event").model_dump(mode="json")
        for r in range(1, IDEMPOTENT_ROUNDS + 1)
    ]
    steps = [{"event": event, "expected": None} for event in shared]

    with event_log_workers(tmp_path, db_url) as workers:
        for i in range(IDEMPOTENT_WRITERS):
            plan = contend_plan(tmp_path, f"duplicate-{i}", steps)
            workers.start("contend", f"duplicate-{i}", "--stream=shared", plan)
        for r in range(1, IDEMPOTENT_ROUNDS + 1):
            workers.release(r)
        results = workers.results()

    records = list(log.read_all())
    stored = Counter(str(r.event.event_id) for r in records)
    for r, event in enumerate(shared, start=1):
        outcomes = {name: result["outcomes"][r - 1] for name, result in results.items()}
        assert all(o["ok"] for o in outcomes.values()), f"round {r}: {outcomes}"
        told = {tuple(o["positions"]) for o in outcomes.values()}
        assert told == {(r + 1,)}, f"round {r}: processes were told {told}"
        assert stored[event["event_id"]] == 1, f"round {r}: stored {stored[event['event_id']]}x"
    assert [str(r.event.event_id) for r in log.read_stream("shared")] == [
        e["event_id"] for e in shared
    ]
    assert len(records) == IDEMPOTENT_ROUNDS + 1
    log.engine.dispose()


def test_processes_creating_the_same_new_database_at_once_all_succeed(tmp_path: Path) -> None:
    """8 processes call ``open_database`` on a file nobody created yet, at once, then append.

    One migrates, the others wait and find it done: every process gets a
    usable log, the schema is at head, and the 8 appends land at 1..8.
    """
    path = tmp_path / "fresh.db"
    db_url = sqlite_url(path)
    with event_log_workers(tmp_path, db_url) as workers:
        for i in range(WRITERS):
            workers.start("open-append", f"opener-{i}", f"--stream=stream-{i}")
        workers.release()
        results = workers.results()

    told = sorted(p for result in results.values() for p in result["positions"])
    assert told == list(range(1, WRITERS + 1))
    log = open_log(db_url)
    assert current_revision(log.engine) == (head_revision(), False)
    assert [r.position for r in log.read_all()] == list(range(1, WRITERS + 1))
    for i in range(WRITERS):
        assert log.stream_version(f"stream-{i}") == 1
    log.engine.dispose()
