"""Shared output options for listing commands: ``--format table|json|csv``.

Data goes to stdout; everything else (progress, logs) goes to stderr.
"""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

FORMATS = ("table", "json", "csv")

F = TypeVar("F", bound=Callable[..., Any])


def formats_option(formats: Sequence[str]) -> Callable[[F], F]:
    """``--format`` with a choice of ``formats`` (the first is the default), as ``fmt``."""

    def decorate(function: F) -> F:
        decorated = click.option(
            "--format",
            "fmt",
            type=click.Choice(list(formats)),
            default=formats[0],
            show_default=True,
            help="Output format.",
        )(function)
        return decorated

    return decorate


# Listing commands take all three; a report shaped as a document takes table or json.
format_option = formats_option(FORMATS)
document_format_option = formats_option(FORMATS[:2])


def format_time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def render(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(
            [{c: row.get(c) for c in columns} for row in rows], indent=2, ensure_ascii=False
        )
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_flat(row.get(c)) for c in columns])
        return buffer.getvalue().rstrip("\n")
    return _table(rows, columns)


def one_line(text: str) -> str:
    """A message as one line: an error is one line on the terminal, whatever it quotes."""
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip())


def emit(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], fmt: str) -> None:
    click.echo(render(rows, columns, fmt))


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([_width(c), *(_width(line[i]) for line in cells)]) for i, c in enumerate(columns)]
    lines = [
        "  ".join(_pad(c, w) for c, w in zip(columns, widths, strict=True)),
        "  ".join("-" * w for w in widths),
    ]
    lines.extend("  ".join(_pad(v, w) for v, w in zip(line, widths, strict=True)) for line in cells)
    return "\n".join(line.rstrip() for line in lines)


def _width(text: str) -> int:
    """Columns on a terminal: CJK and other wide characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


def _flat(value: Any) -> Any:
    """A cell of a flat format: lists joined by spaces, None empty."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value)
    return value


def _cell(value: Any) -> str:
    text = str(_flat(value))
    # One row per line, whatever the value holds.
    return text.replace("\r", "\\r").replace("\n", "\\n")
