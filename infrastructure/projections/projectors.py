"""Projectors: how each event becomes rows of one reporting table.

A projector names its table and the event types it reads; every other event
type passes it by (its checkpoint still moves past it). Rows go through the
batch's ``RowWriter`` in the runner's transaction, together with the
checkpoint, so an event is applied exactly once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table

from autoopt.domain.events import (
    DomainEvent,
    IterationCompleted,
    PatchEmitted,
    PromptAnalyzed,
    PromptExtracted,
    RunCompleted,
    RunFailed,
    RunStarted,
    VersionCreated,
    VersionRolledBack,
)
from autoopt.domain.ports import RecordedEvent
from autoopt.infrastructure.projections import tables
from autoopt.infrastructure.projections.row_writer import RowWriter

Apply = Callable[[RowWriter, RecordedEvent], None]


@dataclass(frozen=True)
class Projector:
    name: str
    table: Table
    handlers: dict[type[DomainEvent], Apply]  # the runner calls these by the event's exact type


def _run_started(w: RowWriter, record: RecordedEvent) -> None:
    e = record.event
    assert isinstance(e, RunStarted)
    w.insert(
        tables.runs,
        dict(
            run_id=e.run_id,
            workflow_id=e.workflow_id,
            app_name=e.app_name,
            app_mode=e.app_mode,
            source_name=e.source_name,
            dsl_sha256=e.dsl_sha256,
            tool_version=e.tool_version,
            status="running",
            started_at=e.occurred_at,
            **_settings(e.config),
        ),
    )


def _settings(config: dict[str, Any]) -> dict[str, Any]:
    """The columns a run's recorded config gives; a key it lacks stays NULL."""
    run = config.get("run") or {}
    llm = config.get("llm") or {}
    strategies = run.get("strategies")
    return {
        "strategies": ",".join(strategies) if isinstance(strategies, list) else None,
        "score_threshold": run.get("score_threshold"),
        "min_confidence": run.get("min_confidence"),
        "max_iterations": run.get("max_iterations"),
        "language_model": llm.get("model") if config.get("language_model") else None,
    }


def _run_completed(w: RowWriter, record: RecordedEvent) -> None:
    e = record.event
    assert isinstance(e, RunCompleted)
    _finish(
        w,
        e.run_id,
        status="completed",
        finished_at=e.occurred_at,
        prompts_found=e.prompts_found,
        prompts_optimized=e.prompts_optimized,
        versions_created=e.versions_created,
        output_path=e.output_path,
        output_sha256=e.output_sha256,
    )


def _run_failed(w: RowWriter, record: RecordedEvent) -> None:
    e = record.event
    assert isinstance(e, RunFailed)
    _finish(
        w,
        e.run_id,
        status="failed",
        finished_at=e.occurred_at,
        error_type=e.error_type,
        error_message=e.message,
    )


def _finish(w: RowWriter, run_id: str, **values: Any) -> None:
    w.update(tables.runs, {"run_id": run_id}, values, f"run {run_id} has no RunStarted before it")


def _prompt_extracted(w: RowWriter, record: RecordedEvent) -> None:
    e = record.event
    assert isinstance(e, PromptExtracted)
    w.insert(
        tables.prompts,
        dict(
            run_id=e.run_id,
            prompt_id=e.prompt_id,
            node_id=e.node_id,
            node_title=e.node_title,
            node_type=e.node_type,
            field_path=e.field_path,
            role=e.role,
            edition=e.edition,
            characters=len(e.text),
            variables=len(e.variables),
            position=record.position,
        ),
    )


def _prompt_analyzed(w: RowWriter, record: RecordedEvent) -> None:
    e = record.event
    assert isinstance(e, PromptAnalyzed)
    w.update(
        tables.prompts,
        {"run_id": e.run_id, "prompt_id": e.prompt_id},
        dict(
            baseline_overall=e.scores.overall,
            baseline_clarity=e.scores.clarity,
            baseline_efficiency=e.scores.efficiency,
            issues=",".join(e.issues),
            triage=e.decision,
            triage_reason=e.reason,
        ),
        f"prompt {e.prompt_id} of run {e.run_id} has no PromptExtracted",
    )


def _iteration(w: RowWriter, record: RecordedEvent) -> None:
    e = record.event
    assert isinstance(e, IterationCompleted)
    w.insert(
        tables.iterations,
        dict(
            position=record.position,
            run_id=e.run_id,
            prompt_id=e.prompt_id,
            strategy=e.strategy,
            iteration=e.iteration,
            score_before=e.score_before,
            score_after=e.score_after,
            confidence=e.confidence,
            decision=e.decision,
            reason=e.reason,
            fallback=e.fallback,
            fallback_from=e.fallback_from,
            fallback_error=e.fallback_error,
            occurred_at=e.occurred_at,
        ),
    )


def _llm_call(w: RowWriter, record: RecordedEvent) -> None:
    e = record.event
    assert isinstance(e, IterationCompleted)
    x = e.llm_exchange
    if x is None:
        return
    w.insert(
        tables.llm_calls,
        dict(
            position=record.position,
            run_id=e.run_id,
            prompt_id=e.prompt_id,
            strategy=e.fallback_from or e.strategy,
            model=x.model,
            base_url=x.base_url,
            request_sha256=x.request_sha256,
            template_version=x.template_version,
            prompt_tokens=x.prompt_tokens,
            completion_tokens=x.completion_tokens,
            cost_usd=x.cost_usd,
            cached=x.cached,
            latency_ms=x.latency_ms,
            error=x.error,
            occurred_at=e.occurred_at,
        ),
    )


def _version_created(w: RowWriter, record: RecordedEvent) -> None:
    e = record.event
    assert isinstance(e, VersionCreated)
    scores = e.scores
    w.insert(
        tables.versions,
        dict(
            prompt_id=e.prompt_id,
            version=e.version,
            kind=e.kind,
            content_sha256=e.content_sha256,
            overall=scores.overall if scores else None,
            clarity=scores.clarity if scores else None,
            efficiency=scores.efficiency if scores else None,
            strategy=e.strategy,
            parent_version=e.parent_version,
            restored_version=None,
            run_id=e.run_id,
            created_at=e.occurred_at,
            position=record.position,
        ),
    )


def _version_rolled_back(w: RowWriter, record: RecordedEvent) -> None:
    e = record.event
    assert isinstance(e, VersionRolledBack)
    w.insert(
        tables.versions,
        dict(
            prompt_id=e.prompt_id,
            version=e.version,
            kind="rollback",
            content_sha256=e.content_sha256,
            parent_version=e.previous_version,
            restored_version=e.restored_version,
            created_at=e.occurred_at,
            position=record.position,
        ),
    )


def _patch(w: RowWriter, record: RecordedEvent) -> None:
    e = record.event
    assert isinstance(e, PatchEmitted)
    w.insert(
        tables.patches,
        dict(
            position=record.position,
            run_id=e.run_id,
            prompt_id=e.prompt_id,
            version=e.version,
            document_path=e.patch.selector_value,
            old_text=e.old_text,
            new_text=e.new_text,
        ),
    )


PROJECTORS: tuple[Projector, ...] = (
    Projector(
        "runs",
        tables.runs,
        {RunStarted: _run_started, RunCompleted: _run_completed, RunFailed: _run_failed},
    ),
    Projector(
        "prompts",
        tables.prompts,
        {PromptExtracted: _prompt_extracted, PromptAnalyzed: _prompt_analyzed},
    ),
    Projector("iterations", tables.iterations, {IterationCompleted: _iteration}),
    Projector(
        "versions",
        tables.versions,
        {VersionCreated: _version_created, VersionRolledBack: _version_rolled_back},
    ),
    Projector("patches", tables.patches, {PatchEmitted: _patch}),
    Projector("llm_calls", tables.llm_calls, {IterationCompleted: _llm_call}),
)
