"""Comparing replayed events with recorded ones: the first divergence, named exactly.

Proves: equal sequences have no divergence; the payload is compared before the
envelope (a changed score is reported, not the id that follows from it);
nested fields are named by their dotted path; a different event type, a
shorter replay and a longer replay are each reported at the right place.
"""

from __future__ import annotations

from autoopt.domain.events import DomainEvent
from autoopt.domain.ports import RecordedEvent
from autoopt.domain.replay import first_divergence
from tests.factories import prompt_extracted, run_failed, run_started


def recorded(events: list[DomainEvent], start: int = 10) -> list[RecordedEvent]:
    return [RecordedEvent(start + i, "run-run-1", i + 1, event) for i, event in enumerate(events)]


def test_equal_sequences_do_not_diverge() -> None:
    events: list[DomainEvent] = [run_started(), prompt_extracted()]
    assert first_divergence(recorded(events), events) is None


def test_a_payload_difference_is_named_before_the_envelope() -> None:
    original = prompt_extracted(text="Summarize it")
    changed = original.model_copy(
        update={"text": "Summarise it", "event_id": run_started().event_id}
    )
    started = run_started()
    divergence = first_divergence(recorded([started, original]), [started, changed])
    assert divergence is not None
    assert divergence.describe() == (
        f"diverged at position 11 (PromptExtracted, prompt {original.prompt_id}): "
        "text: recorded 'Summarize it', replayed 'Summarise it'"
    )


def test_an_envelope_difference_is_reported_when_the_payload_agrees() -> None:
    original = run_started()
    moved = original.model_copy(update={"event_id": prompt_extracted().event_id})
    divergence = first_divergence(recorded([original]), [moved])
    assert divergence is not None
    assert divergence.detail.startswith("event_id: recorded ")


def test_a_nested_field_is_named_by_its_path() -> None:
    original = run_started()
    changed = original.model_copy(update={"config": {"optimization": {"max_iterations": 1}}})
    divergence = first_divergence(recorded([original]), [changed])
    assert divergence is not None
    assert divergence.detail == "config.optimization.max_iterations: recorded 3, replayed 1"


def test_another_event_type_a_short_and_a_long_replay() -> None:
    started, extracted, failed = run_started(), prompt_extracted(), run_failed()
    log = recorded([started, extracted])

    other = first_divergence(log, [started, failed])
    assert other is not None
    assert (other.position, other.event_type, other.detail) == (
        11,
        "PromptExtracted",
        "the replay made RunFailed here",
    )

    short = first_divergence(log, [started])
    assert short is not None
    assert (short.position, short.detail) == (11, "the replay ended after 1 events; the log has 2")

    long = first_divergence(log, [started, extracted, failed])
    assert long is not None
    assert long.position is None
    assert long.describe() == (
        "diverged at the end of the run (RunFailed): the log has 2 events; the replay made more"
    )
