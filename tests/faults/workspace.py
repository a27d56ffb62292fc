"""One autoopt installation in a folder: a database file, a version store, a settings file.

The fault suites drive the real ``autoopt`` command in subprocesses (``start``
and ``run``, which can be killed) and in-process through click's runner
(``invoke``, for the many quick checks). Every run sees the same sentinel API
key and a settings file pointing the language model at the suite's fake
OpenAI server on 127.0.0.1, so that the key is really used (the server checks
it arrives) and the final sweep can prove it never reached a file, a table or
a message. Subprocess output goes to files under the workspace, where the
sweep finds it too.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner, Result

from autoopt.cli.main import cli
from tests.conftest import REPO_ROOT

#: The API key every fault test runs with; it must never be written anywhere.
SENTINEL_KEY = "sk-autoopt-FAULTS-7c1e5b0d-SENTINEL"
MODEL = "gpt-4o-mini"


@dataclass
class Finished:
    """A subprocess run of ``autoopt``: its exit code and what it printed."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        return (
            f"autoopt {' '.join(self.args)} -> exit {self.returncode}\n"
            f"stdout:\n{self.stdout[-3000:]}\nstderr:\n{self.stderr[-3000:]}"
        )


class Workspace:
    """A database, a version store and a settings file under ``root``."""

    def __init__(self, root: Path, llm_base_url: str | None, *, llm_delay: str = "") -> None:
        self.root = root
        self.db_file = root / "autoopt.db"
        self.url = f"sqlite:///{self.db_file}"
        self.storage_dir = root / "versions"
        self.config_file = root / "autoopt.yaml"
        self.outputs = root / "outputs"
        self.outputs.mkdir(parents=True, exist_ok=True)
        self._count = 0
        self.configure(llm_base_url)

    def configure(self, llm_base_url: str | None, **optimization: Any) -> None:
        """Write the settings file; no base URL means no language model (offline)."""
        section: dict[str, Any] = {
            "optimization": {"max_iterations": 1, **optimization},
        }
        if llm_base_url is not None:
            section["llm"] = {
                "base_url": llm_base_url,
                "model": MODEL,
                "max_retries": 0,
                "timeout_seconds": 5.0,
            }
        else:
            section["llm"] = {"api_key_env": "AUTOOPT_FAULTS_NO_KEY"}
        self.config_file.write_text(yaml.safe_dump({"optimizer": section}), encoding="utf-8")

    @property
    def env(self) -> dict[str, str]:
        return {
            "OPENAI_API_KEY": SENTINEL_KEY,
            "OPTIMIZER_DATABASE_URL": self.url,
            "OPTIMIZER_STORAGE_DIR": str(self.storage_dir),
        }

    def command(self, *args: str, program: str = "autoopt") -> list[str]:
        """The argv of one run: the installed console script, or a test program module."""
        if program == "autoopt":
            script = Path(sys.executable).with_name("autoopt")
            head = [str(script)] if script.exists() else [sys.executable, "-m", "autoopt.cli.main"]
        else:
            head = [sys.executable, "-m", program]
        return [*head, "--config", str(self.config_file), *args]

    def start(
        self, *args: str, program: str = "autoopt", extra_env: Mapping[str, str] | None = None
    ) -> tuple[subprocess.Popen[bytes], Path, Path]:
        """Start a run in the background; its output goes to two files under ``outputs``."""
        self._count += 1
        out = self.outputs / f"run-{self._count}.out"
        err = self.outputs / f"run-{self._count}.err"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            process = subprocess.Popen(
                self.command(*args, program=program),
                cwd=REPO_ROOT,
                env={**os.environ, **self.env, **(extra_env or {})},
                stdout=stdout,
                stderr=stderr,
            )
        return process, out, err

    def run(
        self,
        *args: str,
        program: str = "autoopt",
        extra_env: Mapping[str, str] | None = None,
        timeout: float = 120,
    ) -> Finished:
        process, out, err = self.start(*args, program=program, extra_env=extra_env)
        try:
            process.wait(timeout=timeout)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        return Finished(
            args,
            process.returncode,
            out.read_text(encoding="utf-8", errors="replace"),
            err.read_text(encoding="utf-8", errors="replace"),
        )

    def invoke(self, *args: str) -> Result:
        """Run ``autoopt`` in this process (click's runner), stdout and stderr apart.

        What it printed is appended to ``outputs/invoke.log`` for the key sweep.
        """
        result = CliRunner().invoke(
            cli, ["--config", str(self.config_file), *args], env=self.env, catch_exceptions=True
        )
        with (self.outputs / "invoke.log").open("a", encoding="utf-8") as log:
            log.write(f"$ autoopt {' '.join(args)}\n{result.stdout}{result.stderr}")
            if result.exception is not None and not isinstance(result.exception, SystemExit):
                log.write(f"{result.exception!r}\n")
        return result

    def snapshot(self) -> dict[str, Any]:
        """Everything stored: each table's rows, and each version file's hash.

        The SQLite file is read with the standard library, read-only, so that
        taking a snapshot changes nothing.
        """
        tables: dict[str, list[tuple[Any, ...]]] = {}
        if self.db_file.exists():
            connection = sqlite3.connect(f"file:{self.db_file}?mode=ro", uri=True)
            try:
                names = [
                    row[0]
                    for row in connection.execute(
                        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
                    )
                ]
                for name in names:
                    rows = connection.execute(f'SELECT * FROM "{name}"').fetchall()
                    tables[name] = sorted(rows, key=repr)
            finally:
                connection.close()
        files = {}
        if self.storage_dir.exists():
            for path in sorted(self.storage_dir.rglob("*")):
                if path.is_file():
                    relative = str(path.relative_to(self.storage_dir))
                    files[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
        return {"tables": tables, "files": files}
