"""The API key reached the model server and nothing else: the sweep after the fault suite.

Every fault test runs with :data:`SENTINEL_KEY` as the API key. This file is
named to run last in the suite: it adds the runs most likely to leak (debug
logging, a refused key, a failing server), then reads every file the session
wrote under pytest's base temp folder (databases, their WAL files, version
files, outputs, reports, captured stdout and stderr of every subprocess and
in-process run) and every text value of every table of every SQLite database
there, and finds the key in none of them. The key must have arrived at the
fake server, or the sweep would prove nothing.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.faults.workspace import SENTINEL_KEY, Workspace
from tests.llm_server import FakeLLMServer, Status

EXAMPLE = REPO_ROOT / "examples" / "support_bot.yml"
SQLITE_HEADER = b"SQLite format 3\x00"


def table_values(database: Path) -> list[str]:
    """Every value of every table, as text (pages can split a value; SQL cannot)."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        names = [
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        values = []
        for name in names:
            for row in connection.execute(f'SELECT * FROM "{name}"'):
                values.extend(str(value) for value in row if value is not None)
        return values
    finally:
        connection.close()


def test_the_api_key_appears_in_no_file_table_log_or_message(
    workspace: Workspace, llm_server: FakeLLMServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    app = workspace.root / "support_bot.yml"
    shutil.copyfile(EXAMPLE, app)
    debug = workspace.run("-vv", "optimize", str(app), "--no-cache")
    assert debug.returncode == 0, debug.describe()
    # -vv logs the HTTP client's requests too: the likeliest place for a header to leak.
    assert "DEBUG openai" in debug.stderr, "the debug run logged no request: it proves nothing"
    llm_server.script(Status(401))
    refused = workspace.run("-vv", "optimize", str(app), "--no-cache")
    assert refused.returncode == 0, refused.describe()
    assert "401" in refused.stderr or "refused" in refused.stderr.lower(), refused.stderr
    llm_server.script(*[Status(500)] * 4)
    failing = workspace.run("-vv", "optimize", str(app), "--no-cache", "--format", "json")
    assert failing.returncode == 0, failing.describe()

    bearer = f"Bearer {SENTINEL_KEY}"
    assert any(r.headers.get("authorization") == bearer for r in llm_server.requests), (
        "the sentinel key never reached the model server"
    )

    key = SENTINEL_KEY.encode()
    scanned = databases = 0
    leaks = []
    for path in tmp_path_factory.getbasetemp().rglob("*"):
        if not path.is_file() or path.is_symlink():
            continue
        data = path.read_bytes()
        scanned += 1
        if key in data:
            leaks.append(str(path))
        if data.startswith(SQLITE_HEADER):
            databases += 1
            if any(SENTINEL_KEY in value for value in table_values(path)):
                leaks.append(f"{path} (a table)")
    assert leaks == [], f"the API key was written to: {leaks}"
    assert scanned > 10 and databases > 0, f"the sweep saw {scanned} files, {databases} databases"
    print(f"swept {scanned} files and {databases} databases")
