"""The wheel holds the autoopt packages, the migrations, and nothing bare."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from autoopt.infrastructure.db import head_revision
from tests.conftest import REPO_ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(REPO_ROOT),
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    [built] = out.glob("dify_autoopt-*.whl")
    return built


def test_wheel_contents(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    tops = {name.split("/")[0] for name in names if not name.startswith("dify_autoopt-")}
    assert tops == {"autoopt"}
    for required in (
        "autoopt/domain/events.py",
        "autoopt/infrastructure/event_store.py",
        "autoopt/cli/main.py",
        "autoopt/migrations/env.py",
        "autoopt/migrations/script.py.mako",
        "autoopt/migrations/versions/0001_events.py",
        "autoopt/migrations/versions/0002_events_append_only.py",
        "autoopt/migrations/versions/0003_llm_cache.py",
        "autoopt/infrastructure/templates/llm_guided.j2",
    ):
        assert required in names
    assert not any(name.startswith("autoopt/tests") for name in names)


def test_the_installed_wheel_migrates_and_runs(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    # -S keeps the editable checkout's import hook out; only the wheel and the
    # dependencies are on the path.
    deps = sysconfig.get_paths()["purelib"]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), deps]),
        "OPTIMIZER_DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}",
    }
    code = (
        "import autoopt.cli.main, autoopt.migrations, sys\n"
        "assert autoopt.migrations.__file__.startswith(sys.argv[1]), autoopt.migrations.__file__\n"
        "sys.argv = ['autoopt', 'db', 'upgrade']\n"
        "autoopt.cli.main.main()\n"
    )
    result = subprocess.run(
        [sys.executable, "-S", "-c", code, str(site)],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert f"to {head_revision()} (head)" in result.stdout
