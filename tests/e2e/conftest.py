from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from autoopt.cli.main import cli
from autoopt.infrastructure.db import open_database
from autoopt.infrastructure.event_store import SqlEventLog
from autoopt.infrastructure.settings import DatabaseSettings


class Invoke:
    """Runs ``autoopt`` in-process against a database file of the test's own."""

    def __init__(self, db_file: Path, workdir: Path) -> None:
        self.db_file = db_file
        self.url = f"sqlite:///{db_file}"
        self.workdir = workdir

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> Result:
        runner = CliRunner()
        environment = {"OPTIMIZER_DATABASE_URL": self.url, **(env or {})}
        return runner.invoke(cli, list(args), env=environment, catch_exceptions=False)

    def log(self) -> SqlEventLog:
        return SqlEventLog(open_database(DatabaseSettings(url=self.url)))


@pytest.fixture
def autoopt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    monkeypatch.chdir(tmp_path)
    return Invoke(tmp_path / "cli.db", tmp_path)
