"""What the append benchmark measures autoopt against: floors, bare inserts, the peer.

The floor is fair: the same workload through plain ``sqlite3`` on the same disk
with the same durability (WAL, ``synchronous=FULL``, ``BEGIN IMMEDIATE`` ...
``COMMIT`` per append), the same table (constraints, index, triggers) and the
same work per append, in the same statements: look up the stored event ids,
read the stream version and ``max(position)`` in one query, check the version,
insert the rows with ``json.dumps`` payloads.
It leaves out just what is under scrutiny: SQLAlchemy and pydantic (the floor
gets ``event.payload()`` dicts made before timing). "bare insert" is a leaner
reference: INSERT + COMMIT per transaction, every parameter made in advance;
"no fsync" is the same bare insert at ``synchronous=OFF``: what SQLite itself
does with these rows on this machine when no commit waits for the disk, the
ceiling of any append however durable.

The peer is the ``eventsourcing`` library's SQLite recorder
(``SQLiteApplicationRecorder``, the one with a global order, as autoopt's
``position``; installed by the ``bench`` extra, never a runtime dependency),
on the same workloads: ``insert_events`` of ``StoredEvent`` objects made before
the clock starts (``originator_id`` the stream, ``originator_version`` the
stream version, ``topic`` the event type, ``state`` the same JSON payload bytes
the floor writes). Its optimistic-concurrency check is its table's primary key
(``originator_id``, ``originator_version``). Same durability: its pool switches
each connection to WAL itself but sets no ``synchronous``, so the benchmark's
datastore swaps in a pool whose ``_create_connection`` runs
``PRAGMA synchronous=FULL`` on every new connection (SQLite's default here, but
set, not assumed), and checks both PRAGMAs on the writer before timing. Without
``eventsourcing`` installed the peer is skipped, with one line saying so.
Its table is its own and slimmer: one composite primary key beside the rowid,
where autoopt's has three more indexes (``event_id``, ``(stream_id,
stream_version)``, ``correlation_id``), so in 100-event transactions the peer
also measures the schema. ``SYNCHRONOUS`` sets every SQLite implementation's
durability at once (profiles of the CPU side set it to ``OFF``; the script never does).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from contextlib import ExitStack
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import postgres_target
import psycopg

from autoopt.domain.events import PromptExtracted

SYNCHRONOUS = "FULL"  # every SQLite implementation's durability (profiling may set OFF)
SYNCHRONOUS_CODES = {"OFF": 0, "NORMAL": 1, "FULL": 2, "EXTRA": 3}

SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores a DateTime on SQLite

# What migrations/versions/0001_events.py creates on SQLite.
DDL = """
CREATE TABLE events (
    position INTEGER NOT NULL, event_id VARCHAR(36) NOT NULL,
    stream_id VARCHAR(1000) NOT NULL, stream_version INTEGER NOT NULL,
    event_type VARCHAR(100) NOT NULL, schema_version INTEGER NOT NULL,
    occurred_at DATETIME NOT NULL, correlation_id VARCHAR(100), causation_id VARCHAR(100),
    payload JSON NOT NULL,
    CONSTRAINT pk_events PRIMARY KEY (position),
    CONSTRAINT uq_events_event_id UNIQUE (event_id),
    CONSTRAINT uq_events_stream_id_stream_version UNIQUE (stream_id, stream_version)
);
CREATE INDEX ix_events_correlation_id ON events (correlation_id);
CREATE TRIGGER events_refuse_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only: UPDATE refused'); END;
CREATE TRIGGER events_refuse_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only: DELETE refused'); END;
"""
INSERT = (
    "INSERT INTO events (position, event_id, stream_id, stream_version, event_type,"
    " schema_version, occurred_at, correlation_id, causation_id, payload)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

# The same statements with psycopg's markers; the lock key is the one SqlEventLog takes.
PG_INSERT = INSERT.replace("?", "%s")
PG_LOCK = "SELECT pg_advisory_xact_lock(7316842001)"

Batch = tuple[str, list[PromptExtracted], int]  # stream_id, events, expected_version
Step = Callable[[], object]  # one append, one transaction
# event_id, event_type, schema_version, occurred_at, correlation_id, causation_id, payload
Row = tuple[str, str, int, datetime, str | None, str | None, dict[str, Any]]


def open_floor(path: Path, stack: ExitStack, synchronous: str | None = None) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    stack.callback(conn.close)
    durability = synchronous or SYNCHRONOUS  # read now: a profile may have changed it
    pragmas = ("busy_timeout=30000", "journal_mode=WAL", f"synchronous={durability}")
    for pragma in (*pragmas, "foreign_keys=ON"):
        conn.execute(f"PRAGMA {pragma}")
    conn.executescript(DDL)
    return conn


def plain_rows(events: list[PromptExtracted]) -> list[Row]:
    """Made before timing: the floor does no pydantic work."""
    rows: list[Row] = []
    for e in events:
        head = (str(e.event_id), e.event_type, e.schema_version, e.occurred_at)
        rows.append((*head, e.correlation_id, e.causation_id, e.payload()))
    return rows


def to_params(pos: int, stream_id: str, version: int, row: Row) -> tuple[Any, ...]:
    eid, etype, sv, at, corr, cause, payload = row
    when = at.strftime(SQLITE_DATETIME)
    return (pos, eid, stream_id, version, etype, sv, when, corr, cause, json.dumps(payload))


def floor_append(conn: sqlite3.Connection, stream_id: str, rows: list[Row], expected: int) -> None:
    """What ``SqlEventLog.append`` does, by hand."""
    ids = [row[0] for row in rows]
    conn.execute("BEGIN IMMEDIATE")
    try:
        marks = ",".join("?" * len(ids))
        query = f"SELECT event_id, position, stream_id FROM events WHERE event_id IN ({marks})"
        stored = {eid: (pos, sid) for eid, pos, sid in conn.execute(query, ids)}
        if len(stored) < len(ids):
            if stored:
                raise RuntimeError("batch partly stored")
            # The same single round trip for both heads that SqlEventLog makes.
            query = (
                "SELECT (SELECT coalesce(max(stream_version), 0) FROM events WHERE stream_id = ?),"
                " (SELECT coalesce(max(position), 0) FROM events)"
            )
            current, last = conn.execute(query, (stream_id,)).fetchone()
            if expected != current:
                raise RuntimeError(f"stream {stream_id!r} is at {current}, expected {expected}")
            conn.executemany(
                INSERT,
                [to_params(last + k, stream_id, current + k, r) for k, r in enumerate(rows, 1)],
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def floor_steps(path: Path, batches: list[Batch], stack: ExitStack) -> list[Step]:
    conn = open_floor(path, stack)
    return [partial(floor_append, conn, s, plain_rows(events), exp) for s, events, exp in batches]


def bare_insert(conn: sqlite3.Connection, params: list[tuple[Any, ...]]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(INSERT, params)
    conn.execute("COMMIT")


def bare_steps(
    path: Path, batches: list[Batch], stack: ExitStack, synchronous: str | None = None
) -> list[Step]:
    conn = open_floor(path, stack, synchronous)
    steps: list[Step] = []
    for i, (stream_id, events, expected) in enumerate(batches):
        first = i * len(events)  # every batch of a workload has the same size
        rows = enumerate(plain_rows(events), 1)
        params = [to_params(first + k, stream_id, expected + k, row) for k, row in rows]
        steps.append(partial(bare_insert, conn, params))
    return steps


def pg_floor_append(
    conn: psycopg.Connection, stream_id: str, rows: list[Row], expected: int
) -> None:
    """What ``SqlEventLog.append`` does on PostgreSQL, by hand."""
    ids = [row[0] for row in rows]
    try:
        with conn.cursor() as cur:
            cur.execute(PG_LOCK)
            marks = ",".join(["%s"] * len(ids))
            query = f"SELECT event_id, position, stream_id FROM events WHERE event_id IN ({marks})"
            stored = {eid: (pos, sid) for eid, pos, sid in cur.execute(query, ids)}
            if len(stored) < len(ids):
                if stored:
                    raise RuntimeError("batch partly stored")
                query = (
                    "SELECT (SELECT coalesce(max(stream_version), 0) FROM events"
                    " WHERE stream_id = %s), (SELECT coalesce(max(position), 0) FROM events)"
                )
                head = cur.execute(query, (stream_id,)).fetchone()
                assert head is not None
                current, last = head
                if expected != current:
                    raise RuntimeError(f"stream {stream_id!r} is at {current}, expected {expected}")
                cur.executemany(
                    PG_INSERT,
                    [pg_params(last + k, stream_id, current + k, r) for k, r in enumerate(rows, 1)],
                )
        conn.commit()
    except BaseException:
        conn.rollback()
        raise


def pg_params(pos: int, stream_id: str, version: int, row: Row) -> tuple[Any, ...]:
    eid, etype, sv, at, corr, cause, payload = row
    return (pos, eid, stream_id, version, etype, sv, at, corr, cause, json.dumps(payload))


def open_pg_floor(url: str, stack: ExitStack) -> psycopg.Connection:
    conn = psycopg.connect(postgres_target.libpq_url(url))
    stack.callback(conn.close)
    return conn


def pg_floor_steps(url: str, batches: list[Batch], stack: ExitStack) -> list[Step]:
    conn = open_pg_floor(url, stack)
    return [
        partial(pg_floor_append, conn, s, plain_rows(events), exp) for s, events, exp in batches
    ]


def pg_bare_insert(conn: psycopg.Connection, params: list[tuple[Any, ...]]) -> None:
    with conn.cursor() as cur:
        cur.executemany(PG_INSERT, params)
    conn.commit()


def pg_bare_steps(url: str, batches: list[Batch], stack: ExitStack) -> list[Step]:
    conn = open_pg_floor(url, stack)
    steps: list[Step] = []
    for i, (stream_id, events, expected) in enumerate(batches):
        first = i * len(events)
        rows = enumerate(plain_rows(events), 1)
        params = [pg_params(first + k, stream_id, expected + k, row) for k, row in rows]
        steps.append(partial(pg_bare_insert, conn, params))
    return steps


def eventsourcing_steps(path: Path, batches: list[Batch], stack: ExitStack) -> list[Step]:
    """The peer: ``SQLiteApplicationRecorder.insert_events``, WAL and ``synchronous=FULL``."""
    from eventsourcing.persistence import StoredEvent
    from eventsourcing.sqlite import (
        SQLiteApplicationRecorder,
        SQLiteConnection,
        SQLiteConnectionPool,
        SQLiteDatastore,
    )

    class FullSyncPool(SQLiteConnectionPool):
        def _create_connection(self) -> SQLiteConnection:
            conn = super()._create_connection()  # this sets journal_mode=WAL
            conn.cursor().execute(f"PRAGMA synchronous={SYNCHRONOUS}")
            return conn

    datastore = SQLiteDatastore(str(path), originator_id_type="text")
    datastore.pool.close()  # it has made no connection yet
    datastore.pool = FullSyncPool(db_name=str(path))
    stack.callback(datastore.close)
    recorder = SQLiteApplicationRecorder(datastore)
    recorder.create_table()
    with datastore.get_connection(commit=True) as conn:
        cursor = conn.cursor()
        cursor.execute("PRAGMA journal_mode")
        journal = cursor.fetchone()[0]
        cursor.execute("PRAGMA synchronous")
        synchronous = cursor.fetchone()[0]
    if (journal.lower(), synchronous) != ("wal", SYNCHRONOUS_CODES[SYNCHRONOUS]):
        raise RuntimeError(f"eventsourcing peer: journal_mode={journal}, synchronous={synchronous}")
    steps: list[Step] = []
    for stream_id, events, expected in batches:
        stored = [
            StoredEvent(
                originator_id=stream_id,
                originator_version=expected + k,
                topic=row[1],
                state=json.dumps(row[6]).encode(),
            )
            for k, row in enumerate(plain_rows(events), 1)
        ]
        steps.append(partial(recorder.insert_events, stored))
    return steps
