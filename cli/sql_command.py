"""``autoopt sql``: one read-only query against the read models and the event log."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from typing import Any
from uuid import UUID

import click

from autoopt.cli.context import CliState, pass_state
from autoopt.cli.output import emit, format_option, format_time


@click.command("sql")
@click.argument("query")
@format_option
@pass_state
def sql(state: CliState, query: str, fmt: str) -> None:
    """Run one read-only SQL query and print its rows.

    The database is opened so that it cannot be written: INSERT, UPDATE,
    DELETE, DDL, ATTACH, VACUUM, PRAGMA writes and a second statement are
    refused with an error and change nothing. The database is neither created
    nor migrated. The tables are listed in the README under "Read models".

    \b
    Examples:
      autoopt sql "SELECT run_id, status, prompts_optimized FROM runs"
      autoopt sql "SELECT strategy, count(*) FROM iterations GROUP BY strategy" --format csv
      autoopt sql "SELECT position, event_type FROM events ORDER BY position DESC" --format json
    """
    from autoopt.infrastructure.read_only import run_query

    if not query.strip():
        raise click.BadParameter("the query is empty", param_hint="QUERY")
    # Only the settings: building the container would open (and migrate) the database.
    result = run_query(state.settings().database, query)
    columns = distinct_names(result.columns)
    rows = [
        {name: plain(value, fmt) for name, value in zip(columns, row, strict=True)}
        for row in result.rows
    ]
    emit(rows, columns, fmt)


def distinct_names(names: Sequence[str]) -> list[str]:
    """Column names as keys: a repeated name gets ``_2``, ``_3``... so no value is lost."""
    seen: set[str] = set()
    distinct = []
    for name in names:
        candidate, n = name, 1
        while candidate in seen:
            n += 1
            candidate = f"{name}_{n}"
        seen.add(candidate)
        distinct.append(candidate)
    return distinct


def plain(value: Any, fmt: str) -> Any:
    """A driver value as text or a JSON value: the same answer in every format."""
    from decimal import Decimal  # 2 ms at start-up (_decimal) otherwise; only sql needs it

    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        # NaN and infinity have no JSON spelling.
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        if fmt == "json" and value.is_finite() and Decimal(repr(float(value))) == value:
            return float(value)
        return str(value)
    if isinstance(value, datetime):
        return format_time(value) if value.tzinfo is not None else value.isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, dict | list | tuple):
        # JSON columns (PostgreSQL) and arrays: nested in json, JSON text elsewhere.
        encoded = json.dumps(value, ensure_ascii=False, default=str)
        return json.loads(encoded) if fmt == "json" else encoded
    return str(value)
