"""Domain events: facts about a run, named in the past tense.

An event is a frozen pydantic model made of an envelope (``event_id``,
``occurred_at``, ``correlation_id``, ``causation_id``, ``schema_version``) and a
payload (every other field). Ids and times are given by the caller, who takes
them from the ``IdFactory`` and ``Clock`` ports, so the domain never reads the
wall clock and a run can be replayed exactly.

Events are never renamed or reshaped in place. A new shape gets a new
``schema_version`` and an upcaster that turns the stored payload of the old
version into the new one on read (see :func:`upcast`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from autoopt.domain.errors import EventSchemaError
from autoopt.domain.models import LLMExchange, PromptPatch, Scores

ENVELOPE_FIELDS = frozenset(
    {"event_id", "occurred_at", "correlation_id", "causation_id", "schema_version"}
)

Payload = dict[str, Any]
Upcaster = Callable[[Payload], Payload]
_SCHEMA_VERSIONS: dict[type, int] = {}


class DomainEvent(BaseModel):
    """Base of every event; subclasses add the payload fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    registry: ClassVar[dict[str, type[DomainEvent]]] = {}

    event_id: UUID
    occurred_at: AwareDatetime
    correlation_id: str | None = None
    causation_id: str | None = None
    schema_version: int = 1

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        DomainEvent.registry[cls.__name__] = cls

    @field_validator("occurred_at")
    @classmethod
    def _in_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @property
    def event_type(self) -> str:
        return type(self).__name__

    @classmethod
    def current_schema_version(cls) -> int:
        # Read once per class: reading the log asks for every event it decodes.
        known = _SCHEMA_VERSIONS.get(cls)
        if known is None:
            default = cls.model_fields["schema_version"].default
            assert isinstance(default, int)
            known = _SCHEMA_VERSIONS[cls] = default
        return known

    def payload(self) -> Payload:
        """The JSON-ready payload, without the envelope."""
        return self.model_dump(mode="json", exclude=set(ENVELOPE_FIELDS))


class RunStarted(DomainEvent):
    run_id: str
    workflow_id: str
    app_name: str
    app_mode: str
    source_name: str
    dsl_text: str
    dsl_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    config: dict[str, Any]
    tool_version: str


class PromptExtracted(DomainEvent):
    run_id: str
    prompt_id: str
    workflow_id: str
    node_id: str | None
    node_title: str | None
    node_type: str
    field_path: str
    role: str | None = None
    edition: Literal["basic", "jinja2"] = "basic"
    text: str
    variables: tuple[str, ...] = ()


class PromptAnalyzed(DomainEvent):
    """The analyzer's verdict on one prompt before any rewriting.

    The baseline scores and issues (``type:severity``), and whether the run
    takes the prompt up: ``optimize``, or ``skip`` with the reason (empty, no
    prose, at or above the threshold).
    """

    run_id: str
    prompt_id: str
    scores: Scores
    issues: tuple[str, ...] = ()
    decision: Literal["optimize", "skip"]
    reason: str


class IterationCompleted(DomainEvent):
    """One round of one strategy on one prompt, and the gate's verdict.

    Schema history: v1 (the shape the seed tool recorded) had ``candidate`` and
    a boolean ``accepted`` and no fallback information; v2 names the candidate
    text, states the decision with its reason, and records fallbacks.
    """

    schema_version: int = 2

    run_id: str
    prompt_id: str
    strategy: str
    iteration: int = Field(ge=1)
    candidate_text: str
    score_before: float
    score_after: float
    confidence: float = Field(ge=0, le=1)
    decision: Literal["accepted", "rejected"]
    reason: str
    fallback: bool = False
    fallback_from: str | None = None
    fallback_error: str | None = None
    llm_exchange: LLMExchange | None = None


class VersionCreated(DomainEvent):
    prompt_id: str
    version: int = Field(ge=1)
    kind: Literal["baseline", "optimized", "manual", "rollback"]
    content_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    scores: Scores | None = None
    strategy: str | None = None
    parent_version: int | None = Field(default=None, ge=1)
    run_id: str | None = None


class PatchEmitted(DomainEvent):
    run_id: str
    prompt_id: str
    patch: PromptPatch
    old_text: str
    new_text: str
    version: int | None = Field(default=None, ge=1)


class RunCompleted(DomainEvent):
    run_id: str
    prompts_found: int = Field(ge=0)
    prompts_optimized: int = Field(ge=0)
    versions_created: int = Field(ge=0)
    output_path: str | None = None
    output_sha256: str | None = None


class RunFailed(DomainEvent):
    run_id: str
    error_type: str
    message: str


class VersionRolledBack(DomainEvent):
    """A prompt was set back to an earlier text; the result is a new version."""

    prompt_id: str
    version: int = Field(ge=1)
    restored_version: int = Field(ge=1)
    previous_version: int = Field(ge=1)
    content_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    reason: str = ""


# (event type, stored schema version) -> function giving the payload one version up.
_UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def register_upcaster(event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    def decorate(upcaster: Upcaster) -> Upcaster:
        key = (event_type, from_version)
        if key in _UPCASTERS:
            raise ValueError(f"an upcaster for {event_type} v{from_version} is already registered")
        _UPCASTERS[key] = upcaster
        return upcaster

    return decorate


def upcast(event_type: str, schema_version: int, payload: Payload) -> Payload:
    """Bring a stored payload up to the current schema of its event type."""
    cls = event_class(event_type)
    target = cls.current_schema_version()
    if schema_version > target:
        raise EventSchemaError(
            f"{event_type} has schema version {schema_version}, newer than this "
            f"code knows ({target}); upgrade autoopt"
        )
    version = schema_version
    while version < target:
        step = _UPCASTERS.get((event_type, version))
        if step is None:
            raise EventSchemaError(f"no upcaster for {event_type} from schema version {version}")
        payload = step(dict(payload))
        version += 1
    return payload


def event_class(event_type: str) -> type[DomainEvent]:
    try:
        return DomainEvent.registry[event_type]
    except KeyError:
        raise EventSchemaError(f"unknown event type {event_type!r}") from None


@register_upcaster("IterationCompleted", 1)
def _iteration_completed_v1_to_v2(payload: Payload) -> Payload:
    accepted = bool(payload.pop("accepted"))
    payload["candidate_text"] = payload.pop("candidate")
    payload["decision"] = "accepted" if accepted else "rejected"
    payload.setdefault("reason", "recorded before reasons were kept")
    payload.setdefault("fallback", False)
    return payload
