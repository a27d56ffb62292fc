"""Catching the read models up in random chunks, with restarts between, equals one full rebuild.

Hypothesis generates a history and the real ``OptimizerService`` (through ``Container``) records
it in database S: runs of Dify apps (the corpus in ``$AUTOOPT_CORPUS_DIR`` and the repository's
own fixtures) under varied ``OptimizationConfig``; some with prompts edited by hand before the run
(a ``manual`` version); some with a stand-in language model that answers, fails, or does both (so
``llm_calls`` gets rows, errors included); some writing their output, some failing to
(``RunFailed``); and ``VersionManager.rollback`` calls between runs.

S's log is then appended, event for event and stream for stream, to a second database R a chunk at
a time. Hypothesis places the chunk boundaries at any position: between runs, inside a run, even
inside one of the service's append batches. After each chunk R's projections catch up: mostly with
a fresh engine and runner (what a restarted process does), sometimes with the runner of the last
chunk, sometimes twice in a row.

Asserted: every read-model table, all rows in primary-key order, and ``projection_checkpoints``
are equal in R and in S after one ``rebuild()`` over S's whole log; every catch-up reads exactly
the events appended since the previous one (a second catch-up with nothing new reads nothing).
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, Table, select

from autoopt.domain.analyzer import PromptAnalysis
from autoopt.domain.dsl import extract_prompts
from autoopt.domain.dsl_loading import DifyApp, dump_dsl, load_dsl
from autoopt.domain.errors import DSLFormatError, LLMResponseError
from autoopt.domain.events import (
    RunCompleted,
    RunFailed,
    RunStarted,
    VersionCreated,
    VersionRolledBack,
)
from autoopt.domain.models import ChatMessage, LLMExchange, OptimizationConfig, PromptPatch
from autoopt.domain.patching import apply_patches
from autoopt.domain.ports import LLMAnswer, RecordedEvent
from autoopt.domain.strategies import ALL_STRATEGIES, clarity_focus, efficiency_focus
from autoopt.infrastructure.bootstrap import Container
from autoopt.infrastructure.db import open_database
from autoopt.infrastructure.dsl_files import FileSink
from autoopt.infrastructure.event_store import SqlEventLog
from autoopt.infrastructure.projections.projectors import PROJECTORS
from autoopt.infrastructure.projections.runner import ProjectionRunner
from autoopt.infrastructure.projections.tables import projection_checkpoints
from autoopt.infrastructure.settings import DatabaseSettings, Settings, StorageSettings
from tests.conftest import REPO_ROOT, sqlite_url
from tests.fakes import SequentialIds, SteppingClock

CORPUS = Path(os.environ.get("AUTOOPT_CORPUS_DIR", REPO_ROOT.parent / "shared/fixtures/dify"))
# The corpus apps small enough to keep an example fast, and the repository's own fixtures.
APP_FILES = sorted(
    [f for f in CORPUS.glob("*.yml") if f.stat().st_size <= 25_000] if CORPUS.is_dir() else []
) + sorted(
    [*(REPO_ROOT / "tests/fixtures/dify").glob("*.yml"), REPO_ROOT / "examples/support_bot.yml"]
)
TOOL_VERSION = "0.1.0+projection-test"
# What a person might add to a prompt by hand between two runs.
EDITS = (
    " Please note that you should maybe keep the answer short.",
    "\n\nIt is important to note that the answer must basically be correct.",
    "\n请注意，其实回答要简洁。",
    "\nたぶん、丁寧に答えてください。",
)


def read_model_tables() -> list[Table]:
    """Every projector's table, then the checkpoints."""
    return [*(p.table for p in PROJECTORS), projection_checkpoints]


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """All rows of every read-model table, in primary-key order."""
    with engine.connect() as conn:
        return {
            t.name: [tuple(row) for row in conn.execute(select(t).order_by(*t.primary_key))]
            for t in read_model_tables()
        }


def open_sqlite(path: Path, synchronous: Literal["OFF", "FULL"] = "FULL") -> Engine:
    return open_database(DatabaseSettings(url=sqlite_url(path), sqlite_synchronous=synchronous))


Behaviour = Literal["answers", "fails", "flaky"]


class StandInModel:
    """A language model behind the ``LLMRewriter`` port, deterministic and offline.

    It answers with the rules' rewrite, or fails with ``LLMResponseError`` (``flaky``: every
    other call); either way the exchange is recorded, as the real client does.
    """

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.calls = 0

    def rewrite(
        self, strategy: str, text: str, analysis: PromptAnalysis, edition: str
    ) -> LLMAnswer:
        self.calls += 1
        answer = clarity_focus(efficiency_focus(text, edition), edition)
        request = f"{strategy}\n{edition}\n{text}"
        exchange = LLMExchange(
            provider="openai",
            model="stand-in-model",
            base_url="http://127.0.0.1:9/v1",
            messages=(ChatMessage(role="user", content=request),),
            parameters={"temperature": 0.2},
            template_version="test-1",
            request_sha256=hashlib.sha256(request.encode()).hexdigest(),
            response_text=answer,
            prompt_tokens=len(request) // 4,
            completion_tokens=len(answer) // 4,
            cost_usd=None if self.calls % 5 == 0 else round(len(request) * 2.5e-7, 9),
            cached=self.calls % 3 == 0,
            latency_ms=float(10 + self.calls),
        )
        if self.behaviour == "fails" or (self.behaviour == "flaky" and self.calls % 2):
            error = LLMResponseError("the stand-in model answered nothing usable")
            error.exchange = exchange.model_copy(  # type: ignore[attr-defined]
                update={"error": str(error), "response_text": None}
            )
            raise error
        return LLMAnswer(answer, exchange)


@dataclass(frozen=True)
class Optimize:
    """One run of the service on an app, after ``edits`` (prompt pick, text appended)."""

    app: Path
    config: OptimizationConfig
    model: Behaviour | None
    edits: tuple[tuple[int, str], ...]
    output: Literal["none", "file", "unwritable"]


@dataclass(frozen=True)
class Rollback:
    """Roll one prompt (picked among those with versions) back to one of its versions."""

    prompt: int
    target: int


Step = Optimize | Rollback


@cache
def load_app(path: Path) -> tuple[DifyApp, str]:
    text = path.read_bytes().decode("utf-8-sig")
    return load_dsl(text, path.name), text


def edited(path: Path, edits: Sequence[tuple[int, str]]) -> tuple[DifyApp, str]:
    """The app with text appended to some prompts, as a person editing it in Dify would."""
    app, text = load_app(path)
    prompts = extract_prompts(app)
    if not edits or not prompts:
        return app, text
    targets = {prompts[pick % len(prompts)].document_path: addition for pick, addition in edits}
    patches = [
        PromptPatch(
            workflow_id=app.workflow_id,
            selector_type="by_path",
            selector_value=where,
            strategy="append",
            content=addition,
        )
        for where, addition in targets.items()
    ]
    text = dump_dsl(apply_patches(app, patches).document)
    return load_dsl(text, app.source), text


def container_for(folder: Path) -> Container:
    """The composition root over a database and a version store of the example's own.

    The log is written with ``synchronous=OFF``: its durability is not what is tested here.
    """
    settings = Settings(
        database=DatabaseSettings(url=sqlite_url(folder / "s.db"), sqlite_synchronous="OFF"),
        storage=StorageSettings(storage_dir=folder / "versions"),
    )
    return Container(settings=settings, clock=SteppingClock(), ids=SequentialIds())


def record_history(container: Container, steps: Sequence[Step], folder: Path) -> Counter[str]:
    """Carry the steps out with the real service and version manager; counts what happened."""
    happened: Counter[str] = Counter()
    for number, step in enumerate(steps):
        if isinstance(step, Rollback):
            latest: dict[str, int] = {}
            for record in container.event_log.read_all():
                if isinstance(record.event, VersionCreated | VersionRolledBack):
                    latest[record.event.prompt_id] = record.event.version
            if latest:
                prompt_id = sorted(latest)[step.prompt % len(latest)]
                container.versions.rollback(prompt_id, 1 + step.target % latest[prompt_id])
                happened["rollbacks"] += 1
            continue
        app, text = edited(step.app, step.edits)
        llm = StandInModel(step.model) if step.model else None
        service = container.optimizer_service(llm=llm)
        sink = {
            "none": None,
            "file": FileSink(folder / f"out-{number}.yml"),
            "unwritable": FileSink(folder / "no such folder" / "out.yml"),
        }[step.output]
        try:
            service.run(
                app,
                text,
                step.config,
                effective_config=container.settings.effective(),
                tool_version=TOOL_VERSION,
                sink=sink,
            )
        except DSLFormatError:
            assert step.output == "unwritable"
            happened["failed runs"] += 1
        else:
            happened["completed runs"] += 1
    return happened


def replay(source: SqlEventLog, target: SqlEventLog, after: int, upto: int) -> None:
    """Append the source's events (after, upto] to the target: same streams, same positions."""
    records = list(source.read_all(after_position=after, limit=upto - after))
    groups: list[list[RecordedEvent]] = []
    for record in records:
        if groups and groups[-1][0].stream_id == record.stream_id:
            groups[-1].append(record)
        else:
            groups.append([record])
    for group in groups:
        first = group[0]
        positions = target.append(
            first.stream_id, [r.event for r in group], expected_version=first.stream_version - 1
        )
        assert positions == [r.position for r in group]


def inside_a_run(log: SqlEventLog, position: int) -> bool:
    """Whether some run has started but not finished at ``position``."""
    open_runs: set[str] = set()
    for record in log.read_all(limit=position):
        if isinstance(record.event, RunStarted):
            open_runs.add(record.event.run_id)
        elif isinstance(record.event, RunCompleted | RunFailed):
            open_runs.discard(record.event.run_id)
    return bool(open_runs)


configs = st.builds(
    OptimizationConfig,
    strategies=st.lists(st.sampled_from(ALL_STRATEGIES), min_size=1, max_size=3, unique=True).map(
        tuple
    ),
    score_threshold=st.sampled_from([0.0, 50.0, 80.0, 95.0, 100.0]),
    min_confidence=st.sampled_from([0.0, 0.3, 0.7, 1.0]),
    max_iterations=st.integers(min_value=1, max_value=3),
)
optimize_steps = st.builds(
    Optimize,
    app=st.sampled_from(APP_FILES),
    config=configs,
    model=st.sampled_from([None, "answers", "fails", "flaky"]),
    edits=st.lists(
        st.tuples(st.integers(min_value=0, max_value=30), st.sampled_from(EDITS)), max_size=2
    ).map(tuple),
    output=st.sampled_from(["none", "file", "unwritable"]),
)
rollback_steps = st.builds(
    Rollback,
    prompt=st.integers(min_value=0, max_value=500),
    target=st.integers(min_value=0, max_value=50),
)
histories = st.tuples(
    optimize_steps, st.lists(st.one_of(optimize_steps, rollback_steps), max_size=4)
).map(lambda pair: [pair[0], *pair[1]])
ChunkMode = Literal["restart", "same runner", "twice"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=histories, data=st.data())
def test_catching_up_in_random_chunks_with_restarts_equals_a_full_rebuild(
    steps: list[Step], data: st.DataObject, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """R, caught up chunk by chunk with restarts, has S's one-pass rebuild to the row."""
    folder = tmp_path_factory.mktemp("history")
    container = container_for(folder)
    try:
        for what in record_history(container, steps, folder):
            event(f"{what} in the history")
        source = container.event_log
        head = source.last_position()
        ProjectionRunner(container.engine, source).rebuild()
        rebuilt = snapshot(container.engine)

        cuts = data.draw(
            st.sets(
                st.integers(min_value=1, max_value=max(1, head - 1)),
                min_size=1 if head > 1 else 0,
                max_size=10,
            ),
            "cuts",
        )
        bounds = sorted({*cuts, head} - {0})
        modes: list[ChunkMode] = data.draw(
            st.lists(
                st.sampled_from(["restart", "same runner", "twice"]),
                min_size=len(bounds),
                max_size=len(bounds),
            ),
            "modes",
        )
        event(f"{len(bounds)} chunk(s)")
        if any(inside_a_run(source, cut) for cut in bounds):
            event("a chunk ends inside a run")
        if rebuilt["llm_calls"]:
            event("llm_calls has rows")

        engine = open_sqlite(folder / "r.db")
        runner = ProjectionRunner(engine, SqlEventLog(engine))
        applied_upto = 0
        try:
            for upto, mode in zip(bounds, modes, strict=True):
                replay(source, SqlEventLog(engine), applied_upto, upto)
                if mode != "same runner":  # a new process: its own engine and runner
                    engine.dispose()
                    engine = open_sqlite(folder / "r.db")
                    runner = ProjectionRunner(engine, SqlEventLog(engine))
                read = runner.catch_up()
                assert read == {p.name: upto - applied_upto for p in PROJECTORS}
                if mode == "twice":
                    assert runner.catch_up() == {p.name: 0 for p in PROJECTORS}
                applied_upto = upto
            assert {s.name: s.checkpoint for s in runner.status()} == {
                p.name: head for p in PROJECTORS
            }
            assert snapshot(engine) == rebuilt
        finally:
            engine.dispose()
    finally:
        container.close()
