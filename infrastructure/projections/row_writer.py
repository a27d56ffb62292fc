"""One batch's writes to the read models, sent as few statements as possible.

Projectors hand their rows to a ``RowWriter`` instead of executing a statement
per event: inserts are buffered per table and sent as one executemany at the
end of the batch; an update of a row still in the buffer (PromptAnalyzed of a
prompt extracted in the same batch, RunCompleted of a run started in it) is
folded into that row. Statements are built once per table and shape and then
reused, so SQLAlchemy compiles nothing per event. A profile of a rebuild had
shown 65% of its time in building one INSERT per event.

Every buffered row remembers the event it came from: when a bulk insert fails,
it is retried row by row under a savepoint to name that event.

The bulk insert goes to the driver's cursor (on the same connection, inside
the same transaction) with each column's SQLAlchemy bind processor applied
once per value: a rebuild profile showed SQLAlchemy's per-row parameter
construction for executemany (``construct_params`` and the dicts it is fed)
at a sixth of the whole rebuild.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Connection, DateTime, Dialect, Table, Update, and_, bindparam, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.types import TypeEngine

from autoopt.domain.ports import RecordedEvent


class RowError(Exception):
    """A row could not be written; ``record`` is the event it came from."""

    def __init__(self, record: RecordedEvent, projector: str, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.record = record
        self.projector = projector


@dataclass
class _Pending:
    row: dict[str, Any]
    record: RecordedEvent
    projector: str


class RowWriter:
    def __init__(self, conn: Connection, statements: StatementCache) -> None:
        self._conn = conn
        self._statements = statements
        self._pending: dict[Table, dict[tuple[Any, ...], _Pending]] = {}
        self.record: RecordedEvent | None = None
        self.projector = ""

    def insert(self, table: Table, row: Mapping[str, Any]) -> None:
        assert self.record is not None
        key = tuple([row[name] for name in _key_names(table)])
        rows = self._pending.setdefault(table, {})
        if key in rows:
            # The database would refuse it at the flush; say so at the event itself.
            raise ValueError(f"a second {table.name} row with the key {key}")
        rows[key] = _Pending(dict(row), self.record, self.projector)

    def update(
        self, table: Table, key: Mapping[str, Any], values: Mapping[str, Any], missing: str
    ) -> None:
        """Set ``values`` on the one row with primary key ``key``; ``LookupError(missing)``
        when there is none."""
        pending = self._pending.get(table, {}).get(tuple([key[n] for n in _key_names(table)]))
        if pending is not None:
            pending.row.update(values)
            return
        statement = self._statements.update(table, tuple(key), tuple(values))
        params = {
            **{f"k_{k}": v for k, v in key.items()},
            **{f"v_{k}": v for k, v in values.items()},
        }
        if self._conn.execute(statement, params).rowcount != 1:
            raise LookupError(missing)

    def flush(self) -> None:
        for table, rows in self._pending.items():
            if rows:
                self._insert_all(table, list(rows.values()))
        self._pending.clear()

    def _insert_all(self, table: Table, rows: Sequence[_Pending]) -> None:
        statement = self._statements.driver_insert(table, self._conn.dialect)
        values = [statement.parameters(p.row) for p in rows]
        failure = self._conn.dialect.loaded_dbapi.Error
        try:
            with self._conn.begin_nested():
                statement.execute(self._conn, values)
            return
        except (SQLAlchemyError, failure):
            pass  # find the row that failed, below
        for pending, row in zip(rows, values, strict=True):
            try:
                with self._conn.begin_nested():
                    statement.execute(self._conn, [row])
            except (SQLAlchemyError, failure) as exc:
                raise RowError(pending.record, pending.projector, exc) from exc


Processor = Callable[[Any], Any]
_PROBE = datetime(2001, 2, 3, 4, 5, 6, 7)


def _bind_processor(column_type: TypeEngine[Any], dialect: Dialect) -> Processor | None:
    """SQLAlchemy's processor for a column, or one that gives the same text for less.

    SQLite's DATETIME processor fills a %-format from seven attributes in
    Python; ``isoformat`` makes the same text in C. It is swapped in only when
    the processor proves to write the default format, checked on a probe.
    """
    impl = column_type.dialect_impl(dialect)
    process = impl.bind_processor(dialect)
    if not (dialect.name == "sqlite" and isinstance(impl, DateTime)) or process is None:
        return process
    if process(_PROBE) != "2001-02-03 04:05:06.000007":
        return process

    def sqlite_datetime(value: Any) -> Any:
        if type(value) is datetime:
            # The wall-clock fields, as SQLAlchemy's format has them; the
            # "+00:00" of an aware value is cut off, as its format leaves it out.
            return value.isoformat(" ", "microseconds")[:26]
        return process(value)

    return sqlite_datetime


@cache
def _key_names(table: Table) -> tuple[str, ...]:
    # Asked once per row: walking table.primary_key each time was 3% of a rebuild profile.
    return tuple(c.name for c in table.primary_key.columns)


@dataclass(frozen=True)
class DriverInsert:
    """An INSERT of every column of one table, in the driver's own parameter style."""

    sql: str
    columns: tuple[str, ...]
    # (column index, processor) for the columns whose values need converting.
    processed: tuple[tuple[int, Processor], ...]
    # PostgreSQL: COPY, one stream for all rows (executemany sends a statement per row).
    copy_sql: str | None = None

    @classmethod
    def build(cls, table: Table, dialect: Dialect) -> DriverInsert:
        preparer = dialect.identifier_preparer
        marker = "?" if dialect.paramstyle == "qmark" else "%s"
        columns = tuple(c.name for c in table.columns)
        target = f"{preparer.format_table(table)} ({', '.join(map(preparer.quote, columns))})"
        sql = f"INSERT INTO {target} VALUES ({', '.join([marker] * len(columns))})"
        # The processors SQLAlchemy itself would apply (JSON to text, datetime
        # to SQLite's text form, booleans to integers), looked up once.
        processors = [_bind_processor(c.type, dialect) for c in table.columns]
        processed = tuple((i, fn) for i, fn in enumerate(processors) if fn is not None)
        copy_sql = f"COPY {target} FROM STDIN" if dialect.name == "postgresql" else None
        return cls(sql, columns, processed, copy_sql)

    def parameters(self, row: Mapping[str, Any]) -> list[Any]:
        values = [row.get(name) for name in self.columns]
        for index, process in self.processed:
            # None too: a JSON column stores None as JSON null, as SQLAlchemy would.
            values[index] = process(values[index])
        return values

    def execute(self, conn: Connection, rows: Sequence[Sequence[Any]]) -> None:
        cursor = conn.connection.cursor()
        try:
            if self.copy_sql is None:
                cursor.executemany(self.sql, rows)
                return
            with cursor.copy(self.copy_sql) as copy:
                for row in rows:
                    copy.write_row(row)
        finally:
            cursor.close()


class StatementCache:
    """INSERT and UPDATE statements, built once per table (and dialect) and set of columns."""

    def __init__(self) -> None:
        self._inserts: dict[tuple[Table, str], DriverInsert] = {}
        self._updates: dict[tuple[Table, tuple[str, ...], tuple[str, ...]], Update] = {}

    def driver_insert(self, table: Table, dialect: Dialect) -> DriverInsert:
        statement = self._inserts.get((table, dialect.name))
        if statement is None:
            statement = self._inserts[(table, dialect.name)] = DriverInsert.build(table, dialect)
        return statement

    def update(self, table: Table, key: tuple[str, ...], columns: tuple[str, ...]) -> Update:
        statement = self._updates.get((table, key, columns))
        if statement is None:
            where = and_(*(table.c[name] == bindparam(f"k_{name}") for name in key))
            statement = update(table).where(where).values({c: bindparam(f"v_{c}") for c in columns})
            self._updates[(table, key, columns)] = statement
        return statement
