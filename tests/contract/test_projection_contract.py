"""One contract for the read models (``ProjectionRunner``), on SQLite and PostgreSQL.

Catching up is equal to a rebuild however the log is split into batches, and a
projector that cannot apply an event stops there, naming its position, without
moving its checkpoint past it. PostgreSQL joins when
``AUTOOPT_TEST_POSTGRES_URL`` is set (``.ci/run`` sets it); each test gets a
temporary database of its own.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, delete, select

from autoopt.cli.main import cli
from autoopt.domain.errors import ProjectionError
from autoopt.domain.events import RunCompleted
from autoopt.infrastructure.event_store import SqlEventLog
from autoopt.infrastructure.projections import tables
from autoopt.infrastructure.projections.projectors import PROJECTORS
from autoopt.infrastructure.projections.runner import ProjectionRunner
from tests.conftest import REPO_ROOT
from tests.factories import at, prompt_extracted, run_started
from tests.postgres import postgres_backends, temporary_postgres_engine

BACKENDS = ["sqlite", *postgres_backends()]
EXAMPLE = REPO_ROOT / "examples" / "support_bot.yml"
ROLLED_BACK = "Support Bot/1732000000003/prompt_template/0/text"


@dataclass(frozen=True)
class Database:
    engine: Engine
    url: str


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest) -> Iterator[Database]:
    """A migrated database, and its URL for ``autoopt`` to open on its own."""
    if request.param == "sqlite":
        engine = request.getfixturevalue("sqlite_engine")
        yield Database(engine, engine.url.render_as_string(hide_password=False))
    else:
        with temporary_postgres_engine() as engine:
            yield Database(engine, engine.url.render_as_string(hide_password=False))


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every projection table and the checkpoints, rows sorted."""
    with engine.connect() as conn:
        return {
            t.name: sorted((tuple(row) for row in conn.execute(select(t))), key=repr)
            for t in [*(p.table for p in PROJECTORS), tables.projection_checkpoints]
        }


def checkpoints(engine: Engine) -> dict[str, int]:
    return {s.name: s.checkpoint for s in ProjectionRunner(engine, SqlEventLog(engine)).status()}


def autoopt(workdir: Path, url: str, *args: str) -> None:
    """``autoopt`` in-process on the database at ``url``, versions stored in it too."""
    config = workdir / "autoopt.yaml"
    if not config.exists():
        config.write_text(
            "optimizer:\n"
            "  storage: {backend: database, "
            f"storage_dir: {json.dumps(str(workdir / 'versions'))}}}\n"
            f"  database: {{url: {json.dumps(url)}}}\n",
            encoding="utf-8",
        )
    env: dict[str, str | None] = {key: None for key in os.environ if key.startswith("OPTIMIZER_")}
    result = CliRunner().invoke(
        cli, ["--config", str(config), *args], env={**env, "OPENAI_API_KEY": ""}
    )
    assert result.exit_code == 0, (args, result.output, result.exception)


@pytest.fixture
def optimized(database: Database, tmp_path: Path) -> Database:
    """Two runs of the example app and a rollback, recorded by the real service,
    the read models caught up by the commands themselves."""
    for name in ("a.yml", "b.yml"):
        shutil.copy(EXAMPLE, tmp_path / name)
        autoopt(tmp_path, database.url, "optimize", str(tmp_path / name))
    autoopt(tmp_path, database.url, "versions", "rollback", ROLLED_BACK, "1")
    return database


def test_the_commands_catch_up_equals_a_rebuild(optimized: Database) -> None:
    """After real runs, the read models the commands caught up are complete (every
    checkpoint at the head) and equal, row for row, a rebuild from the log."""
    engine = optimized.engine
    head = SqlEventLog(engine).last_position()
    assert head > 0
    assert set(checkpoints(engine).values()) == {head}
    incremental = snapshot(engine)
    assert len(incremental["runs"]) == 2
    assert any(row[2] == "rollback" for row in incremental["versions"])

    rebuilt = ProjectionRunner(engine, SqlEventLog(engine)).rebuild()
    assert set(rebuilt.values()) == {head}
    assert snapshot(engine) == incremental


def test_catching_up_in_small_steps_with_fresh_runners_equals_one_rebuild(
    optimized: Database,
) -> None:
    """Emptied read models caught up by several fresh runners (as separate
    commands would), each for a few projectors and in batches of a few events,
    so that projectors sit at different checkpoints in between, end equal to one
    rebuild."""
    engine = optimized.engine
    head = SqlEventLog(engine).last_position()
    ProjectionRunner(engine, SqlEventLog(engine)).rebuild()
    rebuilt = snapshot(engine)
    with engine.begin() as conn:
        for projector in PROJECTORS:
            conn.execute(delete(projector.table))
        conn.execute(delete(tables.projection_checkpoints))

    rng = random.Random(11)
    untouched = list(PROJECTORS)
    for size in (1, 2, 2):
        chosen = rng.sample(untouched, size)
        untouched = [p for p in untouched if p not in chosen]
        runner = ProjectionRunner(engine, SqlEventLog(engine), chosen, batch=rng.randint(1, 7))
        applied = runner.catch_up()
        assert all(applied.values())
        marks = checkpoints(engine)
        assert {marks[p.name] for p in chosen} == {head}
    assert untouched
    assert {checkpoints(engine)[p.name] for p in untouched} == {0}
    ProjectionRunner(engine, SqlEventLog(engine), batch=5).catch_up()
    assert set(checkpoints(engine).values()) == {head}
    assert snapshot(engine) == rebuilt


@pytest.mark.parametrize("batch", [1, 1000], ids=["one event a batch", "one batch"])
def test_an_event_a_projector_cannot_apply_stops_it_at_that_position(
    database: Database, batch: int
) -> None:
    """A RunCompleted with no RunStarted stops the runs projector with a
    ProjectionError naming position and type; its checkpoint stays before the
    event (where the last applied batch left it), and a retry stops again."""
    engine = database.engine
    log = SqlEventLog(engine)
    log.append("run-run-1", [run_started()], 0)
    orphan = RunCompleted(
        event_id=uuid.uuid4(),
        occurred_at=at(1),
        run_id="ghost",
        prompts_found=0,
        prompts_optimized=0,
        versions_created=0,
    )
    log.append("run-ghost", [orphan], 0)
    stopped = r"projection runs stopped at position 2 \(RunCompleted\)"
    with pytest.raises(ProjectionError, match=stopped):
        ProjectionRunner(engine, log, batch=batch).catch_up()
    assert checkpoints(engine)["runs"] == (1 if batch == 1 else 0)
    with pytest.raises(ProjectionError, match=stopped):
        ProjectionRunner(engine, log, batch=batch).catch_up()
    assert checkpoints(engine)["runs"] == (1 if batch == 1 else 0)
    with engine.connect() as conn:
        runs = conn.execute(select(tables.runs.c.run_id)).scalars().all()
    assert runs == (["run-1"] if batch == 1 else [])


@pytest.mark.parametrize("same_batch", [True, False], ids=["same batch", "later batch"])
def test_a_duplicate_row_stops_the_projector_at_the_second_event(
    database: Database, same_batch: bool
) -> None:
    """The same prompt extracted twice in one run: the prompts projector stops at
    the second PromptExtracted (position 3), whether the row writer or the
    table's key refuses it, and the refused batch is not applied."""
    engine = database.engine
    log = SqlEventLog(engine)
    log.append("run-run-1", [run_started(), prompt_extracted(), prompt_extracted()], 0)
    with pytest.raises(
        ProjectionError, match=r"projection prompts stopped at position 3 \(PromptExtracted\)"
    ):
        ProjectionRunner(engine, log, batch=1000 if same_batch else 2).catch_up()
    assert checkpoints(engine)["prompts"] == (0 if same_batch else 2)
    with engine.connect() as conn:
        stored = conn.execute(select(tables.prompts.c.position)).scalars().all()
    assert stored == ([] if same_batch else [2])
