"""The composition root: the one place that wires adapters to the domain's ports."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from autoopt.domain.analyzer import PromptAnalyzer
from autoopt.domain.optimizer import PromptOptimizer
from autoopt.domain.ports import Clock, EventLog, IdFactory, LLMRewriter, WorkflowCatalog
from autoopt.domain.service import OptimizerService
from autoopt.domain.versions import VersionManager
from autoopt.infrastructure.clock import SystemClock, TimeOrderedIds
from autoopt.infrastructure.db import open_database
from autoopt.infrastructure.event_store import SqlEventLog
from autoopt.infrastructure.llm.cache import ResponseCache
from autoopt.infrastructure.llm.pricing import Pricing
from autoopt.infrastructure.memory_event_log import InMemoryEventLog
from autoopt.infrastructure.projections.runner import ProjectionRunner
from autoopt.infrastructure.settings import Settings, api_key
from autoopt.infrastructure.storage import FileSystemStorage, InMemoryVersionStorage
from autoopt.infrastructure.storage.database import DatabaseStorage

if TYPE_CHECKING:
    from autoopt.infrastructure.llm.client import OpenAIRewriter


@dataclass(frozen=True)
class Container:
    """The services, each built on first use: a command that needs no database
    (``--help``, ``prompts list``, a dry run) never opens or creates one."""

    settings: Settings
    clock: Clock
    ids: IdFactory

    @cached_property
    def engine(self) -> Engine:
        return open_database(self.settings.database)

    @cached_property
    def event_log(self) -> SqlEventLog:
        return SqlEventLog(self.engine)

    @cached_property
    def storage(self) -> FileSystemStorage | DatabaseStorage:
        config = self.settings.storage
        if config.backend == "database":
            # In the database the events go to, so workers need share nothing else.
            return DatabaseStorage(
                self.engine, use_cache=config.use_cache, cache_size=config.cache_size
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

    @cached_property
    def projections(self) -> ProjectionRunner:
        return ProjectionRunner(self.engine, self.event_log)

    def catch_up(self) -> None:
        """Bring the read models up to the log, if this command appended anything."""
        if "event_log" in self.__dict__ and self.event_log.appended:
            self.projections.catch_up()

    @cached_property
    def llm_cache(self) -> ResponseCache:
        return ResponseCache(self.engine, self.settings.llm.cache_ttl, self.clock)

    def llm_rewriter(
        self, *, use_cache: bool = True, max_cost_usd: float | None = None
    ) -> OpenAIRewriter | None:
        """The language model, or None when no API key is in the environment."""
        key = api_key(self.settings)
        if key is None:
            return None
        # The SDK takes half a second to import: only a command that calls a model pays it.
        from autoopt.infrastructure.llm.client import OpenAIRewriter

        config = self.settings.llm
        return OpenAIRewriter(
            config,
            key,
            cache=self.llm_cache if use_cache and config.enable_cache else None,
            pricing=Pricing.from_settings(config),
            max_cost_usd=max_cost_usd,
        )

    def optimizer_service(
        self,
        *,
        dry_run: bool = False,
        catalog: WorkflowCatalog | None = None,
        llm: LLMRewriter | None = None,
    ) -> OptimizerService:
        """The service; a dry run records into memory only, so nothing is kept."""
        log: EventLog
        if dry_run:
            log = InMemoryEventLog()
            versions = VersionManager(InMemoryVersionStorage(), log, self.clock, self.ids)
        else:
            log, versions = self.event_log, self.versions
        return OptimizerService(
            log,
            versions,
            PromptOptimizer(
                PromptAnalyzer(),
                llm=llm,
                length_bounds=(
                    self.settings.llm.min_length_ratio,
                    self.settings.llm.max_length_ratio,
                ),
            ),
            self.clock,
            self.ids,
            catalog=catalog,
            defaults=self.settings.optimization.config(),
        )

    def close(self) -> None:
        """Flush what is pending (the store's index) and release connections."""
        built = self.__dict__
        if "storage" in built:
            self.storage.close()
        if "event_log" in built:
            self.event_log.close()
        if "engine" in built:
            self.engine.dispose()


def build(settings: Settings) -> Container:
    """Assemble the services; the database is opened (and created) when first needed."""
    return Container(settings=settings, clock=SystemClock(), ids=TimeOrderedIds())
