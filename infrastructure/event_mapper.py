"""Between domain events and stored rows: the only place that knows both shapes.

Writing, an event becomes a row of plain JSON values. Reading, the payload is
upcast to the event's current schema and validated back into the frozen model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from autoopt.domain.errors import EventSchemaError
from autoopt.domain.events import ENVELOPE_FIELDS, DomainEvent, event_class, upcast
from autoopt.domain.ports import RecordedEvent

_ENVELOPE: set[str] = set(ENVELOPE_FIELDS)


def payload_text(event: DomainEvent) -> str:
    """The stored payload: ``event.payload()`` as compact JSON text.

    Serialized by pydantic (in Rust) straight from the model: an append
    profile showed ``model_dump`` followed by ``json.dumps`` at a third of the
    work per event. It parses back to exactly ``event.payload()``.
    """
    # The model's own serializer, without model_dump_json's wrapper in Python
    # around it (3% of a single-event append's instructions went there).
    return type(event).__pydantic_serializer__.to_json(event, exclude=_ENVELOPE).decode()


def sqlite_time(moment: datetime) -> str:
    """The UTC text form SQLAlchemy's DateTime reads back on SQLite."""
    if moment.tzinfo is UTC:
        # What events hold (their validator converts): the text minus "+00:00".
        return moment.isoformat(" ", "microseconds")[:-6]
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


_SQLITE_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{1,6})?")


def row_to_recorded(row: Sequence[Any]) -> RecordedEvent:
    """A stored row, its columns in the ``events`` table's order, as a recorded event.

    Rows come as tuples, not mappings: building a mapping and looking ten
    names up in it was a tenth of the decoding of a page of the log.
    """
    (
        position,
        event_id,
        stream_id,
        stream_version,
        event_type,
        schema_version,
        occurred_at,
        correlation_id,
        causation_id,
        stored,
    ) = row
    try:
        cls = event_class(event_type)
        if isinstance(stored, str) and schema_version == cls.current_schema_version():
            # The common case, at the current schema: the payload text and the
            # envelope go to pydantic as one JSON document, never a Python dict.
            # The envelope is written out by hand: json.dumps of it cost more
            # than validating the event.
            envelope = (
                f'{{"event_id":{_json_text(event_id)},'
                f'"occurred_at":"{_iso_utc(occurred_at)}",'
                f'"correlation_id":{_json_text(correlation_id)},'
                f'"causation_id":{_json_text(causation_id)},'
                f'"schema_version":{int(schema_version)}'
            )
            event = cls.model_validate_json(_joined(envelope, stored))
        else:
            payload = json.loads(stored) if isinstance(stored, str) else dict(stored)
            payload = upcast(event_type, schema_version, payload)
            event = cls.model_validate(
                {
                    **payload,
                    "event_id": event_id,
                    "occurred_at": _as_utc(occurred_at),
                    "correlation_id": correlation_id,
                    "causation_id": causation_id,
                    "schema_version": cls.current_schema_version(),
                }
            )
    except EventSchemaError as exc:
        raise EventSchemaError(f"event at position {position}: {exc}") from exc
    except (ValidationError, KeyError, TypeError, ValueError) as exc:
        raise EventSchemaError(
            f"event at position {position} ({event_type}) cannot be read: {exc}"
        ) from exc
    return RecordedEvent(
        position=position, stream_id=stream_id, stream_version=stream_version, event=event
    )


def _joined(envelope: str, payload: str) -> str:
    body = payload.strip()
    if body == "{}":
        return envelope + "}"
    if not body.startswith("{"):
        # Not an object (a corrupt row): let the validator say so about the payload.
        return body
    return envelope + "," + body[1:]


def _json_text(value: str | None) -> str:
    if value is None:
        return "null"
    if value.isprintable() and '"' not in value and "\\" not in value:
        return f'"{value}"'
    return json.dumps(value, ensure_ascii=False)


def _iso_utc(value: datetime | str) -> str:
    if isinstance(value, str) and _SQLITE_TIME.fullmatch(value):
        # SQLite's stored UTC text: the same instant in ISO form, without parsing it.
        return value.replace(" ", "T") + "Z"
    return _as_utc(value).isoformat()


def _as_utc(value: datetime | str) -> datetime:
    # SQLite keeps no zone with a DATETIME; everything stored is UTC.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
