"""Synthetic runs for the projection benchmark: the events a run writes, in log order.

Whole runs of 50 events, shaped as ``OptimizerService`` writes them: RunStarted
(a 15 KB DSL, the corpus median), six PromptExtracted, per prompt a
VersionCreated on ``prompt-<id>``, PromptAnalyzed (if the type exists) and four
IterationCompleted (two with an ``LLMExchange``), for three of the six an
optimized VersionCreated and PatchEmitted, and RunCompleted. Runs cycle over 40
apps, so prompt streams grow long. Event ids are the time-ordered ones autoopt
gives its events; run ids are random, as autoopt's.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from autoopt.domain.events import (
    DomainEvent,
    IterationCompleted,
    PatchEmitted,
    PromptExtracted,
    RunCompleted,
    RunStarted,
    VersionCreated,
)
from autoopt.domain.models import ChatMessage, LLMExchange, PromptPatch, Scores
from autoopt.infrastructure.clock import TimeOrderedIds

EVENTS_PER_RUN = 50
PROMPTS_PER_RUN, IMPROVED_PER_RUN, APPS = 6, 3, 40
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
# Looked up rather than imported: the event type is new, and the benchmark
# should keep running on a tree that does not have it yet.
ANALYZED = DomainEvent.registry.get("PromptAnalyzed")
PROMPT_TEXT = (
    "You are a support assistant for {{#sys.query#}}. Answer in the user's language, in"
    " at most five sentences, and cite the knowledge base entry you used. "
) * 4  # ~600 characters, about the corpus average for an extracted prompt
DSL_BLOCK = (
    "  - data:\n      type: llm\n      title: LLM\n      model: {provider: openai, name: gpt-4o}\n"
    "      prompt_template:\n      - role: system\n        text: 'Summarize the query.'\n"
)
DSL_TEXT = "app:\n  mode: workflow\nworkflow:\n  graph:\n    nodes:\n" + DSL_BLOCK * 85  # ~15 KB
DSL_SHA = hashlib.sha256(DSL_TEXT.encode()).hexdigest()
CONFIG = {  # the shape OptimizerService records: effective settings, the run's config
    "optimization": {"strategies": ["clarity_focus", "llm_clarity"], "max_iterations": 2},
    "llm": {"provider": "openai", "model": "gpt-4o-mini", "timeout_s": 60},
    "database": {"url": "sqlite:///./data/optimizer/autoopt.db", "sqlite_synchronous": "FULL"},
    "run": {"strategies": ["clarity_focus", "llm_clarity"], "score_threshold": 80.0},
    "language_model": True,
}

# One answer for every LLM round: its size matters here, not its content.
EXCHANGE = LLMExchange(
    provider="openai",
    model="gpt-4o-mini",
    base_url="https://api.openai.com/v1",
    messages=(
        ChatMessage(role="system", content="Rewrite the prompt for clarity. " * 25),
        ChatMessage(role="user", content=PROMPT_TEXT),
    ),
    parameters={"temperature": 0.2, "max_tokens": 1024},
    template_version="llm_clarity/3",
    request_sha256=hashlib.sha256(PROMPT_TEXT.encode()).hexdigest(),
    response_text=PROMPT_TEXT.upper(),
    prompt_tokens=412,
    completion_tokens=160,
    cost_usd=0.000158,
    latency_ms=1840.5,
)

RUN = {"app_mode": "workflow", "dsl_text": DSL_TEXT, "dsl_sha256": DSL_SHA, "config": CONFIG}
NODE = {"node_title": "LLM", "node_type": "llm", "field_path": "/prompt_template/0/text"}
TRIAGE = {
    "scores": Scores(overall=61.0, clarity=66.5, efficiency=58.0),
    "issues": ("vague_language:warning",),
    "decision": "optimize",
    "reason": "overall 61.0 is below the threshold 80.0",
}

Append = tuple[str, list[DomainEvent]]  # stream_id, events


@dataclass
class Builder:
    """Makes runs' events in log order, grouped into the appends that write them."""

    tick: int = 0  # times advance by a millisecond per event
    ids: TimeOrderedIds = field(default_factory=TimeOrderedIds)
    versions: dict[str, int] = field(default_factory=dict)  # prompt_id -> latest version
    appends: list[Append] = field(default_factory=list)

    def put(self, stream: str, cls: type[Any], cause: DomainEvent | None, **fields: Any) -> Any:
        self.tick += 1
        event = cls(
            event_id=self.ids.new_id(),
            occurred_at=EPOCH + timedelta(milliseconds=self.tick),
            correlation_id=fields.get("run_id"),
            causation_id=str(cause.event_id) if cause else None,
            **fields,
        )
        # Consecutive events of one stream go in one append, as the service batches them.
        if self.appends and self.appends[-1][0] == stream:
            self.appends[-1][1].append(event)
        else:
            self.appends.append((stream, [event]))
        return event

    def version(self, run_id: str, prompt: PromptExtracted, optimized: bool) -> int:
        number = self.versions[prompt.prompt_id] = self.versions.get(prompt.prompt_id, 0) + 1
        self.put(
            f"prompt-{prompt.prompt_id}",
            VersionCreated,
            prompt,
            run_id=run_id,
            prompt_id=prompt.prompt_id,
            version=number,
            kind="optimized" if optimized else "manual" if number > 1 else "baseline",
            content_sha256=hashlib.sha256(f"{prompt.prompt_id}/{number}".encode()).hexdigest(),
            scores=Scores(overall=62.5 + number % 30, clarity=70.0, efficiency=55.25),
            strategy="llm_clarity" if optimized else None,
            parent_version=number - 1 or None,
        )
        return number

    def run(self, n: int) -> None:
        run_id, app = str(uuid.uuid4()), n % APPS
        workflow_id, stream = f"wf-{app:03d}", f"run-{run_id}"
        started = self.put(
            stream,
            RunStarted,
            None,
            run_id=run_id,
            workflow_id=workflow_id,
            app_name=f"App {app}",
            source_name=f"app-{app}.yml",
            tool_version="0.1.0",
            **RUN,
        )
        prompts: list[PromptExtracted] = [
            self.put(
                stream,
                PromptExtracted,
                started,
                run_id=run_id,
                prompt_id=f"{workflow_id}/node-{p}/prompt_template/0/text",
                workflow_id=workflow_id,
                node_id=f"node-{p}",
                role="system",
                **NODE,
                text=f"{PROMPT_TEXT}({p})",
                variables=("sys.query",),
            )
            for p in range(PROMPTS_PER_RUN)
        ]
        for p, prompt in enumerate(prompts):
            self.prompt(run_id, stream, prompt, improved=p < IMPROVED_PER_RUN)
        self.put(
            stream,
            RunCompleted,
            started,
            run_id=run_id,
            prompts_found=PROMPTS_PER_RUN,
            prompts_optimized=IMPROVED_PER_RUN,
            versions_created=PROMPTS_PER_RUN + IMPROVED_PER_RUN,
            output_path=f"app-{app}.optimized.yml",
            output_sha256=hashlib.sha256(run_id.encode()).hexdigest(),
        )

    def prompt(self, run_id: str, stream: str, prompt: PromptExtracted, improved: bool) -> None:
        ids = {"run_id": run_id, "prompt_id": prompt.prompt_id}
        self.version(run_id, prompt, optimized=False)
        if ANALYZED is not None:
            self.put(stream, ANALYZED, prompt, **ids, **TRIAGE)
        better = prompt.text.replace("support", "customer support")
        for i in range(4 if ANALYZED is not None else 5):  # every run is 50 events
            llm = i % 2 == 1  # rule-based and LLM rounds take turns
            self.put(
                stream,
                IterationCompleted,
                prompt,
                **ids,
                strategy="llm_clarity" if llm else "clarity_focus",
                iteration=i // 2 + 1,
                candidate_text=better,
                score_before=61.0 + i,
                score_after=63.5 + i,
                confidence=0.82,
                decision="accepted" if i < 3 else "rejected",
                reason="clarity +2.5, above min_confidence 0.70",
                llm_exchange=EXCHANGE if llm else None,
            )
        if improved:
            version = self.version(run_id, prompt, optimized=True)
            patch = PromptPatch(
                workflow_id=prompt.workflow_id,
                node_id=prompt.node_id,
                selector_value=prompt.field_path,
                content=better,
            )
            texts = {"old_text": prompt.text, "new_text": better}
            self.put(stream, PatchEmitted, prompt, **ids, patch=patch, version=version, **texts)
