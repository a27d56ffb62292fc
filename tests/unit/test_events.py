"""Domain events: frozen facts, a registry by name, and upcasting of old payloads."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from autoopt.domain.errors import EventSchemaError
from autoopt.domain.events import (
    DomainEvent,
    IterationCompleted,
    PatchEmitted,
    VersionCreated,
    event_class,
    register_upcaster,
    upcast,
)
from autoopt.domain.models import PromptPatch, Scores
from tests.factories import at, run_started

# A payload exactly as the seed tool's IterationCompleted (schema v1) stored it.
V1_ITERATION_PAYLOAD = {
    "run_id": "run-7",
    "prompt_id": "wf/1711528915811/prompt_template/0/text",
    "strategy": "clarity_focus",
    "iteration": 2,
    "candidate": "Summarize {{#sys.query#}} in three bullet points.",
    "score_before": 52.0,
    "score_after": 71.5,
    "confidence": 0.74,
    "accepted": True,
}


def test_the_eight_events_are_registered_by_name() -> None:
    names = {
        "RunStarted",
        "PromptExtracted",
        "IterationCompleted",
        "VersionCreated",
        "PatchEmitted",
        "RunCompleted",
        "RunFailed",
        "VersionRolledBack",
    }
    assert names <= set(DomainEvent.registry)
    for name in names:
        assert event_class(name).__name__ == name


def test_events_are_frozen() -> None:
    event = run_started()
    with pytest.raises(ValidationError):
        event.run_id = "other"  # type: ignore[misc]


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError):
        run_started().model_validate({**run_started().model_dump(), "surprise": 1})


def test_occurred_at_must_carry_a_zone_and_is_kept_in_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    event = run_started().model_copy()
    fields = {**event.model_dump(), "occurred_at": datetime(2026, 1, 1, 12, tzinfo=plus_two)}
    assert type(event).model_validate(fields).occurred_at.utcoffset() == timedelta(0)
    with pytest.raises(ValidationError):
        type(event).model_validate({**fields, "occurred_at": datetime(2026, 1, 1, 12)})


def test_payload_leaves_out_the_envelope() -> None:
    payload = run_started().payload()
    assert "event_id" not in payload and "occurred_at" not in payload
    assert payload["run_id"] == "run-1"


def test_version_created_and_patch_emitted_carry_their_value_objects() -> None:
    version = VersionCreated(
        event_id=uuid.uuid4(),
        occurred_at=at(1),
        prompt_id="p",
        version=2,
        kind="optimized",
        content_sha256="a" * 64,
        scores=Scores(overall=80, clarity=75, efficiency=87.5),
        strategy="clarity_focus",
        parent_version=1,
    )
    assert version.payload()["scores"] == {"overall": 80.0, "clarity": 75.0, "efficiency": 87.5}
    with pytest.raises(ValidationError):
        VersionCreated.model_validate({**version.model_dump(), "kind": "guess"})
    patch = PatchEmitted(
        event_id=uuid.uuid4(),
        occurred_at=at(2),
        run_id="r",
        prompt_id="Demo/1/prompt_template/0/text",
        patch=PromptPatch(
            workflow_id="Demo", node_id="1", selector_value="/prompt_template/0/text", content="b"
        ),
        old_text="a",
        new_text="b",
        version=2,
    )
    assert patch.payload()["patch"]["selector_type"] == "by_id"
    assert patch.payload()["new_text"] == "b"


def test_a_v1_iteration_payload_is_upcast_to_the_current_schema() -> None:
    assert IterationCompleted.current_schema_version() == 2
    payload = upcast("IterationCompleted", 1, dict(V1_ITERATION_PAYLOAD))
    event = IterationCompleted.model_validate(
        {**payload, "event_id": uuid.uuid4(), "occurred_at": at(3)}
    )
    assert event.decision == "accepted"
    assert event.candidate_text == V1_ITERATION_PAYLOAD["candidate"]
    assert event.fallback is False
    assert event.reason


def test_a_rejected_v1_iteration_becomes_a_rejected_decision() -> None:
    payload = upcast("IterationCompleted", 1, {**V1_ITERATION_PAYLOAD, "accepted": False})
    assert payload["decision"] == "rejected"


def test_a_current_payload_passes_through_unchanged() -> None:
    payload = run_started().payload()
    assert upcast("RunStarted", 1, dict(payload)) == payload


def test_a_payload_newer_than_the_code_is_refused() -> None:
    with pytest.raises(EventSchemaError, match="newer than this code knows"):
        upcast("RunStarted", 2, {})


def test_an_unknown_event_type_is_refused() -> None:
    with pytest.raises(EventSchemaError, match="unknown event type 'Nope'"):
        upcast("Nope", 1, {})


def test_an_upcaster_cannot_be_registered_twice() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_upcaster("IterationCompleted", 1)(lambda payload: payload)
