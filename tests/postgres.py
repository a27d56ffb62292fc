"""PostgreSQL for the contract suites, when ``AUTOOPT_TEST_POSTGRES_URL`` is set.

Each test gets a database of its own, created from the server URL and dropped
afterwards, so suites never see each other's rows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from autoopt.infrastructure.db import open_database
from autoopt.infrastructure.settings import DatabaseSettings

ENV = "AUTOOPT_TEST_POSTGRES_URL"


def postgres_backends() -> list[str]:
    return ["postgresql"] if os.environ.get(ENV) else []


@contextmanager
def temporary_postgres_engine() -> Iterator[Engine]:
    server = make_url(os.environ[ENV])
    name = f"autoopt_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        engine = open_database(
            DatabaseSettings(url=server.set(database=name).render_as_string(hide_password=False))
        )
        try:
            yield engine
        finally:
            engine.dispose()
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
