"""Between domain events and stored rows: the only place that knows both shapes.

Writing, an event becomes a row of plain JSON values. Reading, the payload is
upcast to the event's current schema and validated back into the frozen model.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from autoopt.domain.errors import EventSchemaError
from autoopt.domain.events import DomainEvent, event_class, upcast
from autoopt.domain.ports import RecordedEvent


def event_to_row(
    event: DomainEvent, *, position: int, stream_id: str, stream_version: int
) -> dict[str, Any]:
    return {
        "position": position,
        "event_id": str(event.event_id),
        "stream_id": stream_id,
        "stream_version": stream_version,
        "event_type": event.event_type,
        "schema_version": event.schema_version,
        "occurred_at": event.occurred_at,
        "correlation_id": event.correlation_id,
        "causation_id": event.causation_id,
        "payload": event.payload(),
    }


def row_to_recorded(row: Mapping[Any, Any]) -> RecordedEvent:
    position = row["position"]
    event_type = row["event_type"]
    try:
        payload = upcast(event_type, row["schema_version"], dict(row["payload"]))
        cls = event_class(event_type)
        event = cls.model_validate(
            {
                **payload,
                "event_id": row["event_id"],
                "occurred_at": _as_utc(row["occurred_at"]),
                "correlation_id": row["correlation_id"],
                "causation_id": row["causation_id"],
                "schema_version": cls.current_schema_version(),
            }
        )
    except EventSchemaError as exc:
        raise EventSchemaError(f"event at position {position}: {exc}") from exc
    except (ValidationError, KeyError, TypeError) as exc:
        raise EventSchemaError(
            f"event at position {position} ({event_type}) cannot be read: {exc}"
        ) from exc
    return RecordedEvent(
        position=position,
        stream_id=row["stream_id"],
        stream_version=row["stream_version"],
        event=event,
    )


def _as_utc(value: datetime | str) -> datetime:
    # SQLite keeps no zone with a DATETIME; everything stored is UTC.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
