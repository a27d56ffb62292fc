"""``autoopt events``: read the event log as it is stored."""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Any
from uuid import UUID

import click

from autoopt.cli.context import CliState, pass_state
from autoopt.cli.output import emit, format_option, format_time

if TYPE_CHECKING:
    from autoopt.domain.ports import EventLog, RecordedEvent

LIST_COLUMNS = ("position", "stream_id", "stream_version", "event_type", "occurred_at")
FULL_COLUMNS = (*LIST_COLUMNS, "schema_version", "event_id", "correlation_id", "causation_id")


def summary(record: RecordedEvent) -> dict[str, Any]:
    event = record.event
    return {
        "position": record.position,
        "stream_id": record.stream_id,
        "stream_version": record.stream_version,
        "event_type": event.event_type,
        "schema_version": event.schema_version,
        "event_id": str(event.event_id),
        "occurred_at": format_time(event.occurred_at),
        "correlation_id": event.correlation_id,
        "causation_id": event.causation_id,
    }


@click.group("events")
def events_group() -> None:
    """Read the append-only event log.

    \b
    Examples:
      autoopt events list --limit 20
      autoopt events show 42
      autoopt events tail --follow
    """


@events_group.command("list")
@click.option("--stream", "stream_id", help="Only events of this stream (e.g. run-<id>).")
@click.option("--after", type=click.IntRange(min=0), default=0, help="Only positions after N.")
@click.option("--limit", type=click.IntRange(min=1), help="At most N events.")
@format_option
@pass_state
def list_events(
    state: CliState, stream_id: str | None, after: int, limit: int | None, fmt: str
) -> None:
    """List events in log order (payloads are shown by 'events show').

    \b
    Examples:
      autoopt events list --limit 20
      autoopt events list --stream run-5805acc6-34ab-4574-99bd-0f5c7a2266a7 --format json
    """
    log = state.container().event_log
    if stream_id is None:
        records = list(log.read_all(after_position=after, limit=limit))
    else:
        records = [r for r in log.read_stream(stream_id) if r.position > after][:limit]
    columns = LIST_COLUMNS if fmt == "table" else FULL_COLUMNS
    emit([summary(r) for r in records], columns, fmt)


@events_group.command("show")
@click.argument("ref")
@pass_state
def show(state: CliState, ref: str) -> None:
    """Print one event, found by POSITION or EVENT_ID, with its payload as JSON.

    \b
    Example:
      autoopt events show 42
    """
    record = _find(state.container().event_log, ref)
    document = {**summary(record), "payload": record.event.payload()}
    click.echo(json.dumps(document, indent=2, ensure_ascii=False))


@events_group.command("tail")
@click.option(
    "-n",
    "--lines",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="How many of the last events to print first.",
)
@click.option("--follow", is_flag=True, help="Keep printing events as they are appended.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.01),
    default=0.5,
    show_default=True,
    help="Seconds between polls with --follow.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=None,
    help="Stop following after this many seconds (default: until interrupted).",
)
@pass_state
def tail(state: CliState, lines: int, follow: bool, interval: float, timeout: float | None) -> None:
    """Print the last events, and with --follow the ones appended after them.

    \b
    Example:
      autoopt events tail -n 5 --follow
    """
    log = state.container().event_log
    cursor = max(log.last_position() - lines, 0)
    cursor = _print_lines(log, cursor)
    if not follow:
        return
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while deadline is None or time.monotonic() < deadline:
            time.sleep(interval)
            cursor = _print_lines(log, cursor)
    except KeyboardInterrupt:
        return


def _print_lines(log: EventLog, cursor: int) -> int:
    for record in log.read_all(after_position=cursor):
        event = record.event
        click.echo(
            f"{record.position}  {format_time(event.occurred_at)}  "
            f"{record.stream_id}@{record.stream_version}  {event.event_type}"
        )
        cursor = record.position
    # A follower is often piped into another program; let it see each line now.
    sys.stdout.flush()
    return cursor


def _find(log: EventLog, ref: str) -> RecordedEvent:
    from autoopt.domain.errors import NotFoundError

    if ref.isdigit():
        return log.get(int(ref))
    try:
        event_id = UUID(ref)
    except ValueError:
        raise NotFoundError(f"{ref!r} is neither a position nor an event id") from None
    return log.find_by_event_id(event_id)
