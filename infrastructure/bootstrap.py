"""The composition root: the one place that wires adapters to the domain's ports."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from sqlalchemy import Engine

from autoopt.domain.analyzer import PromptAnalyzer
from autoopt.domain.errors import ConfigurationError
from autoopt.domain.optimizer import PromptOptimizer
from autoopt.domain.ports import Clock, EventLog, IdFactory, WorkflowCatalog
from autoopt.domain.service import OptimizerService
from autoopt.domain.versions import VersionManager
from autoopt.infrastructure.clock import RandomIds, SystemClock
from autoopt.infrastructure.db import open_database
from autoopt.infrastructure.event_store import SqlEventLog
from autoopt.infrastructure.memory_event_log import InMemoryEventLog
from autoopt.infrastructure.settings import Settings
from autoopt.infrastructure.storage import FileSystemStorage, InMemoryVersionStorage


@dataclass(frozen=True)
class Container:
    settings: Settings
    engine: Engine
    event_log: EventLog
    clock: Clock
    ids: IdFactory

    @cached_property
    def storage(self) -> FileSystemStorage:
        config = self.settings.storage
        if config.backend != "filesystem":
            raise ConfigurationError(
                f"storage.backend: {config.backend!r} is not available yet; use 'filesystem'"
            )
        return FileSystemStorage(
            config.storage_dir,
            use_index=config.use_index,
            use_cache=config.use_cache,
            cache_size=config.cache_size,
            enable_sharding=config.enable_sharding,
        )

    @cached_property
    def versions(self) -> VersionManager:
        return VersionManager(self.storage, self.event_log, self.clock, self.ids)

    def optimizer_service(
        self, *, dry_run: bool = False, catalog: WorkflowCatalog | None = None
    ) -> OptimizerService:
        """The service; a dry run records into memory only, so nothing is kept."""
        log: EventLog = self.event_log
        versions = self.versions
        if dry_run:
            log = InMemoryEventLog()
            versions = VersionManager(InMemoryVersionStorage(), log, self.clock, self.ids)
        return OptimizerService(
            log,
            versions,
            PromptOptimizer(PromptAnalyzer()),
            self.clock,
            self.ids,
            catalog=catalog,
            defaults=self.settings.optimization.config(),
        )

    def close(self) -> None:
        """Flush what is pending (the store's index) and release connections."""
        if "storage" in self.__dict__:
            self.storage.close()
        if isinstance(self.event_log, SqlEventLog):
            self.event_log.close()
        self.engine.dispose()


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
