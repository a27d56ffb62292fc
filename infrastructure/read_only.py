"""Ad-hoc SQL that cannot write: the query runner behind ``autoopt sql``.

Read-only by construction, with walls that each refuse a write on their own
(defence in depth: a wall we got wrong is covered by the next).

SQLite: (1) the file is opened with ``mode=ro``, so the OS handle cannot write
it and a missing file is refused, not created; (2) ``PRAGMA query_only=ON``;
(3) an authorizer that allows reading only (``SELECT``, column reads, recursive
CTEs, functions but ``load_extension``, PRAGMAs that only report) and denies
everything else while the statement compiles, before it runs. Wall 3 is needed,
not decoration: on a read-only connection ``ATTACH`` still creates the file it
names, ``VACUUM INTO`` writes a new one, and ``PRAGMA query_only=OFF`` would lift
wall 2. (4) The driver refuses a second statement before the first one runs;
(5) a progress handler stops a runaway query. A reader of a WAL database
creates the ``-wal``/``-shm`` files when they are missing (empty, as every
SQLite reader does); the database's content, file and log, never changes.

PostgreSQL: (1) the session starts with ``default_transaction_read_only=on``
and a ``statement_timeout``; (2) the statement runs in a transaction begun
``READ ONLY`` (checked before it runs) that is always rolled back; (3) it is
parsed and described first with the extended protocol, which takes exactly one
statement (no ``COMMIT; INSERT ...``), and one that returns no rows is not run
at all (``COPY ... TO 'file'``, ``DO``, ``SET``, DDL: some act outside any
transaction). No wall here takes away a role's privileges outside the database:
a superuser's query can call ``lo_export`` or ``pg_terminate_backend``. Give
``autoopt sql`` a role that may only read (e.g. a member of ``pg_read_all_data``).

The schema revision is not checked and nothing is migrated: an archived
database at an older revision is queried as it stands.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from sqlalchemy import URL, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from autoopt.domain.errors import (
    ConfigurationError,
    NotADatabaseError,
    NotFoundError,
    ReadOnlyError,
    StorageError,
)
from autoopt.infrastructure.settings import DatabaseSettings, describe_url
from autoopt.infrastructure.sqlite_walls import SqliteWalls, first_word

if TYPE_CHECKING:
    import psycopg

DEFAULT_TIMEOUT_SECONDS = 60.0
READ_ONLY = "autoopt sql is read-only"
# Not in the sqlite3 module of every Python version we support.
SQLITE_READONLY_DIRECTORY = 1544


@dataclass(frozen=True)
class QueryResult:
    """Column names as the database reports them, and the rows as the driver returns them."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]


def run_query(
    settings: DatabaseSettings, query: str, *, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
) -> QueryResult:
    """Run one statement that only reads, and return its rows; anything else is refused."""
    try:
        url = make_url(settings.url)
    except ArgumentError as exc:
        where = describe_url(settings.url)
        raise ConfigurationError(f"database.url: {where} is not a supported database URL") from exc
    backend = url.get_backend_name()
    if backend == "sqlite":
        return _run_sqlite(settings, url, query, timeout_seconds)
    if backend == "postgresql":
        return _run_postgres(settings, url, query, timeout_seconds)
    raise ConfigurationError(
        f"autoopt sql supports SQLite and PostgreSQL, not {backend} ({describe_url(settings.url)})"
    )


# --- SQLite ---------------------------------------------------------------------------------


def _sqlite_path(settings: DatabaseSettings, url: URL) -> Path:
    database = url.database or ""
    if str(url.query.get("uri", "")).lower() in {"true", "1"} and database.startswith("file:"):
        database = unquote(urlsplit(database).path)
    if database in {"", ":memory:"}:
        raise ConfigurationError(
            f"{describe_url(settings.url)} is an in-memory database; autoopt sql needs a file"
        )
    path = Path(database)
    if not path.is_file():
        # Never created: mode=ro would refuse to, and an empty file is no answer.
        raise NotFoundError(f"{database}: no such database")
    return path


def _sqlite_engine(settings: DatabaseSettings, url: URL, walls: SqliteWalls) -> Engine:
    path = _sqlite_path(settings, url)
    # as_uri() percent-encodes what SQLite's URI parser would read as syntax (?, #, %).
    file_uri = Path(os.path.abspath(path)).as_uri()
    read_only_url = URL.create("sqlite", database=file_uri, query={"mode": "ro", "uri": "true"})
    engine = create_engine(
        read_only_url,
        poolclass=NullPool,
        connect_args={"timeout": settings.busy_timeout_ms / 1000},
    )

    @event.listens_for(engine, "connect")
    def _walls(dbapi_connection: Any, _record: Any) -> None:
        walls.install(dbapi_connection)

    return engine


def _run_sqlite(
    settings: DatabaseSettings, url: URL, query: str, timeout_seconds: float
) -> QueryResult:
    walls = SqliteWalls(timeout_seconds)
    engine = _sqlite_engine(settings, url, walls)
    where = describe_url(settings.url)
    try:
        with (
            _translated(where, timeout_seconds, walls, (sqlite3.Error,)),
            engine.connect() as connection,
        ):
            driver = connection.connection.driver_connection
            assert driver is not None, "an open connection has a driver connection"
            cursor = driver.cursor()
            try:
                # Read the schema first: a file that is not a database fails here,
                # whatever the query (SELECT 1 alone would never read a page).
                try:
                    cursor.execute("SELECT 1 FROM sqlite_master LIMIT 1")
                except sqlite3.OperationalError as exc:
                    opening = _cannot_open(where, exc)
                    if opening is None:
                        raise
                    raise opening from exc
                walls.start(query)
                cursor.execute(query)
                if cursor.description is None:
                    raise _no_rows(query)
                columns = tuple(str(d[0]) for d in cursor.description)
                return QueryResult(columns, list(cursor.fetchall()))
            finally:
                cursor.close()
    finally:
        engine.dispose()


def _cannot_open(where: str, exc: sqlite3.OperationalError) -> StorageError | None:
    """Opening failed before the query ran: the file's fault, never the query's.

    A WAL database read without its ``-shm`` file needs to create it, so a
    reader of a database in a folder it may not write is refused with
    SQLITE_READONLY; that is no write attempt of the user's and must not read
    like one.
    """
    if getattr(exc, "sqlite_errorcode", 0) & 0xFF != sqlite3.SQLITE_READONLY:
        return None
    problem = (
        "its folder is read-only and a WAL database needs its -wal and -shm files there"
        if getattr(exc, "sqlite_errorcode", 0) == SQLITE_READONLY_DIRECTORY
        else str(exc)
    )
    return StorageError(f"{where}: cannot open the database ({problem})")


# --- PostgreSQL -----------------------------------------------------------------------------


def _postgres_engine(settings: DatabaseSettings, url: URL, timeout_seconds: float) -> Engine:
    if url.get_driver_name() != "psycopg":
        raise ConfigurationError(
            "autoopt sql on PostgreSQL needs the psycopg driver "
            f"(postgresql+psycopg://...), not {describe_url(settings.url)}"
        )
    given = url.query.get("options")
    options = [given] if isinstance(given, str) else list(given or ())
    options += [
        "-c default_transaction_read_only=on",
        f"-c statement_timeout={max(1, round(timeout_seconds * 1000))}",
    ]
    try:
        return create_engine(
            url.difference_update_query(["options"]),
            poolclass=NullPool,
            connect_args={"options": " ".join(options)},
        )
    except NoSuchModuleError as exc:
        raise ConfigurationError(
            "autoopt sql on PostgreSQL needs psycopg: pip install 'dify-autoopt[postgres]'"
        ) from exc


def _run_postgres(
    settings: DatabaseSettings, url: URL, query: str, timeout_seconds: float
) -> QueryResult:
    import psycopg

    engine = _postgres_engine(settings, url, timeout_seconds)
    where = describe_url(settings.url)
    try:
        with (
            _translated(where, timeout_seconds, None, (psycopg.Error,)),
            engine.connect() as connection,
        ):
            driver: psycopg.Connection[Any] | None = connection.connection.driver_connection
            assert driver is not None, "an open connection has a driver connection"
            # psycopg begins every transaction with BEGIN READ ONLY from here on.
            driver.read_only = True
            try:
                with driver.cursor() as cursor:
                    cursor.execute("SELECT current_setting('transaction_read_only')")
                    if cursor.fetchone() != ("on",):
                        raise StorageError(f"{where}: could not open a read-only transaction")
                    _check_statement(driver, query)
                    # prepare=True keeps to the extended protocol: one statement only.
                    cursor.execute(query, prepare=True)
                    if cursor.description is None:
                        raise _no_rows(query)
                    columns = tuple(d.name for d in cursor.description)
                    return QueryResult(columns, list(cursor.fetchall()))
            finally:
                driver.rollback()
    finally:
        engine.dispose()


def _check_statement(driver: psycopg.Connection[Any], query: str) -> None:
    """Parse and describe without running: one statement, and one that returns rows."""
    from psycopg import pq
    from psycopg.errors import error_from_result

    encoding = driver.info.encoding
    pgconn = driver.pgconn
    prepared = pgconn.prepare(b"", query.encode(encoding))
    if prepared.status == pq.ExecStatus.FATAL_ERROR:
        raise error_from_result(prepared, encoding=encoding)
    described = pgconn.describe_prepared(b"")
    if described.status == pq.ExecStatus.FATAL_ERROR:
        raise error_from_result(described, encoding=encoding)
    if described.nfields == 0:
        raise _no_rows(query)


# --- the seam where driver errors become ours -----------------------------------------------


def _no_rows(query: str) -> ReadOnlyError:
    return ReadOnlyError(
        f"{READ_ONLY}: only queries that return rows are run, and {first_word(query)} returns none"
    )


def _too_long(timeout_seconds: float) -> StorageError:
    return StorageError(f"autoopt sql: the query ran past {timeout_seconds:g} s and was stopped")


@contextmanager
def _translated(
    where: str,
    timeout_seconds: float,
    walls: SqliteWalls | None,
    driver_errors: tuple[type[Exception], ...],
) -> Iterator[None]:
    errors: tuple[type[Exception], ...] = (DBAPIError, *driver_errors)
    try:
        yield
    except errors as exc:
        raise _translate(where, timeout_seconds, walls, exc) from exc
    except SQLAlchemyError as exc:
        raise StorageError(f"{where}: database error ({type(exc).__name__})") from exc


def _translate(
    where: str, timeout_seconds: float, walls: SqliteWalls | None, exc: Exception
) -> StorageError:
    cause: Any = exc.orig if isinstance(exc, DBAPIError) else exc
    if walls is not None and walls.denied is not None:
        return ReadOnlyError(f"{READ_ONLY}: {walls.denied} is not allowed")
    if isinstance(cause, sqlite3.Error):
        return _translate_sqlite(where, timeout_seconds, walls, cause)
    return _translate_postgres(where, timeout_seconds, cause)


def _translate_sqlite(
    where: str, timeout_seconds: float, walls: SqliteWalls | None, cause: sqlite3.Error
) -> StorageError:
    text = str(cause)
    code = getattr(cause, "sqlite_errorcode", 0) & 0xFF
    if "one statement at a time" in text:
        return ReadOnlyError(f"{READ_ONLY}: it runs one statement at a time")
    if code == sqlite3.SQLITE_READONLY or "may not be modified" in text:
        return ReadOnlyError(f"{READ_ONLY}: {text}")
    if code == sqlite3.SQLITE_INTERRUPT and walls is not None and walls.timed_out:
        return _too_long(timeout_seconds)
    if code == sqlite3.SQLITE_NOTADB or "not a database" in text:
        return NotADatabaseError(f"{where}: the file is not a SQLite database")
    if code == sqlite3.SQLITE_CANTOPEN:
        return StorageError(f"{where}: cannot open the database ({text})")
    return StorageError(f"autoopt sql: {text}")


def _translate_postgres(where: str, timeout_seconds: float, cause: Any) -> StorageError:
    diag = getattr(cause, "diag", None)
    sqlstate = getattr(cause, "sqlstate", None)
    primary = (getattr(diag, "message_primary", None) or str(cause)).splitlines()
    text = primary[0] if primary else type(cause).__name__
    if sqlstate is not None and sqlstate.startswith("25"):
        # Class 25, invalid transaction state: a write in the read-only
        # transaction (25006), or an attempt to make it read-write (25001).
        return ReadOnlyError(f"{READ_ONLY}: {text}")
    if sqlstate == "42601" and "multiple commands" in text:
        return ReadOnlyError(f"{READ_ONLY}: it runs one statement at a time")
    if sqlstate == "57014":  # query_canceled: our statement_timeout
        return _too_long(timeout_seconds)
    if sqlstate is None:
        # No server answer at all: the connection itself failed.
        return StorageError(f"{where}: cannot connect ({text})")
    return StorageError(f"autoopt sql: {text}")
