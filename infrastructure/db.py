"""Engines, transactions and the schema revision, for SQLite and PostgreSQL.

SQLite is tuned for a durable append-only log: WAL (readers never block the
writer), ``busy_timeout`` (a waiting writer waits instead of failing), and
``synchronous`` from the settings (FULL by default). The driver's own
transaction handling is switched off so that we emit ``BEGIN`` ourselves:
writers ask for ``BEGIN IMMEDIATE`` through :func:`write_transaction`, which
takes the write lock up front; a deferred BEGIN that later tries to write fails
with "database is locked" at once under contention instead of waiting.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    DatabaseError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
)

import autoopt.migrations
from autoopt.domain.errors import (
    ConfigurationError,
    NotADatabaseError,
    SchemaVersionError,
    StorageError,
)
from autoopt.infrastructure.settings import DatabaseSettings, describe_url
from autoopt.migrations import HEAD_REVISION

if TYPE_CHECKING:
    from alembic.config import Config

logger = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(autoopt.migrations.__file__).parent
VERSION_TABLE = "alembic_version"  # where Alembic keeps the revision


def create_db_engine(settings: DatabaseSettings) -> Engine:
    try:
        url = make_url(settings.url)
        if url.get_backend_name() != "sqlite":
            return create_engine(url, pool_pre_ping=True)
        engine = create_engine(url, connect_args={"timeout": settings.busy_timeout_ms / 1000})
    except (ArgumentError, NoSuchModuleError) as exc:
        raise ConfigurationError(
            f"database.url: {describe_url(settings.url)} is not a supported database URL"
        ) from exc

    database = url.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        folder = Path(database).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"{describe_url(settings.url)}: cannot create the folder {folder} ({exc.strerror})"
            ) from exc
    pragmas = (
        f"PRAGMA busy_timeout={int(settings.busy_timeout_ms)}",
        "PRAGMA journal_mode=WAL",
        f"PRAGMA synchronous={settings.sqlite_synchronous}",
        "PRAGMA foreign_keys=ON",
    )

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            for pragma in pragmas:
                cursor.execute(pragma)
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        # Straight to the driver: exec_driver_sql would add a full statement
        # execution to every transaction, a fifth of an append's CPU time.
        driver = connection.connection.driver_connection
        assert driver is not None, "a connection in a transaction has a driver connection"
        driver.execute(f"BEGIN {mode}")

    return engine


@contextmanager
def write_transaction(engine: Engine, lock_key: int | None = None) -> Iterator[Connection]:
    """A transaction that holds the database's write lock from its first statement.

    SQLite has one write lock for the whole file. PostgreSQL has none: a
    caller that must exclude other writers of the same thing names it with
    ``lock_key``, and the transaction first takes that advisory lock.
    """
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            connection = connection.execution_options(sqlite_begin="IMMEDIATE")
        with connection.begin():
            if lock_key is not None and engine.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key})
            yield connection


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the migrations folder has no revision"
    return head


def known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    return {s.revision for s in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def current_revision(engine: Engine) -> tuple[str | None, bool]:
    """The schema revision, and whether the database is empty (no tables at all)."""
    with _translated(engine), engine.connect() as connection:
        # Alembic's own table, read without Alembic: see HEAD_REVISION.
        inspector = inspect(connection)
        if inspector.has_table(VERSION_TABLE):
            revision = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
            return revision, False
        return None, not inspector.get_table_names()


def upgrade_to_head(engine: Engine) -> tuple[str | None, str]:
    """Migrate to head under the write lock; returns (revision before, revision after).

    Two processes opening a new database at once serialize here: the second
    finds the first one's work done.
    """
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    with _translated(engine), write_transaction(engine) as connection:
        before = MigrationContext.configure(connection).get_current_revision()
        head = head_revision()
        if before != head:
            where = describe_url(str(engine.url))
            logger.info("migrating %s from %s to %s", where, before or "empty", head)
            command.upgrade(alembic_config(connection), "head")
        return before, head


def open_database(settings: DatabaseSettings) -> Engine:
    """An engine for a database that is ready to use.

    A new, empty database is created and migrated. A database behind head is
    refused with the command that fixes it; one ahead of head is refused too.
    """
    engine = create_db_engine(settings)
    revision, empty = current_revision(engine)
    if empty:
        upgrade_to_head(engine)
    else:
        check_revision(engine, revision)
    return engine


def check_revision(engine: Engine, current: str | None) -> None:
    if current == HEAD_REVISION:
        return
    where = describe_url(str(engine.url))
    if current is None:
        raise SchemaVersionError(
            f"{where}: the database has tables but no autoopt revision; "
            "it does not look like an autoopt database"
        )
    if current in known_revisions():
        raise SchemaVersionError(f"database is at revision {current}, run 'autoopt db upgrade'")
    raise SchemaVersionError(
        f"database is at revision {current}, which this version of autoopt does not know "
        "(was it written by a newer version?)"
    )


@contextmanager
def _translated(engine: Engine) -> Iterator[None]:
    """The seam where driver errors about the database itself become ours."""
    where = describe_url(str(engine.url))
    try:
        yield
    except DatabaseError as exc:
        text = str(exc.orig)
        if "file is not a database" in text or "not a database" in text:
            raise NotADatabaseError(f"{where}: the file is not a SQLite database") from exc
        if isinstance(exc, OperationalError):
            raise StorageError(f"{where}: cannot open the database ({text})") from exc
        raise StorageError(f"{where}: database error ({text})") from exc
    except SQLAlchemyError as exc:
        raise StorageError(f"{where}: database error ({type(exc).__name__})") from exc
