"""The composition root: the one place that wires adapters to the domain's ports."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from autoopt.domain.ports import Clock, EventLog, IdFactory
from autoopt.infrastructure.clock import RandomIds, SystemClock
from autoopt.infrastructure.db import open_database
from autoopt.infrastructure.event_store import SqlEventLog
from autoopt.infrastructure.settings import Settings


@dataclass(frozen=True)
class Container:
    settings: Settings
    engine: Engine
    event_log: EventLog
    clock: Clock
    ids: IdFactory


def build(settings: Settings) -> Container:
    """Open (and on first use create) the database, and assemble the services."""
    engine = open_database(settings.database)
    return Container(
        settings=settings,
        engine=engine,
        event_log=SqlEventLog(engine),
        clock=SystemClock(),
        ids=RandomIds(),
    )
