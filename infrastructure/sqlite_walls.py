"""The SQLite walls of ``autoopt sql``: an authorizer that lets only reading
compile, and a deadline for runaway queries (see ``read_only`` for all walls)."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

# PRAGMAs that only report. Those in _TABLE_PRAGMAS take a table, index or
# limit argument; the others are refused with any argument (that form sets).
_TABLE_PRAGMAS = frozenset().union(
    ("table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo"),
    ("foreign_key_list", "foreign_key_check", "integrity_check", "quick_check"),
)
_READ_PRAGMAS = _TABLE_PRAGMAS.union(
    ("user_version", "schema_version", "application_id", "data_version", "encoding"),
    ("page_count", "page_size", "freelist_count", "journal_mode", "foreign_keys", "query_only"),
    ("database_list", "collation_list", "compile_options", "function_list", "module_list"),
)
_ALLOWED_ACTIONS = frozenset(
    {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE, sqlite3.SQLITE_FUNCTION}
)
# Names for the refusal message; the codes of the other denied actions.
_ACTION_NAMES = {
    getattr(sqlite3, name): name.removeprefix("SQLITE_").replace("_", " ")
    for name in dir(sqlite3)
    if name.startswith(("SQLITE_CREATE_", "SQLITE_DROP_"))
    or name in {"SQLITE_ANALYZE", "SQLITE_DETACH", "SQLITE_REINDEX"}
}
_DATA_VERBS = {
    sqlite3.SQLITE_INSERT: "INSERT into",
    sqlite3.SQLITE_UPDATE: "UPDATE of",
    sqlite3.SQLITE_DELETE: "DELETE from",
}
_SCHEMA_CHANGE = "a schema change"
_SCHEMA_TABLES = ("sqlite_master", "sqlite_temp_master", "sqlite_schema", "sqlite_temp_schema")


@dataclass
class SqliteWalls:
    """The authorizer and the deadline of one connection, and what they stopped."""

    timeout_seconds: float
    denied: str | None = None
    query: str = ""
    deadline: float = float("inf")
    timed_out: bool = False

    def install(self, connection: sqlite3.Connection) -> None:
        # The driver must not open transactions of its own around our statement.
        connection.isolation_level = None
        connection.execute("PRAGMA query_only=ON")
        connection.set_authorizer(self.authorize)
        connection.set_progress_handler(self.progress, 10_000)

    def start(self, query: str) -> None:
        self.query = query
        self.denied = None
        self.timed_out = False
        self.deadline = time.monotonic() + self.timeout_seconds

    def authorize(
        self, action: int, arg1: str | None, arg2: str | None, _db: str | None, _src: str | None
    ) -> int:
        if action in _ALLOWED_ACTIONS and not (
            action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() == "load_extension"
        ):
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_UPDATE and arg1 in _SCHEMA_TABLES:
            # A table-valued function (json_each, pragma_table_info) reports an
            # UPDATE of the schema table's columns when it first declares its own.
            # A real one is refused by SQLite before it asks: "table sqlite_master
            # may not be modified" (writable_schema, a PRAGMA write, is denied).
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_PRAGMA:
            name = (arg1 or "").lower()
            if name in _READ_PRAGMAS and (arg2 is None or name in _TABLE_PRAGMAS):
                return sqlite3.SQLITE_OK
        # SQLite stops compiling at the first refusal: that one names what was tried.
        if self.denied is None:
            self.denied = _describe_action(action, arg1, arg2)
            if self.denied == _SCHEMA_CHANGE:
                self.denied += f" ({first_word(self.query)} ...)"
        return sqlite3.SQLITE_DENY

    def progress(self) -> int:
        if time.monotonic() > self.deadline:
            self.timed_out = True
            return 1
        return 0


def _describe_action(action: int, arg1: str | None, arg2: str | None) -> str:
    if action == sqlite3.SQLITE_PRAGMA:
        return f"PRAGMA {arg1}" + (f"={arg2}" if arg2 is not None else "")
    if action == sqlite3.SQLITE_FUNCTION:
        return f"the function {arg2}()"
    if action == sqlite3.SQLITE_ATTACH:
        # VACUUM attaches its target too: '' for VACUUM, the new file for VACUUM INTO.
        return f"ATTACH (or VACUUM) of {arg1!r}" if arg1 else "VACUUM"
    if action == sqlite3.SQLITE_ALTER_TABLE:
        return f"ALTER TABLE {arg2}"
    if action == sqlite3.SQLITE_TRANSACTION:
        return f"{arg1} (transaction control)"
    if action == sqlite3.SQLITE_SAVEPOINT:
        return f"{arg1} SAVEPOINT {arg2} (transaction control)"
    if action in _DATA_VERBS:
        if arg1 in _SCHEMA_TABLES:
            # DDL asks to change the schema table before it names its object.
            return _SCHEMA_CHANGE
        return f"{_DATA_VERBS[action]} {arg1}"
    name = _ACTION_NAMES.get(action, f"action {action}")
    return f"{name} {arg1}" if arg1 else name


def first_word(query: str) -> str:
    words = query.split()
    return words[0].upper() if words and words[0].isalpha() else "this statement"
