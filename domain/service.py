"""OptimizerService: one run of DESIGN section 3, every decision an event.

RunStarted, then PromptExtracted for every prompt, then per prompt: a version
for a text the store has not seen (``baseline`` the first time, ``manual``
when it changed outside autoopt), PromptAnalyzed with the baseline scores and
whether the prompt is taken up (and why), IterationCompleted for every round
with its decision and reason, and for an improved prompt an ``optimized`` version and
PatchEmitted. The patched document goes to the ``DocumentSink`` and
RunCompleted closes the run; any failure after RunStarted appends RunFailed
before it propagates. The run's own events form the stream ``run-<run_id>``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from autoopt.domain.analyzer import PromptAnalysis
from autoopt.domain.dsl import extract_prompts
from autoopt.domain.dsl_loading import DifyApp
from autoopt.domain.errors import ConfigurationError
from autoopt.domain.events import (
    DomainEvent,
    IterationCompleted,
    PatchEmitted,
    PromptAnalyzed,
    PromptExtracted,
    RunCompleted,
    RunFailed,
    RunStarted,
)
from autoopt.domain.models import OptimizationConfig, Prompt, PromptPatch, Scores
from autoopt.domain.optimizer import PromptOptimizer, PromptOutcome, Round
from autoopt.domain.patching import apply_patches
from autoopt.domain.ports import Clock, EventLog, IdFactory, WorkflowCatalog
from autoopt.domain.versions import VersionManager


class DocumentSink(Protocol):
    """Where the patched document goes; returns the SHA-256 of what it wrote."""

    def write(self, document: dict[str, Any]) -> str: ...

    @property
    def name(self) -> str: ...


@dataclass(frozen=True)
class PromptReport:
    prompt: Prompt
    outcome: PromptOutcome
    decision: str  # optimized | kept | skipped
    version: int | None
    versions_created: int = 0


@dataclass(frozen=True)
class RunReport:
    run_id: str
    workflow_id: str
    output: str | None
    prompts: list[PromptReport]

    @property
    def optimized(self) -> list[PromptReport]:
        return [p for p in self.prompts if p.decision == "optimized"]


Progress = Callable[[Prompt], None]


class OptimizerService:
    def __init__(
        self,
        log: EventLog,
        versions: VersionManager,
        optimizer: PromptOptimizer,
        clock: Clock,
        ids: IdFactory,
        catalog: WorkflowCatalog | None = None,
        defaults: OptimizationConfig | None = None,
    ) -> None:
        self._log = log
        self._versions = versions
        self._optimizer = optimizer
        self._clock = clock
        self._ids = ids
        self._catalog = catalog
        self._defaults = defaults or OptimizationConfig()

    def run_optimization_cycle(
        self,
        workflow_id: str,
        baseline_metrics: Mapping[str, PromptAnalysis] | None = None,
        strategy: str | None = None,
        config: OptimizationConfig | None = None,
        *,
        sink: DocumentSink | None = None,
        effective_config: dict[str, Any] | None = None,
        tool_version: str = "",
    ) -> RunReport:
        """The seed's entry point: optimize the catalog's app ``workflow_id``.

        ``strategy`` alone means that one strategy for one iteration;
        ``baseline_metrics`` (by prompt id) stand in for the analyzer's baseline.
        """
        if self._catalog is None:
            raise ConfigurationError("no workflow catalog is configured")
        app, text = self._catalog.load(workflow_id)
        if config is None:
            config = self._defaults
            if strategy is not None:
                config = config.model_copy(update={"strategies": (strategy,), "max_iterations": 1})
                config = OptimizationConfig.model_validate(config.model_dump())
        return self.run(
            app,
            text,
            config,
            effective_config=effective_config or {},
            tool_version=tool_version,
            sink=sink,
            baselines=baseline_metrics,
        )

    def run(
        self,
        app: DifyApp,
        dsl_text: str,
        config: OptimizationConfig,
        *,
        effective_config: dict[str, Any],
        tool_version: str,
        sink: DocumentSink | None,
        progress: Progress | None = None,
        baselines: Mapping[str, PromptAnalysis] | None = None,
    ) -> RunReport:
        run = _RunStream(self._log, str(self._ids.new_run_id()))
        started = RunStarted(
            **self._envelope(run.run_id),
            run_id=run.run_id,
            workflow_id=app.workflow_id,
            app_name=app.name,
            app_mode=app.mode,
            source_name=app.source,
            dsl_text=dsl_text,
            dsl_sha256=hashlib.sha256(dsl_text.encode("utf-8")).hexdigest(),
            config={
                **effective_config,
                "run": config.model_dump(mode="json"),
                # Replay needs to know whether LLM strategies could reach a model.
                "language_model": self._optimizer.has_language_model,
            },
            tool_version=tool_version,
        )
        run.append([started])
        try:
            return self._run(app, config, run, sink, progress, baselines or {})
        except Exception as exc:
            run.append(
                [
                    RunFailed(
                        **self._envelope(run.run_id),
                        run_id=run.run_id,
                        error_type=type(exc).__name__,
                        message=str(exc),
                    )
                ]
            )
            raise

    def _run(
        self,
        app: DifyApp,
        config: OptimizationConfig,
        run: _RunStream,
        sink: DocumentSink | None,
        progress: Progress | None,
        baselines: Mapping[str, PromptAnalysis],
    ) -> RunReport:
        prompts = extract_prompts(app)
        extracted = [self._extracted(run.run_id, p) for p in prompts]
        run.append(extracted)
        reports, patches = [], []
        for prompt, event in zip(prompts, extracted, strict=True):
            baseline = baselines.get(prompt.prompt_id) or self._optimizer.analyze(prompt)
            report, patch = self._optimize_one(prompt, baseline, config, run, str(event.event_id))
            reports.append(report)
            if patch is not None:
                patches.append(patch)
            if progress is not None:
                progress(prompt)
        document = apply_patches(app, patches).document if patches else app.document
        output_sha = sink.write(document) if sink is not None else None
        run.append(
            [
                RunCompleted(
                    **self._envelope(run.run_id),
                    run_id=run.run_id,
                    prompts_found=len(prompts),
                    prompts_optimized=len(patches),
                    versions_created=sum(r.versions_created for r in reports),
                    output_path=sink.name if sink is not None else None,
                    output_sha256=output_sha,
                )
            ]
        )
        return RunReport(run.run_id, app.workflow_id, sink.name if sink else None, reports)

    def _optimize_one(
        self,
        prompt: Prompt,
        baseline: PromptAnalysis,
        config: OptimizationConfig,
        run: _RunStream,
        cause: str,
    ) -> tuple[PromptReport, PromptPatch | None]:
        current, created = (
            (None, 0) if prompt.empty else self._record_current(prompt, baseline, run.run_id)
        )
        outcome = self._optimizer.optimize(prompt, config, baseline)
        run.append(
            [
                self._analyzed(run.run_id, prompt, outcome, cause),
                *(self._iteration(run.run_id, prompt, r, cause) for r in outcome.rounds),
            ]
        )
        if outcome.best is None:
            decision = "skipped" if outcome.skipped else "kept"
            return PromptReport(prompt, outcome, decision, None, created), None
        best = outcome.best
        # Optimizing the same text again finds the same candidate: reuse its version.
        version = self._versions.find_text(prompt.prompt_id, best.candidate_text)
        if version is None:
            created += 1
            version = self._versions.create_version(
                prompt.prompt_id,
                best.candidate_text,
                kind="optimized",
                scores=_scores(best.analysis),
                strategy=best.strategy,
                parent_version=current,
                run_id=run.run_id,
                causation_id=cause,
            )
        patch = PromptPatch(
            workflow_id=prompt.workflow_id,
            node_id=prompt.node_id,
            selector_type="by_path",
            selector_value=prompt.document_path,
            strategy="replace",
            content=best.candidate_text,
            metadata={"prompt_id": prompt.prompt_id, "version": version.version},
        )
        run.append(
            [
                PatchEmitted(
                    **self._envelope(run.run_id, cause),
                    run_id=run.run_id,
                    prompt_id=prompt.prompt_id,
                    patch=patch,
                    old_text=prompt.text,
                    new_text=best.candidate_text,
                    version=version.version,
                )
            ]
        )
        return PromptReport(prompt, outcome, "optimized", version.version, created), patch

    def _record_current(
        self, prompt: Prompt, baseline: PromptAnalysis, run_id: str
    ) -> tuple[int, int]:
        """The stored version holding the prompt's current text, and how many were made.

        A text the store holds already (an app re-run from its original export
        after an optimized version was made) is not a new version.
        """
        known = self._versions.find_text(prompt.prompt_id, prompt.text)
        if known is not None:
            return known.version, 0
        latest = self._versions.latest_or_none(prompt.prompt_id)
        version = self._versions.create_version(
            prompt.prompt_id,
            prompt.text,
            kind="baseline" if latest is None else "manual",
            scores=_scores(baseline),
            parent_version=latest.version if latest else None,
            run_id=run_id,
            note="" if latest is None else "changed outside autoopt",
        )
        return version.version, 1

    def _extracted(self, run_id: str, prompt: Prompt) -> PromptExtracted:
        return PromptExtracted(
            **self._envelope(run_id),
            run_id=run_id,
            prompt_id=prompt.prompt_id,
            workflow_id=prompt.workflow_id,
            node_id=prompt.node_id,
            node_title=prompt.node_title,
            node_type=prompt.node_type,
            field_path=prompt.field_path,
            role=prompt.role,
            edition=prompt.edition,
            text=prompt.text,
            variables=prompt.variables,
        )

    def _analyzed(
        self, run_id: str, prompt: Prompt, outcome: PromptOutcome, cause: str
    ) -> PromptAnalyzed:
        baseline = outcome.baseline
        return PromptAnalyzed(
            **self._envelope(run_id, cause),
            run_id=run_id,
            prompt_id=prompt.prompt_id,
            scores=_scores(baseline),
            issues=tuple(f"{i.type}:{i.severity}" for i in baseline.issues),
            decision="skip" if outcome.skipped else "optimize",
            reason=outcome.reason,
        )

    def _iteration(self, run_id: str, prompt: Prompt, r: Round, cause: str) -> IterationCompleted:
        return IterationCompleted(
            **self._envelope(run_id, cause),
            run_id=run_id,
            prompt_id=prompt.prompt_id,
            strategy=r.strategy,
            iteration=r.iteration,
            candidate_text=r.candidate_text,
            score_before=r.score_before,
            score_after=r.score_after,
            confidence=r.confidence,
            decision=r.decision,
            reason=r.reason,
            fallback=r.fallback_from is not None,
            fallback_from=r.fallback_from,
            fallback_error=r.fallback_error,
            llm_exchange=r.llm_exchange,
        )

    def _envelope(self, run_id: str, causation_id: str | None = None) -> dict[str, Any]:
        return {
            "event_id": self._ids.new_id(),
            "occurred_at": self._clock.now(),
            "correlation_id": run_id,
            "causation_id": causation_id,
        }


class _RunStream:
    """The run's stream, appended to in order with the expected version tracked."""

    def __init__(self, log: EventLog, run_id: str) -> None:
        self.log = log
        self.run_id = run_id
        self.version = 0

    def append(self, events: Sequence[DomainEvent]) -> None:
        if events:
            self.log.append(f"run-{self.run_id}", events, self.version)
            self.version += len(events)


def _scores(analysis: PromptAnalysis) -> Scores:
    return Scores(
        overall=analysis.overall_score,
        clarity=analysis.clarity_score,
        efficiency=analysis.efficiency_score,
    )
