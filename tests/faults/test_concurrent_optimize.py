"""Six ``autoopt optimize`` processes on overlapping apps, released at the same moment.

The processes share one database and one version store, and their apps share
prompts (the same exports under other file names, and commands that optimize
two apps), so they race for the same prompts' next version numbers and the
same log. Each either completes or fails with a clear conflict message, and a
failed one succeeds when run again. Afterwards: every prompt's versions are
1..n with no gap and no number twice, in the files and in the log; the log's
positions and every stream's versions have no gap; ``fsck`` is clean and the
read models are current; every output file is a readable app.
"""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
import time
from collections import defaultdict
from pathlib import Path

import pytest

from autoopt.domain.dsl_loading import load_dsl
from autoopt.infrastructure.storage import FileSystemStorage
from tests.faults.test_crash_kills import FAULTY, pick_apps
from tests.faults.workspace import Workspace

pytestmark = pytest.mark.slow

# Which of the three apps each process optimizes: every app is in several.
PLAN = [("A",), ("A",), ("A", "B"), ("B",), ("B", "C"), ("C", "A")]
CONFLICT_WORDS = ("conflict", "retry", "concurrent", "locked")


def log_rows(workspace: Workspace) -> list[tuple[int, str, int, str, str]]:
    connection = sqlite3.connect(f"file:{workspace.db_file}?mode=ro", uri=True)
    try:
        return connection.execute(
            "SELECT position, stream_id, stream_version, event_type, payload "
            "FROM events ORDER BY position"
        ).fetchall()
    finally:
        connection.close()


def test_six_concurrent_runs_on_shared_prompts_keep_versions_and_log_gap_free(
    workspace: Workspace, corpus_dir: Path, fault_seed: int
) -> None:
    picked = pick_apps(corpus_dir, workspace.root / "apps", random.Random(fault_seed))
    sources = dict(zip("ABC", picked[:3], strict=True))
    sync = workspace.root / "sync"
    sync.mkdir()
    commands: list[list[str]] = []
    for number, names in enumerate(PLAN):
        folder = workspace.root / f"process{number}"
        folder.mkdir()
        apps = []
        for name in names:
            target = folder / f"{name}.yml"
            shutil.copyfile(sources[name], target)
            apps.append(str(target))
        commands.append(["optimize", *apps, "--no-cache", "--format", "json"])

    started = [
        workspace.start(
            *command,
            program=FAULTY,
            extra_env={"AUTOOPT_TEST_GATE": f"{sync}:p{number}"},
        )
        for number, command in enumerate(commands)
    ]
    # Release them together once all are past their imports (or one died trying).
    for _ in range(120 * 100):
        if len(list(sync.glob("ready-1-*"))) == len(PLAN):
            break
        if any(process.poll() is not None for process, _, _ in started):
            break
        time.sleep(0.01)
    (sync / "go-1").touch()

    retried = []
    for number, (process, _out, err) in enumerate(started):
        process.wait(timeout=180)
        errors = err.read_text()
        assert "Traceback" not in errors, errors
        if process.returncode == 0:
            continue
        assert process.returncode == 1, f"process {number}: exit {process.returncode}\n{errors}"
        lines = [line for line in errors.splitlines() if line.startswith("Error: ")]
        assert lines and all(
            any(word in line.lower() for word in CONFLICT_WORDS) for line in lines
        ), f"process {number} failed without a clear conflict message:\n{errors}"
        again = workspace.run(*commands[number])
        assert again.returncode == 0, again.describe()
        retried.append(number)

    rows = log_rows(workspace)
    assert [row[0] for row in rows] == list(range(1, len(rows) + 1)), "the log has a gap"
    streams: dict[str, list[int]] = defaultdict(list)
    for _, stream, version, _, _ in rows:
        streams[stream].append(version)
    for stream, versions in streams.items():
        assert versions == list(range(1, len(versions) + 1)), f"{stream}: {versions}"

    recorded: dict[str, list[int]] = defaultdict(list)
    for *_, event_type, payload in rows:
        if event_type in ("VersionCreated", "VersionRolledBack"):
            data = json.loads(payload)
            recorded[data["prompt_id"]].append(int(data["version"]))
    storage = FileSystemStorage(workspace.storage_dir)
    shared = 0
    for prompt_id, numbers in recorded.items():
        assert numbers == list(range(1, len(numbers) + 1)), f"{prompt_id}: {numbers}"
        assert storage.list_versions(prompt_id) == numbers, prompt_id
        shared += len(numbers) > 1
    assert shared > 0, "no prompt got a version from more than one run: nothing raced"

    assert workspace.invoke("fsck").stdout == "ok\n"
    status = workspace.invoke("projections", "status", "--format", "json")
    assert {row["lag"] for row in json.loads(status.stdout)} == {0}
    completed = [r for r in rows if r[3] == "RunCompleted"]
    assert len(completed) == sum(len(names) for names in PLAN)
    for number, names in enumerate(PLAN):
        for name in names:
            output = workspace.root / f"process{number}" / f"{name}.optimized.yml"
            load_dsl(output.read_bytes(), str(output))
    print(f"{len(rows)} events, {len(recorded)} prompts, retried: {retried}")
