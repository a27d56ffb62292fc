"""VersionManager through its ports, with the in-memory storage and log."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from autoopt.domain.errors import NotFoundError, StorageError
from autoopt.domain.events import VersionCreated, VersionRolledBack
from autoopt.domain.models import PromptVersion, Scores
from autoopt.domain.versions import VersionManager, prompt_stream
from autoopt.infrastructure.memory_event_log import InMemoryEventLog
from autoopt.infrastructure.storage import InMemoryVersionStorage
from tests.fakes import SequentialIds, SteppingClock

PROMPT = "wf-1/1711528915811/prompt_template/0/text"


def scores(overall: float) -> Scores:
    return Scores(overall=overall, clarity=overall, efficiency=overall)


@pytest.fixture
def parts() -> tuple[VersionManager, InMemoryVersionStorage, InMemoryEventLog]:
    storage = InMemoryVersionStorage()
    log = InMemoryEventLog()
    return VersionManager(storage, log, SteppingClock(), SequentialIds()), storage, log


def test_versions_are_numbered_and_recorded_in_the_prompt_stream(parts) -> None:
    manager, storage, log = parts
    first = manager.create_version(PROMPT, "v1 {{#sys.query#}}", kind="baseline", scores=scores(50))
    second = manager.create_version(
        PROMPT,
        "v2 {{#sys.query#}}",
        kind="optimized",
        scores=scores(70),
        strategy="clarity_focus",
        parent_version=1,
        run_id="run-1",
    )
    assert (first.version, second.version) == (1, 2)
    stream = log.read_stream(prompt_stream(PROMPT))
    assert [r.stream_version for r in stream] == [1, 2]
    created = stream[1].event
    assert isinstance(created, VersionCreated)
    assert (created.version, created.kind, created.strategy, created.parent_version) == (
        2,
        "optimized",
        "clarity_focus",
        1,
    )
    assert created.content_sha256 == storage.content_sha256(PROMPT, 2)
    assert created.correlation_id == "run-1"
    assert created.occurred_at == second.created_at


def test_rollback_is_a_new_version_with_the_old_text(parts) -> None:
    manager, _, log = parts
    manager.create_version(PROMPT, "good", kind="baseline", scores=scores(80))
    manager.create_version(PROMPT, "worse", kind="optimized", scores=scores(60))
    restored = manager.rollback(PROMPT, 1, reason="v2 confused users")
    assert (restored.version, restored.text, restored.kind, restored.parent_version) == (
        3,
        "good",
        "rollback",
        1,
    )
    assert manager.get_latest_version(PROMPT).text == "good"
    assert [v.text for v in manager.get_version_history(PROMPT)] == ["good", "worse", "good"]
    event = log.read_stream(prompt_stream(PROMPT))[-1].event
    assert isinstance(event, VersionRolledBack)
    assert (event.version, event.restored_version, event.previous_version, event.reason) == (
        3,
        1,
        2,
        "v2 confused users",
    )


def test_rollback_to_a_missing_version(parts) -> None:
    manager, _, log = parts
    manager.create_version(PROMPT, "only", kind="baseline")
    with pytest.raises(NotFoundError):
        manager.rollback(PROMPT, 7)
    assert log.stream_version(prompt_stream(PROMPT)) == 1


def test_a_rollback_kind_cannot_be_created_directly(parts) -> None:
    with pytest.raises(ValueError, match="rollback"):
        parts[0].create_version(PROMPT, "x", kind="rollback")


def test_history_is_newest_first_with_limit_and_offset(parts) -> None:
    manager = parts[0]
    for n in range(1, 6):
        manager.create_version(PROMPT, f"text {n}", kind="manual")
    assert [v.version for v in manager.get_version_history(PROMPT)] == [5, 4, 3, 2, 1]
    assert [v.version for v in manager.get_version_history(PROMPT, limit=2, offset=1)] == [4, 3]
    assert manager.get_version_history("unknown") == []


def test_compare_gives_score_deltas_and_a_unified_diff(parts) -> None:
    manager = parts[0]
    manager.create_version(PROMPT, "Summarize.\nBe brief.\n", kind="baseline", scores=scores(50))
    manager.create_version(
        PROMPT,
        "Summarize in 3 bullets.\nBe brief.\n",
        kind="optimized",
        scores=Scores(overall=72.5, clarity=80, efficiency=61.25),
    )
    comparison = manager.compare_versions(PROMPT, 1, 2)
    assert comparison.score_deltas == {"overall": 22.5, "clarity": 30.0, "efficiency": 11.25}
    assert comparison.diff == (
        f"--- {PROMPT}@1\n+++ {PROMPT}@2\n@@ -1,2 +1,2 @@\n"
        "-Summarize.\n+Summarize in 3 bullets.\n Be brief.\n"
    )


def test_compare_without_scores_has_no_deltas(parts) -> None:
    manager = parts[0]
    manager.create_version(PROMPT, "a", kind="manual")
    manager.create_version(PROMPT, "b", kind="manual")
    assert manager.compare_versions(PROMPT, 1, 2).score_deltas is None


def test_best_version_is_the_highest_score_newest_on_a_tie(parts) -> None:
    manager = parts[0]
    manager.create_version(PROMPT, "a", kind="baseline", scores=scores(60))
    manager.create_version(PROMPT, "b", kind="optimized", scores=scores(85))
    manager.create_version(PROMPT, "c", kind="optimized", scores=scores(85))
    manager.create_version(PROMPT, "d", kind="manual")
    assert manager.get_best_version(PROMPT).text == "c"
    with pytest.raises(NotFoundError):
        manager.get_best_version("unknown")


def test_a_file_written_before_a_crash_is_recorded_by_the_next_write(parts) -> None:
    manager, storage, log = parts
    manager.create_version(PROMPT, "one", kind="baseline")
    # A crash after the file and before the event leaves version 2 unknown to the log.
    orphan = PromptVersion(
        prompt_id=PROMPT,
        version=2,
        text="two",
        kind="optimized",
        created_at=datetime(2026, 2, 1, tzinfo=UTC),
        strategy="structure_focus",
    )
    storage.save_version(orphan)
    assert log.stream_version(prompt_stream(PROMPT)) == 1

    third = manager.create_version(PROMPT, "three", kind="manual")
    assert third.version == 3
    stream = log.read_stream(prompt_stream(PROMPT))
    assert [r.stream_version for r in stream] == [1, 2, 3]
    recovered = stream[1].event
    assert isinstance(recovered, VersionCreated)
    assert (recovered.version, recovered.strategy) == (2, "structure_focus")
    assert recovered.content_sha256 == storage.content_sha256(PROMPT, 2)


def test_reconcile_reports_what_it_recorded(parts) -> None:
    manager, storage, _ = parts
    assert manager.reconcile(PROMPT) == []
    storage.save_version(
        PromptVersion(
            prompt_id=PROMPT,
            version=1,
            text="x",
            kind="manual",
            created_at=datetime(2026, 2, 1, tzinfo=UTC),
        )
    )
    assert manager.reconcile(PROMPT) == [1]
    assert manager.reconcile(PROMPT) == []


def test_a_number_whose_file_was_removed_is_never_reused(parts) -> None:
    manager, storage, log = parts
    manager.create_version(PROMPT, "one", kind="baseline")
    manager.create_version(PROMPT, "two", kind="manual")
    storage.delete_version(PROMPT, 2)
    assert manager.create_version(PROMPT, "three", kind="manual").version == 3
    assert log.stream_version(prompt_stream(PROMPT)) == 3


def test_a_store_behind_the_log_is_refused_not_renumbered(parts) -> None:
    manager, _, log = parts
    manager.create_version(PROMPT, "one", kind="baseline")
    # A store that lost its files (no tombstones) must not hand out 1 again,
    # nor silently skip to 2 and hide the loss.
    other = VersionManager(InMemoryVersionStorage(), log, SteppingClock(), SequentialIds(1000))
    with pytest.raises(StorageError, match="the log has version 1 but the store ends at 0"):
        other.create_version(PROMPT, "next", kind="manual")
    assert log.stream_version(prompt_stream(PROMPT)) == 1


def test_prune_keeps_the_newest_the_latest_and_the_best(parts) -> None:
    manager, storage, log = parts
    for n, overall in enumerate([40, 95, 50, 60, 55, 45], start=1):
        manager.create_version(PROMPT, f"text {n}", kind="manual", scores=scores(overall))
    assert manager.prune(PROMPT, keep=2) == [1, 3, 4]
    assert storage.list_versions(PROMPT) == [2, 5, 6]
    assert storage.deleted_versions(PROMPT) == [1, 3, 4]
    assert log.stream_version(prompt_stream(PROMPT)) == 6  # the events stay
    assert manager.prune(PROMPT, keep=2) == []
    assert manager.create_version(PROMPT, "next", kind="manual").version == 7


def test_prune_keeps_at_least_one(parts) -> None:
    with pytest.raises(ValueError):
        parts[0].prune(PROMPT, keep=0)
