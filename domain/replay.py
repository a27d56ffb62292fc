"""Comparing a replayed run with the recorded one: the first divergence, and decisions.

A replay re-runs a recorded run and produces its events again. The run is
reproduced when every event matches its recorded twin field by field, the
envelope included (the replay takes ids and times from the record, so they
match too when nothing before them diverged). ``first_divergence`` names the
first event that does not, and the first field in it.

``prompt_decisions`` condenses a run's events into one decision per prompt,
which is what a what-if replay compares: a prompt was ``optimized`` (with the
score and strategy of the winning candidate), ``kept`` (tried, nothing
accepted) or ``skipped`` (not taken up, with the reason).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from autoopt.domain.events import (
    DomainEvent,
    IterationCompleted,
    PatchEmitted,
    PromptAnalyzed,
    PromptExtracted,
)
from autoopt.domain.ports import RecordedEvent

_VALUE_WIDTH = 70


@dataclass(frozen=True)
class Divergence:
    """Where a replay first differs from the record.

    ``position`` is the recorded event's place in the log, or None when the
    replay made more events than the log holds.
    """

    index: int
    position: int | None
    event_type: str
    context: str
    detail: str

    def describe(self) -> str:
        where = f"position {self.position}" if self.position is not None else "the end of the run"
        context = f", {self.context}" if self.context else ""
        return f"diverged at {where} ({self.event_type}{context}): {self.detail}"


def first_divergence(
    recorded: Sequence[RecordedEvent], replayed: Sequence[DomainEvent]
) -> Divergence | None:
    for index, (record, event) in enumerate(zip(recorded, replayed, strict=False)):
        expected = record.event
        if expected.event_type != event.event_type:
            return Divergence(
                index,
                record.position,
                expected.event_type,
                _context(expected),
                f"the replay made {event.event_type} here",
            )
        # The payload first: a differing id or time only matters when the decisions agree.
        difference = _first_difference(expected.payload(), event.payload()) or _first_difference(
            expected.model_dump(mode="json"), event.model_dump(mode="json")
        )
        if difference is not None:
            path, was, now = difference
            return Divergence(
                index,
                record.position,
                expected.event_type,
                _context(expected),
                f"{path}: recorded {_show(was)}, replayed {_show(now)}",
            )
    if len(recorded) > len(replayed):
        record = recorded[len(replayed)]
        return Divergence(
            len(replayed),
            record.position,
            record.event.event_type,
            _context(record.event),
            f"the replay ended after {len(replayed)} events; the log has {len(recorded)}",
        )
    if len(replayed) > len(recorded):
        extra = replayed[len(recorded)]
        return Divergence(
            len(recorded),
            None,
            extra.event_type,
            _context(extra),
            f"the log has {len(recorded)} events; the replay made more",
        )
    return None


@dataclass(frozen=True)
class PromptDecision:
    prompt_id: str
    node: str
    field_path: str
    decision: str  # optimized | kept | skipped
    baseline: float | None
    score: float | None = None
    strategy: str | None = None
    reason: str = ""

    def describe(self) -> str:
        base = f"{self.baseline:.1f}" if self.baseline is not None else "?"
        if self.decision == "optimized":
            score = f"{self.score:.1f}" if self.score is not None else "?"
            return f"optimized {base} -> {score} ({self.strategy})"
        if self.decision == "skipped":
            return f"skipped {base} ({self.reason})"
        return f"kept {base}"

    def same_as(self, other: PromptDecision) -> bool:
        return (self.decision, self.score, self.strategy) == (
            other.decision,
            other.score,
            other.strategy,
        )


def prompt_decisions(events: Sequence[DomainEvent]) -> dict[str, PromptDecision]:
    """One decision per prompt of a run, in document order."""
    extracted = [e for e in events if isinstance(e, PromptExtracted)]
    analyzed = {e.prompt_id: e for e in events if isinstance(e, PromptAnalyzed)}
    patches = {e.prompt_id: e for e in events if isinstance(e, PatchEmitted)}
    accepted: dict[str, list[IterationCompleted]] = {}
    for e in events:
        if isinstance(e, IterationCompleted) and e.decision == "accepted":
            accepted.setdefault(e.prompt_id, []).append(e)
    decisions = {}
    for prompt in extracted:
        pid = prompt.prompt_id
        verdict = analyzed.get(pid)
        node = prompt.node_title or prompt.node_id or "app"
        baseline = verdict.scores.overall if verdict else None
        patch = patches.get(pid)
        if patch is not None:
            winner = next(
                (r for r in accepted.get(pid, []) if r.candidate_text == patch.new_text), None
            )
            decisions[pid] = PromptDecision(
                pid,
                node,
                prompt.field_path,
                "optimized",
                baseline,
                score=winner.score_after if winner else None,
                strategy=_strategy(winner) if winner else None,
            )
        elif verdict is not None and verdict.decision == "skip":
            decisions[pid] = PromptDecision(
                pid, node, prompt.field_path, "skipped", baseline, reason=verdict.reason
            )
        else:
            decisions[pid] = PromptDecision(pid, node, prompt.field_path, "kept", baseline)
    return decisions


def _strategy(event: IterationCompleted) -> str:
    return f"{event.fallback_from}->{event.strategy}" if event.fallback_from else event.strategy


def _context(event: DomainEvent) -> str:
    parts = []
    prompt_id = getattr(event, "prompt_id", None)
    if prompt_id is not None:
        parts.append(f"prompt {prompt_id}")
    if isinstance(event, IterationCompleted):
        parts.append(f"{_strategy(event)} round {event.iteration}")
    version = getattr(event, "version", None)
    if isinstance(version, int):
        parts.append(f"version {version}")
    return ", ".join(parts)


def _first_difference(was: Any, now: Any, path: str = "") -> tuple[str, Any, Any] | None:
    """The first differing leaf of two JSON documents, as a dotted path."""
    if isinstance(was, dict) and isinstance(now, dict):
        for key in [*was, *(k for k in now if k not in was)]:
            found = _first_difference(was.get(key), now.get(key), f"{path}.{key}" if path else key)
            if found is not None:
                return found
        return None
    if isinstance(was, list) and isinstance(now, list) and len(was) == len(now):
        for i, (a, b) in enumerate(zip(was, now, strict=True)):
            found = _first_difference(a, b, f"{path}[{i}]")
            if found is not None:
                return found
        return None
    return None if was == now else (path or "event", was, now)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _VALUE_WIDTH else text[: _VALUE_WIDTH - 3] + "..."
