"""A projector process killed with SIGKILL mid catch-up, 20 times, ends equal to a full rebuild.

The real service records a log of several thousand events in database G: every app of the
corpus optimized under four configurations (rule-based, with a stand-in model that answers, one
that fails now and then, one that always fails), prompts edited by hand between runs, rollbacks
and failed runs. G's file is copied to K, whose read models are still empty, and G is rebuilt in
one pass: the reference. A third database, appended the log a batch at a time and caught up
after each, gives what an uninterrupted projector holds at every batch end.

Then 20 times a projector process (``tests.integration.projection_worker``) starts catching K
up and the test kills it with SIGKILL after a seeded random delay, a fraction of the time the
reference rebuild took here, so that the kills land mid catch-up on slow and fast machines
alike. While a worker runs, the test reads K every few milliseconds: in each read transaction
every table has the row count an uninterrupted projector has at the checkpoint that same
snapshot shows (a reader never sees a batch without its checkpoint, or the reverse). After
every kill each projector's checkpoint sits at a batch end and its table holds
exactly what an uninterrupted projector holds there: no part of a batch whose checkpoint did not
commit, no event applied twice, none skipped; and the next process goes on from there without
error. A last process catches up to the head; K's tables, ``projection_checkpoints`` included,
then equal the reference rebuild row for row.

The test fails if fewer than ``MIN_PARTIAL`` kills found a projector part-way through the log
(checkpoint strictly between 0 and head): the kills would have proved nothing.
Set ``AUTOOPT_KILL_SEED`` to replay another sequence of delays.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from autoopt.domain.models import OptimizationConfig
from autoopt.infrastructure.event_store import SqlEventLog
from autoopt.infrastructure.projections.projectors import PROJECTORS
from autoopt.infrastructure.projections.runner import ProjectionRunner
from autoopt.infrastructure.projections.tables import projection_checkpoints
from tests.conftest import REPO_ROOT, sqlite_url
from tests.integration.test_projection_chunks import (
    EDITS,
    Optimize,
    Rollback,
    Step,
    container_for,
    open_sqlite,
    record_history,
    replay,
    snapshot,
)

pytestmark = pytest.mark.slow

KILLS = 20
MIN_PARTIAL = 5
SEED = int(os.environ.get("AUTOOPT_KILL_SEED", "20261130"))
# Each delay is up to this fraction of the reference rebuild's time: 20 of them add up to
# about half a catch-up, so most kills find the worker busy whatever the machine's speed.
MAX_DELAY_FRACTION = 0.1
# The workers' batch: small enough that a kill a few milliseconds in finds some batches
# committed and more to come (a whole catch-up takes well under a second here).
BATCH = 100

RULES = OptimizationConfig(strategies=("clarity_focus", "efficiency_focus"), max_iterations=2)
MODEL = OptimizationConfig(
    strategies=("llm_guided", "llm_clarity", "hybrid"), max_iterations=3, min_confidence=0.3
)
AUTO = OptimizationConfig(strategies=("auto", "structure_focus"), score_threshold=99.0)
FAILING_MODEL = OptimizationConfig(
    strategies=("llm_efficiency",), max_iterations=5, score_threshold=100.0, min_confidence=0.0
)


def corpus_history(apps: list[Path]) -> list[Step]:
    """Four passes over the corpus; rollbacks after the first; edits and failures in the third."""
    steps: list[Step] = [
        Optimize(app, RULES, None, (), "file" if i % 10 == 0 else "none")
        for i, app in enumerate(apps)
    ]
    steps += [Rollback(prompt=7 * i, target=0) for i in range(3)]
    steps += [Optimize(app, MODEL, "answers", (), "none") for app in apps]
    steps += [
        Optimize(
            app,
            AUTO,
            "flaky",
            ((i, EDITS[i % len(EDITS)]),) if i % 4 == 0 else (),
            "unwritable" if i % 15 == 0 else "none",
        )
        for i, app in enumerate(apps)
    ]
    steps += [Optimize(app, FAILING_MODEL, "fails", (), "none") for app in apps]
    return steps


def copy_database(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite database, through SQLite's own backup."""
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


Tables = dict[str, list[tuple[object, ...]]]


def states_at_batch_ends(source: SqlEventLog, folder: Path) -> dict[int, Tables]:
    """The read models of an uninterrupted projector at every checkpoint a batch can leave.

    From an empty start those are 0, BATCH, 2 * BATCH, ... and the head. Each state is made
    by appending the log up to there to a database of its own and catching it up.
    """
    head = source.last_position()
    engine = open_sqlite(folder / "prefixes.db", "OFF")
    try:
        log = SqlEventLog(engine)
        runner = ProjectionRunner(engine, log, batch=BATCH)
        states = {0: snapshot(engine)}
        position = 0
        for end in [*range(BATCH, head, BATCH), head]:
            replay(source, log, position, end)
            runner.catch_up()
            states[end] = snapshot(engine)
            position = end
        return states
    finally:
        engine.dispose()


def assert_tables_match_checkpoints(
    engine: Engine, states: dict[int, Tables], label: str
) -> dict[str, int]:
    """Each projector's table is what an uninterrupted projector makes up to its checkpoint.

    So no batch was half applied, none twice, none skipped. Returns the checkpoints.
    """
    runner = ProjectionRunner(engine, SqlEventLog(engine))
    checkpoints = {s.name: s.checkpoint for s in runner.status()}
    current = snapshot(engine)
    for projector in PROJECTORS:
        name, checkpoint = projector.table.name, checkpoints[projector.name]
        assert checkpoint in states, f"{label}: {projector.name} at {checkpoint}, not a batch end"
        assert current[name] == states[checkpoint][name], f"{label}: {name} at {checkpoint}"
    return checkpoints


def assert_a_reader_sees_whole_batches(
    engine: Engine, counts: dict[int, dict[str, int]], label: str
) -> None:
    """In one read transaction, taken while a worker writes: every table has as many rows
    as an uninterrupted projector's at the checkpoint the same snapshot shows."""
    with engine.connect() as conn:
        marks: dict[str, int] = dict(conn.execute(select(projection_checkpoints)).all())
        rows = {
            p.name: conn.execute(select(func.count()).select_from(p.table)).scalar_one()
            for p in PROJECTORS
        }
    for projector in PROJECTORS:
        checkpoint = int(marks.get(projector.name, 0))
        assert checkpoint in counts, f"{label}: {projector.name} at {checkpoint}, not a batch end"
        expected = counts[checkpoint][projector.table.name]
        assert rows[projector.name] == expected, (
            f"{label}: {projector.table.name} had {rows[projector.name]} rows at checkpoint "
            f"{checkpoint}, where a whole-batch projector has {expected}"
        )


def start_worker(url: str) -> subprocess.Popen[str]:
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.projection_worker", url, str(BATCH)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert worker.stdout is not None
    first = worker.stdout.readline()
    if first != "ready\n":
        worker.kill()
        raise AssertionError(f"worker did not start: {first!r} {worker.communicate()[1]}")
    return worker


def test_sigkilled_projector_ends_equal_to_a_full_rebuild(tmp_path: Path, corpus_dir: Path) -> None:
    """20 kills mid catch-up: consistent after each, equal to the rebuild at the end."""
    rng = random.Random(SEED)
    history = tmp_path / "history"
    container = container_for(history)
    try:
        happened = record_history(
            container, corpus_history(sorted(corpus_dir.glob("*.yml"))), history
        )
        head = container.event_log.last_position()
        states = states_at_batch_ends(container.event_log, tmp_path)
    finally:
        container.close()
    assert head >= 3000, f"only {head} events: too few to kill a catch-up part-way"
    assert happened["rollbacks"] and happened["failed runs"], happened

    copy_database(history / "s.db", tmp_path / "k.db")
    reference_engine = open_sqlite(history / "s.db")
    try:
        started = time.perf_counter()
        ProjectionRunner(reference_engine, SqlEventLog(reference_engine), batch=BATCH).rebuild()
        rebuild_seconds = time.perf_counter() - started
        reference = snapshot(reference_engine)
    finally:
        reference_engine.dispose()
    assert states[head] == reference, "catching up batch by batch differs from the rebuild"

    url = sqlite_url(tmp_path / "k.db")
    engine = open_sqlite(tmp_path / "k.db")
    counts = {
        end: {name: len(rows) for name, rows in state.items()} for end, state in states.items()
    }
    partial = finished_first = looks = 0
    worker: subprocess.Popen[str] | None = None
    try:
        for kill in range(1, KILLS + 1):
            worker = start_worker(url)
            deadline = time.monotonic() + rng.uniform(0.0, MAX_DELAY_FRACTION * rebuild_seconds)
            while time.monotonic() < deadline:
                assert_a_reader_sees_whole_batches(engine, counts, f"while worker {kill} ran")
                looks += 1
                time.sleep(0.002)
            worker.send_signal(signal.SIGKILL)
            _, errors = worker.communicate(timeout=60)
            assert worker.returncode in (0, -signal.SIGKILL), f"kill {kill}: {errors}"
            finished_first += worker.returncode == 0
            checkpoints = assert_tables_match_checkpoints(engine, states, f"after kill {kill}")
            partial += any(0 < c < head for c in checkpoints.values())

        worker = start_worker(url)
        _, errors = worker.communicate(timeout=120)
        assert worker.returncode == 0, f"the last catch-up failed: {errors}"
        final = assert_tables_match_checkpoints(engine, states, "at the end")
        assert final == {p.name: head for p in PROJECTORS}
        assert snapshot(engine) == reference
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
            worker.wait()
        engine.dispose()

    print(
        f"{head} events, rebuild {rebuild_seconds:.2f} s; of {KILLS} kills {partial} left a "
        f"projector part-way, {finished_first} came after the worker had finished; "
        f"a reader looked {looks} times while workers ran"
    )
    assert partial >= MIN_PARTIAL, (
        f"only {partial} of {KILLS} kills found a projector part-way through the log"
    )
