"""The database version store across real processes and through the command line.

What the contract suite cannot show: separate OS processes numbering versions
of one prompt through ``VersionManager`` against one SQLite file and one
PostgreSQL database (with a pruner deleting behind them), and ``autoopt``
itself with ``storage: {backend: database}``.

This module is also its own worker: ``python -m
tests.integration.test_database_storage MODE ...`` (see ``tests.processes``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, select

from autoopt.cli.main import cli
from autoopt.domain.events import VersionCreated, VersionRolledBack
from autoopt.domain.models import Scores
from autoopt.domain.versions import prompt_stream
from autoopt.infrastructure.bootstrap import Container, build
from autoopt.infrastructure.db import open_database
from autoopt.infrastructure.event_store import SqlEventLog
from autoopt.infrastructure.settings import DatabaseSettings, Override, load_settings
from autoopt.infrastructure.storage import DatabaseStorage
from autoopt.infrastructure.tables import prompt_versions
from tests.conftest import REPO_ROOT
from tests.postgres import postgres_backends, temporary_postgres_engine
from tests.process_barrier import Barrier, run_mode, worker_parser
from tests.processes import Workers

WORKER_MODULE = "tests.integration.test_database_storage"
PROMPT = "wf-race/1711528915811/prompt_template/0/text"
WRITERS = 6
VERSIONS_EACH = 25
START_TIMEOUT = 60.0
RUN_TIMEOUT = 240.0
EXAMPLE = REPO_ROOT / "examples" / "support_bot.yml"


@pytest.fixture(params=["sqlite", *postgres_backends()])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated database that separate processes can open by URL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'shared.db'}"
        open_database(DatabaseSettings(url=url)).dispose()
        yield url
    else:
        with temporary_postgres_engine() as engine:
            yield engine.url.render_as_string(hide_password=False)


# -- the worker's side -----------------------------------------------------------------


def _services(url: str) -> Container:
    settings = load_settings(
        None,
        [
            Override(("database", "url"), url, "url"),
            Override(("storage", "backend"), "database", "backend"),
        ],
        environ={},
    )
    return build(settings)


def create(args: argparse.Namespace, barrier: Barrier) -> dict[str, Any]:
    """``count`` versions through ``VersionManager.create_version``; reports what it was given."""
    services = _services(args.url)
    services.versions.latest_or_none(args.prompt)  # connect before "go", not after
    barrier.arrive_and_wait(1)
    created = []
    for i in range(args.count):
        version = services.versions.create_version(
            args.prompt,
            f"{args.name} {i}: answer {{{{#sys.query#}}}} briefly. 简洁地回答。",
            kind="optimized",
            scores=Scores(overall=(i * 7) % 100, clarity=50, efficiency=50),
            strategy="clarity_focus",
        )
        created.append(version.version)
    services.close()
    return {"created": created}


def prune(args: argparse.Namespace, barrier: Barrier) -> dict[str, Any]:
    """Prune the prompt to its newest versions over and over while the writers write."""
    services = _services(args.url)
    barrier.arrive_and_wait(1)
    removed: list[int] = []
    for _ in range(args.count):
        if services.storage.list_versions(args.prompt):
            removed += services.versions.prune(args.prompt, keep=3)
    services.close()
    return {"removed": removed}


MODES = {"create": create, "prune": prune}


def main() -> int:
    parser = worker_parser(WORKER_MODULE, MODES)
    parser.add_argument("--url", required=True)
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--count", type=int, required=True)
    return run_mode(parser.parse_args(), MODES)


# -- the test's side -------------------------------------------------------------------


def run_workers(tmp_path: Path, url: str, pruners: int = 0) -> dict[str, dict[str, Any]]:
    with Workers(
        tmp_path / "workers",
        WORKER_MODULE,
        [f"--url={url}", f"--prompt={PROMPT}"],
        start_timeout=START_TIMEOUT,
        run_timeout=RUN_TIMEOUT,
    ) as workers:
        for i in range(WRITERS):
            workers.start("create", f"writer{i}", f"--count={VERSIONS_EACH}")
        for i in range(pruners):
            workers.start("prune", f"pruner{i}", f"--count={VERSIONS_EACH}")
        workers.release(1)
        return workers.results()


def stored_rows(engine: Engine) -> dict[int, tuple[str, bool]]:
    """Every row of the prompt: number -> (content_sha256, deleted)."""
    query = select(prompt_versions).where(prompt_versions.c.prompt_id == PROMPT)
    with engine.connect() as conn:
        return {
            r.version: (r.content_sha256, r.deleted_at is not None) for r in conn.execute(query)
        }


def assert_log_matches_rows(engine: Engine, total: int) -> None:
    """Every number once in the log, and each event's digest is its row's."""
    rows = stored_rows(engine)
    assert sorted(rows) == list(range(1, total + 1)), "a number is missing or taken twice"
    stream = SqlEventLog(engine).read_stream(prompt_stream(PROMPT))
    assert [r.stream_version for r in stream] == list(range(1, total + 1))
    for record in stream:
        event = record.event
        assert isinstance(event, VersionCreated)
        assert event.version == record.stream_version
        assert event.content_sha256 == rows[event.version][0], f"version {event.version}"


@pytest.mark.slow
def test_processes_number_versions_without_gaps_and_every_event_matches_a_row(
    tmp_path: Path, database_url: str
) -> None:
    results = run_workers(tmp_path, database_url)
    total = WRITERS * VERSIONS_EACH
    promised = [r["created"] for r in results.values()]
    assert sorted(n for numbers in promised for n in numbers) == list(range(1, total + 1))
    assert all(numbers == sorted(numbers) for numbers in promised)

    engine = open_database(DatabaseSettings(url=database_url))
    try:
        storage = DatabaseStorage(engine, use_cache=False)
        assert storage.list_versions(PROMPT) == list(range(1, total + 1))
        assert storage.next_version_number(PROMPT) == total + 1
        assert storage.verify() == []
        assert_log_matches_rows(engine, total)
        for n in (1, total // 2, total):
            assert storage.content_sha256(PROMPT, n) == stored_rows(engine)[n][0]
        assert [r.position for r in SqlEventLog(engine).read_all()] == list(range(1, total + 1))
    finally:
        engine.dispose()


@pytest.mark.slow
def test_a_pruning_process_leaves_tombstones_and_the_numbers_run_on(
    tmp_path: Path, database_url: str
) -> None:
    results = run_workers(tmp_path, database_url, pruners=1)
    total = WRITERS * VERSIONS_EACH
    removed = results["pruner0"]["removed"]
    assert len(removed) == len(set(removed)), "a version was deleted twice"

    engine = open_database(DatabaseSettings(url=database_url))
    try:
        storage = DatabaseStorage(engine, use_cache=False)
        live, deleted = storage.list_versions(PROMPT), storage.deleted_versions(PROMPT)
        assert sorted(live + deleted) == list(range(1, total + 1))
        assert set(removed) == set(deleted)
        assert storage.latest_version_number(PROMPT) == total
        assert storage.next_version_number(PROMPT) == total + 1
        assert storage.verify() == []
        assert_log_matches_rows(engine, total)
    finally:
        engine.dispose()


# -- the command line ------------------------------------------------------------------


class Autoopt:
    """``autoopt`` in-process, configured by a YAML file with ``storage.backend: database``."""

    def __init__(self, workdir: Path, url: str) -> None:
        self.workdir = workdir
        self.url = url
        self.storage_dir = workdir / "versions-never-written"
        self.config = workdir / "autoopt.yaml"
        self.config.write_text(
            "optimizer:\n"
            "  storage: {backend: database, cache_size: 16, "
            f"storage_dir: {json.dumps(str(self.storage_dir))}}}\n"
            f"  database: {{url: {json.dumps(url)}}}\n",
            encoding="utf-8",
        )

    def __call__(self, *args: str) -> Result:
        env = {key: None for key in os.environ if key.startswith("OPTIMIZER_")}
        return CliRunner().invoke(
            cli,
            ["--config", str(self.config), *args],
            env={**env, "OPENAI_API_KEY": ""},
            catch_exceptions=False,
        )


@pytest.fixture
def autoopt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str) -> Autoopt:
    monkeypatch.chdir(tmp_path)
    return Autoopt(tmp_path, database_url)


def test_optimize_and_versions_commands_work_on_the_database_store(autoopt: Autoopt) -> None:
    app = autoopt.workdir / "support_bot.yml"
    shutil.copy(EXAMPLE, app)
    result = autoopt("optimize", str(app))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "2 of 9 prompts improved"
    assert app.with_name("support_bot.optimized.yml").is_file()
    assert not autoopt.storage_dir.exists(), "the database store wrote version files"

    engine = open_database(DatabaseSettings(url=autoopt.url))
    try:
        events = [r.event for r in SqlEventLog(engine).read_all()]
        created = [e for e in events if isinstance(e, VersionCreated)]
        storage = DatabaseStorage(engine)
        assert sorted(storage.list_prompts()) == sorted({e.prompt_id for e in created})
        for event in created:
            assert storage.content_sha256(event.prompt_id, event.version) == event.content_sha256
        improved = sorted(
            {e.prompt_id for e in created if e.version == 2 and e.kind == "optimized"}
        )
        assert len(improved) == 2, created
        prompt = improved[0]

        listed = autoopt("versions", "list", prompt, "--format", "csv")
        assert listed.exit_code == 0, listed.output
        assert [line.split(",")[:2] for line in listed.stdout.splitlines()[1:]] == [
            ["2", "optimized"],
            ["1", "baseline"],
        ]
        shown = autoopt("versions", "show", prompt, "1")
        assert shown.exit_code == 0, shown.output
        assert shown.stdout == storage.get_version(prompt, 1).text + "\n"

        rolled = autoopt("versions", "rollback", prompt, "1", "--reason", "too long")
        assert rolled.exit_code == 0, rolled.output
        assert rolled.stdout == f"{prompt}: version 3 restores version 1\n"
        fresh = DatabaseStorage(engine, use_cache=False)
        assert fresh.get_version(prompt, 3).text == fresh.get_version(prompt, 1).text
        (rollback,) = [
            r.event
            for r in SqlEventLog(engine).read_stream(prompt_stream(prompt))
            if isinstance(r.event, VersionRolledBack)
        ]
        assert rollback.content_sha256 == fresh.content_sha256(prompt, 3)
    finally:
        engine.dispose()

    assert autoopt("storage", "verify").stdout == "ok\n"
    assert autoopt("fsck").stdout == "ok\n"
    stats = json.loads(autoopt("storage", "stats", "--format", "json").stdout)
    figures = {row["figure"]: row["value"] for row in stats}
    assert (figures["backend"], figures["prompts"], figures["versions"]) == ("database", 9, 12)
    reindex = autoopt("storage", "reindex")
    assert (reindex.exit_code, reindex.stderr) == (
        1,
        "Error: storage reindex applies to the file store only (storage.backend is 'database')\n",
    )
    cleaned = autoopt("storage", "cleanup", "--keep", "1", "--format", "csv")
    assert cleaned.exit_code == 0, cleaned.output
    assert autoopt("fsck").stdout == "ok\n", "fsck took a pruned version for a lost one"
    assert not autoopt.storage_dir.exists()


if __name__ == "__main__":
    sys.exit(main())
