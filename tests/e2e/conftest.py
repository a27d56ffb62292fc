from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from autoopt.cli.main import cli
from autoopt.infrastructure.bootstrap import Container, build
from autoopt.infrastructure.db import open_database
from autoopt.infrastructure.event_store import SqlEventLog
from autoopt.infrastructure.settings import DatabaseSettings, load_settings


class Invoke:
    """Runs ``autoopt`` in-process against a database file of the test's own."""

    def __init__(self, db_file: Path, workdir: Path) -> None:
        self.db_file = db_file
        self.url = f"sqlite:///{db_file}"
        self.workdir = workdir
        self.storage_dir = workdir / "versions"
        # An empty key: a developer's real key in the environment is never used by a test.
        self.env = {
            "OPENAI_API_KEY": "",
            "OPTIMIZER_DATABASE_URL": self.url,
            "OPTIMIZER_STORAGE_DIR": str(self.storage_dir),
        }

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> Result:
        runner = CliRunner()
        return runner.invoke(
            cli, list(args), env={**self.env, **(env or {})}, catch_exceptions=False
        )

    def log(self) -> SqlEventLog:
        return SqlEventLog(open_database(DatabaseSettings(url=self.url)))

    @contextmanager
    def services(self) -> Iterator[Container]:
        """The services the CLI builds, over the same database and store.

        Like every CLI command, the block leaves the read models current:
        ``fsck`` counts read models behind the log as a disagreement.
        """
        container = build(load_settings(None, environ=self.env))
        try:
            yield container
            container.catch_up()
        finally:
            container.close()


@pytest.fixture
def autoopt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    monkeypatch.chdir(tmp_path)
    return Invoke(tmp_path / "cli.db", tmp_path)
