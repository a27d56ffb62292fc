"""Deterministic stand-ins for the Clock and IdFactory ports."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta


class SteppingClock:
    """Each call is one second after the previous one."""

    def __init__(self, start: datetime = datetime(2026, 3, 1, tzinfo=UTC)) -> None:
        self._next = start

    def now(self) -> datetime:
        current = self._next
        self._next += timedelta(seconds=1)
        return current


class SequentialIds:
    def __init__(self, start: int = 0) -> None:
        self._n = start

    def new_id(self) -> uuid.UUID:
        self._n += 1
        return uuid.UUID(int=self._n)

    def new_run_id(self) -> uuid.UUID:
        return self.new_id()
