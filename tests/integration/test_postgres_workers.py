"""PostgreSQL when one machine is not enough: several ``autoopt`` processes, one database.

Four worker processes (``python -m autoopt.cli.main optimize ...``, each with a
config file of ``storage.backend: database`` and the database's URL) optimize
eight different corpus apps, two each, against one PostgreSQL database; two of
them also optimize one further app, the same one, first, so that they number
versions of the same prompts at the same time. The workers share nothing but
the database: the event log, the version store and the read models are all in
it, and each worker catches the read models up after its own appends.

Runs only when ``AUTOOPT_TEST_POSTGRES_URL`` is set and the Dify corpus is
present, on a temporary database dropped afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from autoopt.domain.events import (
    RunCompleted,
    RunFailed,
    RunStarted,
    VersionCreated,
    VersionRolledBack,
)
from autoopt.infrastructure.event_store import SqlEventLog
from autoopt.infrastructure.projections import tables
from autoopt.infrastructure.projections.projectors import PROJECTORS
from autoopt.infrastructure.projections.runner import ProjectionRunner
from autoopt.infrastructure.storage import DatabaseStorage
from tests.postgres import postgres_backends, temporary_postgres_engine
from tests.processes import REPO_ROOT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not postgres_backends(), reason="AUTOOPT_TEST_POSTGRES_URL is not set"),
]

WORKERS = 4
APPS_EACH = 2
SHARED_BY = (0, 2)  # workers 1 and 3 also optimize the same app, before their own
RUN_TIMEOUT = 75.0  # seconds for all workers; they take a few


def small_apps(corpus: Path, count: int) -> list[Path]:
    """The ``count`` smallest apps of the corpus (never a tool's ``.optimized.yml`` output)."""
    apps = [
        p
        for p in corpus.glob("*.yml")
        if not p.name.endswith(".optimized.yml") and p.stat().st_size > 0
    ]
    if len(apps) < count:
        pytest.skip(f"the corpus at {corpus} has fewer than {count} apps")
    return sorted(apps, key=lambda p: (p.stat().st_size, p.name))[:count]


def write_config(folder: Path, url: str) -> Path:
    """The worker's settings: events, versions and read models all in the one database."""
    config = folder / "autoopt.yaml"
    config.write_text(
        "optimizer:\n"
        "  storage: {backend: database, "
        f"storage_dir: {json.dumps(str(folder / 'versions-never-written'))}}}\n"
        f"  database: {{url: {json.dumps(url)}}}\n",
        encoding="utf-8",
    )
    return config


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every projection table and the checkpoints, rows sorted."""
    with engine.connect() as conn:
        return {
            t.name: sorted((tuple(row) for row in conn.execute(select(t))), key=repr)
            for t in [*(p.table for p in PROJECTORS), tables.projection_checkpoints]
        }


def run_workers(commands: list[list[str]], folders: list[Path]) -> list[str]:
    """Start every worker at once; their stdout, once all have exited with code 0."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPTIMIZER_")}
    env["OPENAI_API_KEY"] = ""  # rule-based fallbacks: no network, deterministic
    processes = []
    for command, folder in zip(commands, folders, strict=True):
        with (folder / "out").open("wb") as out, (folder / "err").open("wb") as err:
            processes.append(
                subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=out, stderr=err)
            )
    deadline = time.monotonic() + RUN_TIMEOUT
    try:
        for process in processes:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    report = [
        f"--- worker {i + 1}: exit code {p.returncode}\n"
        f"stderr:\n{(f / 'err').read_text(errors='replace')[-3000:]}\n"
        f"stdout:\n{(f / 'out').read_text(errors='replace')[-2000:]}"
        for i, (p, f) in enumerate(zip(processes, folders, strict=True))
        if p.returncode != 0
    ]
    assert not report, "worker(s) failed or hung:\n" + "\n".join(report)
    return [(f / "out").read_text() for f in folders]


def test_four_workers_optimize_eight_apps_against_one_postgres_database(
    corpus_dir: Path, tmp_path: Path
) -> None:
    """Four processes, eight apps plus one they contend for: every run completes,
    positions are exactly 1..N, every prompt's versions are 1..k with no number
    twice and each has its stored row, and the read models the workers caught
    up equal a rebuild from the log."""
    *own, shared = small_apps(corpus_dir, WORKERS * APPS_EACH + 1)
    with temporary_postgres_engine() as engine:
        url = engine.url.render_as_string(hide_password=False)
        commands, folders = [], []
        for worker in range(WORKERS):
            folder = tmp_path / f"worker-{worker + 1}"
            folder.mkdir()
            apps = own[worker * APPS_EACH : (worker + 1) * APPS_EACH]
            if worker in SHARED_BY:
                apps = [shared, *apps]
            copies = []
            for n, app in enumerate(apps):
                copy = folder / f"app-{n}.yml"
                shutil.copy(app, copy)
                copies.append(str(copy))
            config = write_config(folder, url)
            commands.append(
                [
                    sys.executable,
                    "-m",
                    "autoopt.cli.main",
                    "--config",
                    str(config),
                    "optimize",
                    *copies,
                    "--format",
                    "json",
                ]
            )
            folders.append(folder)

        started = time.monotonic()
        run_workers(commands, folders)
        elapsed = time.monotonic() - started
        runs = WORKERS * APPS_EACH + len(SHARED_BY)
        for folder in folders:
            assert not (folder / "versions-never-written").exists(), "a worker wrote files"

        log = SqlEventLog(engine)
        records = list(log.read_all())

        # Gap-free positions, and every run started has completed.
        assert [r.position for r in records] == list(range(1, len(records) + 1))
        events = [r.event for r in records]
        started_runs = [e.run_id for e in events if isinstance(e, RunStarted)]
        completed_runs = [e.run_id for e in events if isinstance(e, RunCompleted)]
        assert not [e for e in events if isinstance(e, RunFailed)]
        assert len(started_runs) == len(set(started_runs)) == runs
        assert sorted(completed_runs) == sorted(started_runs)

        # Every prompt stream numbers its versions 1..k, each once, each stored.
        storage = DatabaseStorage(engine, use_cache=False)
        by_prompt: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for record in records:
            event = record.event
            if isinstance(event, VersionCreated | VersionRolledBack):
                assert record.stream_id == f"prompt-{event.prompt_id}"
                by_prompt[event.prompt_id].append((record.stream_version, event.version))
            if isinstance(event, VersionCreated):
                assert storage.content_sha256(event.prompt_id, event.version) == (
                    event.content_sha256
                )
        assert by_prompt, "no versions were created"
        for prompt_id, numbers in by_prompt.items():
            versions = [v for _, v in numbers]
            assert versions == list(range(1, len(versions) + 1)), (prompt_id, numbers)
            assert all(s == v for s, v in numbers), (prompt_id, numbers)
            assert storage.latest_version_number(prompt_id) == len(versions)
        assert storage.verify() == []

        # The workers' own catch-ups left the read models at the head, equal to a rebuild.
        runner = ProjectionRunner(engine, log)
        assert {s.checkpoint for s in runner.status()} == {len(records)}
        caught_up = snapshot(engine)
        assert len(caught_up["runs"]) == runs
        assert {row[7] for row in caught_up["runs"]} == {"completed"}
        runner.rebuild()
        assert snapshot(engine) == caught_up
    assert elapsed < RUN_TIMEOUT
