"""The ports the domain talks through; adapters live in ``autoopt.infrastructure``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from autoopt.domain.analyzer import PromptAnalysis
from autoopt.domain.dsl_loading import DifyApp
from autoopt.domain.errors import ConcurrencyError, DuplicateEventError
from autoopt.domain.events import DomainEvent
from autoopt.domain.models import LLMExchange, PromptVersion


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An event as the log holds it: where it sits, and the event itself."""

    position: int
    stream_id: str
    stream_version: int
    event: DomainEvent


class EventLog(Protocol):
    """An append-only, totally ordered log of domain events.

    ``append`` writes a batch atomically. ``expected_version`` is the stream's
    current version the writer believes in (0 for a new stream); ``None`` skips
    the check. A batch whose event ids are all stored already is a no-op that
    returns the stored positions. Positions are gap-free and in commit order.
    """

    def append(
        self,
        stream_id: str,
        events: Sequence[DomainEvent],
        expected_version: int | None,
    ) -> list[int]: ...

    def read_stream(self, stream_id: str, after_version: int = 0) -> list[RecordedEvent]: ...

    def read_all(
        self, after_position: int = 0, limit: int | None = None
    ) -> Iterator[RecordedEvent]: ...

    def get(self, position: int) -> RecordedEvent: ...

    def find_by_event_id(self, event_id: UUID) -> RecordedEvent: ...

    def stream_version(self, stream_id: str) -> int: ...

    def last_position(self) -> int: ...


class VersionStorage(Protocol):
    """Where prompt versions live. Versions are immutable once saved.

    ``locked(prompt_id)`` holds the prompt's exclusive lock (across processes
    for the file store) and may be re-entered by its holder, so a caller can
    number a version, save it and record it as one step.
    """

    def locked(self, prompt_id: str) -> AbstractContextManager[None]: ...

    def save_version(self, version: PromptVersion) -> str: ...

    def content_sha256(self, prompt_id: str, version: int) -> str: ...

    def get_version(self, prompt_id: str, version: int) -> PromptVersion: ...

    def get_latest_version(self, prompt_id: str) -> PromptVersion | None: ...

    def latest_version_number(self, prompt_id: str) -> int: ...

    def next_version_number(self, prompt_id: str) -> int:
        """One past every version ever saved, deleted ones included; saves take only this."""
        ...

    def list_versions(self, prompt_id: str) -> list[int]: ...

    def delete_version(self, prompt_id: str, version: int) -> None: ...

    def deleted_versions(self, prompt_id: str) -> list[int]: ...

    def list_prompts(self) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    workflow_id: str
    source: str
    sha256: str


class WorkflowCatalog(Protocol):
    """Dify apps known by workflow id, as the seed's service resolved them."""

    def entries(self) -> list[CatalogEntry]: ...

    def load(self, workflow_id: str) -> tuple[DifyApp, str]:
        """The app and its DSL text; ``NotFoundError`` for an unknown id."""
        ...


@dataclass(frozen=True, slots=True)
class LLMAnswer:
    text: str
    exchange: LLMExchange


class LLMRewriter(Protocol):
    """Rewrites a prompt with a language model for one LLM strategy.

    Raises ``LLMError`` (timeout, server error, malformed answer, budget) when
    it has no usable answer, and ``LLMAuthenticationError`` once the key is
    refused, after which it makes no more requests.
    """

    def rewrite(
        self, strategy: str, text: str, analysis: PromptAnalysis, edition: str
    ) -> LLMAnswer: ...


class Clock(Protocol):
    def now(self) -> datetime: ...


class IdFactory(Protocol):
    def new_id(self) -> UUID:
        """An event's id."""
        ...

    def new_run_id(self) -> UUID:
        """A run's id: people type its first characters to name the run."""
        ...


def check_expected_version(stream_id: str, current: int, expected: int | None) -> None:
    """The optimistic-concurrency rule every ``EventLog`` applies before appending."""
    if expected is not None and expected != current:
        raise ConcurrencyError(
            f"stream {stream_id!r} is at version {current}, the writer expected {expected}"
        )


def check_same_stream(event_id: object, stored_stream: str, stream_id: str) -> None:
    """Appending a stored event again is a no-op only into the stream that holds it."""
    if stored_stream != stream_id:
        raise DuplicateEventError(
            f"event {event_id} is stored in stream {stored_stream!r}, not {stream_id!r}"
        )


def check_batch_ids(stored: int, batch: int) -> None:
    """A batch is stored whole or not at all; a partly stored one is a conflict."""
    if 0 < stored < batch:
        raise DuplicateEventError(
            f"{stored} of the {batch} events in this batch are stored already; "
            "a batch is appended whole or not at all"
        )
