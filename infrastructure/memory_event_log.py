"""An event log held in a list: the fake behind the ``EventLog`` port for unit tests.

It keeps every rule of the SQL log (same contract suite), but nothing outlives
the process.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from uuid import UUID

from autoopt.domain.errors import NotFoundError
from autoopt.domain.events import DomainEvent
from autoopt.domain.ports import (
    RecordedEvent,
    check_batch_ids,
    check_expected_version,
    check_same_stream,
)


class InMemoryEventLog:
    def __init__(self) -> None:
        self._events: list[RecordedEvent] = []
        self._by_event_id: dict[UUID, RecordedEvent] = {}
        self._stream_versions: dict[str, int] = {}
        self._lock = threading.Lock()

    def append(
        self,
        stream_id: str,
        events: Sequence[DomainEvent],
        expected_version: int | None,
    ) -> list[int]:
        if not events:
            return []
        with self._lock:
            stored = [self._by_event_id.get(e.event_id) for e in events]
            known = [r for r in stored if r is not None]
            if len(known) == len(events):
                for record in known:
                    check_same_stream(record.event.event_id, record.stream_id, stream_id)
                return [r.position for r in known]
            check_batch_ids(len(known), len(events))
            current = self._stream_versions.get(stream_id, 0)
            check_expected_version(stream_id, current, expected_version)
            positions = []
            for offset, event in enumerate(events, start=1):
                record = RecordedEvent(
                    position=len(self._events) + 1,
                    stream_id=stream_id,
                    stream_version=current + offset,
                    event=event,
                )
                self._events.append(record)
                self._by_event_id[event.event_id] = record
                positions.append(record.position)
            self._stream_versions[stream_id] = current + len(events)
            return positions

    def read_stream(self, stream_id: str, after_version: int = 0) -> list[RecordedEvent]:
        with self._lock:
            return [
                r
                for r in self._events
                if r.stream_id == stream_id and r.stream_version > after_version
            ]

    def read_all(
        self, after_position: int = 0, limit: int | None = None
    ) -> Iterator[RecordedEvent]:
        with self._lock:
            end = len(self._events) if limit is None else after_position + limit
            snapshot = self._events[max(after_position, 0) : end]
        yield from snapshot

    def get(self, position: int) -> RecordedEvent:
        with self._lock:
            if 1 <= position <= len(self._events):
                return self._events[position - 1]
        raise NotFoundError(f"no event at position {position}")

    def find_by_event_id(self, event_id: UUID) -> RecordedEvent:
        with self._lock:
            record = self._by_event_id.get(event_id)
        if record is None:
            raise NotFoundError(f"no event with id {event_id}")
        return record

    def stream_version(self, stream_id: str) -> int:
        with self._lock:
            return self._stream_versions.get(stream_id, 0)

    def last_position(self) -> int:
        with self._lock:
            return len(self._events)
