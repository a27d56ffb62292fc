"""Alembic environment: runs on the caller's connection when one is given.

The tool migrates itself through ``autoopt.infrastructure.db.upgrade_to_head``,
which hands over a connection that already holds the write lock. The plain
``alembic`` command (for developers, with ``alembic.ini`` at the repo root)
builds an engine from the autoopt settings instead.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

import autoopt.infrastructure.projections.tables  # noqa: F401  (registers the read models)
from autoopt.infrastructure.tables import metadata


def run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        run_on(connection)
        return
    from autoopt.infrastructure.db import create_db_engine
    from autoopt.infrastructure.settings import load_settings

    engine = create_db_engine(load_settings().database)
    with engine.connect() as fresh:
        run_on(fresh)
        fresh.commit()


if context.is_offline_mode():
    raise SystemExit("autoopt migrations run online only")
run_online()
