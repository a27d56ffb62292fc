"""Fixtures shared by every test layer.

Databases are real SQLite files under ``tmp_path``; nothing of the project's
own storage is mocked.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import Engine

from autoopt.infrastructure.db import open_database
from autoopt.infrastructure.settings import DatabaseSettings

REPO_ROOT = Path(__file__).resolve().parent.parent


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture
def sqlite_db_url(tmp_path: Path) -> str:
    return sqlite_url(tmp_path / "autoopt.db")


@pytest.fixture
def sqlite_engine(sqlite_db_url: str) -> Engine:
    engine = open_database(DatabaseSettings(url=sqlite_db_url))
    yield engine
    engine.dispose()


@pytest.fixture
def corpus_dir() -> Path:
    """The real Dify exports; tests that need them skip with a reason without them."""
    folder = Path(os.environ.get("AUTOOPT_CORPUS_DIR", REPO_ROOT.parent / "shared/fixtures/dify"))
    if not folder.is_dir():
        pytest.skip(f"Dify corpus not found at {folder}; set AUTOOPT_CORPUS_DIR")
    return folder
