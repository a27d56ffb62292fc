"""PostgreSQL for the benchmarks: the option, throwaway databases, the server's facts.

Every database a benchmark makes is created here and dropped on the way out,
so a run never leaves tables on the server, not even in the database named
by the URL (only its server and credentials are used).
"""

from __future__ import annotations

import argparse
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL, make_url

from autoopt.infrastructure.db import open_database
from autoopt.infrastructure.settings import DatabaseSettings, describe_url

ENV = "AUTOOPT_BENCH_POSTGRES_URL"
SKIPPED = f"PostgreSQL: skipped (no --postgres-url / {ENV})"


def add_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(ENV) or None,
        metavar="URL",
        help=f"also run against this PostgreSQL server, in a temporary database (default: ${ENV})",
    )


def libpq_url(url: str | URL) -> str:
    """The URL as psycopg itself takes it: no SQLAlchemy driver suffix."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@dataclass
class Server:
    """Makes databases on one server and drops them all when closed.

    ``template()`` migrates one database once; ``fresh()`` copies it with
    ``CREATE DATABASE ... TEMPLATE``, a file copy on the server, far cheaper
    than running the migrations again for every round.
    """

    url: URL
    admin: Engine
    prefix: str = field(default_factory=lambda: f"autoopt_bench_{uuid.uuid4().hex[:10]}")
    made: list[str] = field(default_factory=list)
    _template: str | None = None

    def url_of(self, name: str) -> str:
        return self.url.set(database=name).render_as_string(hide_password=False)

    def create(self, template: str | None = None) -> str:
        name = f"{self.prefix}_{len(self.made)}"
        copy = f' TEMPLATE "{template}"' if template else ""
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"{copy}'))
            self.made.append(name)
            # The durability every figure here assumes, whatever the server default.
            conn.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = on'))
        return self.url_of(name)

    def template(self) -> str:
        if self._template is None:
            url = self.create()
            open_database(DatabaseSettings(url=url)).dispose()  # migrated to head
            self._template = make_url(url).database
        return self.url_of(self._template or "")

    def fresh(self) -> str:
        """A new migrated database with no rows."""
        self.template()
        return self.create(template=self._template)

    def drop(self, url: str) -> None:
        name = make_url(url).database
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if name in self.made:
            self.made.remove(name)

    def describe(self) -> str:
        with self.admin.connect() as conn:
            version = conn.execute(text("SHOW server_version")).scalar_one()
            sync = conn.execute(text("SHOW synchronous_commit")).scalar_one()
        where = describe_url(str(self.url))
        return (
            f"PostgreSQL {version.split()[0]} at {where} (server default synchronous_commit={sync})"
        )


@contextmanager
def server(url: str) -> Iterator[Server]:
    parsed = make_url(url)
    admin = create_engine(parsed, isolation_level="AUTOCOMMIT")
    target = Server(url=parsed, admin=admin)
    try:
        yield target
    finally:
        try:
            for name in reversed(target.made):
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            admin.dispose()
