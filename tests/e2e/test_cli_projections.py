"""Read models: caught up after every appending command, equal to a rebuild,
and stopped (not skipping) at an event they cannot apply."""

from __future__ import annotations

import random
import shutil
import uuid

import pytest
from sqlalchemy import Engine, select

from autoopt.domain.errors import ProjectionError
from autoopt.domain.events import RunCompleted
from autoopt.infrastructure.event_store import SqlEventLog
from autoopt.infrastructure.projections import tables
from autoopt.infrastructure.projections.runner import ProjectionRunner
from tests.conftest import REPO_ROOT
from tests.e2e.conftest import Invoke
from tests.factories import at, prompt_extracted, run_started

EXAMPLE = REPO_ROOT / "examples" / "support_bot.yml"
READ_MODELS = [
    tables.runs,
    tables.prompts,
    tables.iterations,
    tables.versions,
    tables.patches,
    tables.llm_calls,
]


def snapshot(engine: Engine) -> dict[str, list[tuple[object, ...]]]:
    with engine.connect() as conn:
        return {
            t.name: sorted((tuple(row) for row in conn.execute(select(t))), key=repr)
            for t in READ_MODELS
        }


@pytest.fixture
def optimized(autoopt: Invoke) -> Invoke:
    for name in ("a.yml", "b.yml"):
        shutil.copy(EXAMPLE, autoopt.workdir / name)
        assert autoopt("optimize", str(autoopt.workdir / name)).exit_code == 0
    autoopt("versions", "rollback", "Support Bot/1732000000003/prompt_template/0/text", "1")
    return autoopt


def test_appending_commands_leave_the_read_models_current(optimized: Invoke) -> None:
    status = optimized("projections", "status", "--format", "csv").stdout.splitlines()
    head = optimized.log().last_position()
    assert status[0] == "projection,checkpoint,head,lag"
    assert status[1:] == [
        f"{name},{head},{head},0"
        for name in ("runs", "prompts", "iterations", "versions", "patches", "llm_calls")
    ]
    with optimized.services() as services:
        rows = snapshot(services.engine)
    assert len(rows["runs"]) == 2
    assert {r[7] for r in rows["runs"]} == {"completed"}
    assert len(rows["prompts"]) == 18
    assert len(rows["patches"]) == 4
    assert len(rows["versions"]) == 9 + 2 + 1  # baselines, optimized, one rollback
    assert any(r[2] == "rollback" for r in rows["versions"])
    # PromptAnalyzed filled in every prompt's baseline and triage; patched ones were taken up.
    p = tables.prompts.c
    with optimized.services() as services, services.engine.connect() as conn:
        triage = conn.execute(
            select(p.prompt_id, p.triage, p.triage_reason, p.baseline_overall, p.issues)
        ).all()
        patched = set(conn.execute(select(tables.patches.c.prompt_id)).scalars())
    assert {t.triage for t in triage} == {"optimize", "skip"}
    assert all(t.baseline_overall is not None and t.triage_reason for t in triage)
    assert patched and all(t.triage == "optimize" for t in triage if t.prompt_id in patched)
    assert any("too_short:critical" in t.issues for t in triage if t.issues)
    # RunStarted's settings: the defaults, and no model (the test has no API key).
    r = tables.runs.c
    with optimized.services() as services, services.engine.connect() as conn:
        settings = set(
            conn.execute(
                select(
                    r.strategies,
                    r.score_threshold,
                    r.min_confidence,
                    r.max_iterations,
                    r.language_model,
                )
            ).all()
        )
    assert settings == {("llm_guided,hybrid", 80.0, 0.7, 3, None)}


def test_catching_up_in_random_chunks_equals_a_rebuild(optimized: Invoke) -> None:
    with optimized.services() as services:
        engine = services.engine
        incremental = snapshot(engine)
        runner = ProjectionRunner(engine, SqlEventLog(engine))
        runner.rebuild()
        assert snapshot(engine) == incremental

        # Start over and catch up a few events at a time, with fresh runners between chunks.
        rng = random.Random(7)
        for projector in runner.projectors:
            with engine.begin() as conn:
                conn.execute(projector.table.delete())
                conn.execute(tables.projection_checkpoints.delete())
        while True:
            batch = rng.randint(1, 7)
            applied = ProjectionRunner(engine, SqlEventLog(engine), batch=batch).catch_up()
            if not any(applied.values()):
                break
        assert snapshot(engine) == incremental


def test_an_event_a_projector_cannot_apply_stops_it_at_that_position(sqlite_engine: Engine) -> None:
    log = SqlEventLog(sqlite_engine)
    orphan = RunCompleted(
        event_id=uuid.uuid4(),
        occurred_at=at(1),
        run_id="ghost",
        prompts_found=0,
        prompts_optimized=0,
        versions_created=0,
    )
    log.append("run-ghost", [orphan], 0)
    runner = ProjectionRunner(sqlite_engine, log)
    with pytest.raises(
        ProjectionError, match=r"projection runs stopped at position 1 \(RunCompleted\)"
    ):
        runner.catch_up()
    assert {s.name: s.checkpoint for s in runner.status()}["runs"] == 0


@pytest.mark.parametrize("same_batch", [True, False], ids=["same batch", "later batch"])
def test_a_row_the_table_refuses_stops_the_projector_at_its_event(
    sqlite_engine: Engine, same_batch: bool
) -> None:
    """Rows are written a batch at a time; a refused one still names its own event.

    The same prompt extracted twice in one run: within one batch the writer
    refuses it, across batches the table's primary key does, and either way the
    projector stops at the second event and its batch is not applied."""
    log = SqlEventLog(sqlite_engine)
    log.append("run-run-1", [run_started(), prompt_extracted(), prompt_extracted()], 0)
    runner = ProjectionRunner(sqlite_engine, log, batch=1000 if same_batch else 2)
    with pytest.raises(
        ProjectionError, match=r"projection prompts stopped at position 3 \(PromptExtracted\)"
    ):
        runner.catch_up()
    checkpoints = {s.name: s.checkpoint for s in runner.status()}
    assert checkpoints["prompts"] == (0 if same_batch else 2)
    with sqlite_engine.connect() as conn:
        stored = conn.execute(select(tables.prompts.c.position)).scalars().all()
    assert stored == ([] if same_batch else [2])


def test_rebuild_through_the_cli(optimized: Invoke) -> None:
    result = optimized("projections", "rebuild")
    head = optimized.log().last_position()
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0] == f"runs: rebuilt from {head} event(s)"
    assert optimized("projections", "catch-up").stdout.splitlines()[0] == "runs: 0 event(s) applied"
