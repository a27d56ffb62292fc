"""8 processes x 50 ``create_version`` on one prompt, through files and the SQLite log."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from autoopt.domain.events import VersionCreated
from autoopt.domain.versions import prompt_stream
from autoopt.infrastructure.db import open_database
from autoopt.infrastructure.event_store import SqlEventLog
from autoopt.infrastructure.settings import DatabaseSettings
from autoopt.infrastructure.storage import FileSystemStorage
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow

WRITERS = 8
VERSIONS_EACH = 50
PROMPT = "wf-race/1711528915811/prompt_template/0/text"


def test_eight_processes_number_versions_1_to_400_in_files_index_and_log(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'race.db'}"
    storage_dir = tmp_path / "versions"
    go = tmp_path / "go"
    open_database(DatabaseSettings(url=url)).dispose()
    writers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.integration.version_writer",
                url,
                str(storage_dir),
                PROMPT,
                "--count",
                str(VERSIONS_EACH),
                "--go",
                str(go),
            ],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(WRITERS)
    ]
    try:
        for writer in writers:
            assert writer.stdout is not None
            assert writer.stdout.readline() == "ready\n", writer.communicate()[1]
        go.touch()
        results = [writer.communicate(timeout=180) for writer in writers]
    finally:
        for writer in writers:
            writer.kill()
    failures = [
        (w.returncode, err) for w, (_, err) in zip(writers, results, strict=True) if w.returncode
    ]
    assert failures == []

    promised = [[int(n) for n in out.split()] for out, _ in results]
    everyone = sorted(n for numbers in promised for n in numbers)
    total = WRITERS * VERSIONS_EACH
    assert everyone == list(range(1, total + 1)), "numbers were lost or given twice"
    assert all(numbers == sorted(numbers) for numbers in promised)

    storage = FileSystemStorage(storage_dir)
    assert storage.list_versions(PROMPT) == list(range(1, total + 1))
    assert json.loads((storage_dir / "index.json").read_text()) == {
        PROMPT: {"latest": total, "total": total}
    }
    assert storage.verify() == []

    log = SqlEventLog(open_database(DatabaseSettings(url=url)))
    stream = log.read_stream(prompt_stream(PROMPT))
    assert [r.stream_version for r in stream] == list(range(1, total + 1))
    for record in stream:
        event = record.event
        assert isinstance(event, VersionCreated)
        assert event.version == record.stream_version
        assert event.content_sha256 == storage.content_sha256(PROMPT, event.version)
    assert [r.position for r in log.read_all()] == list(range(1, total + 1))
