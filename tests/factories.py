"""Small builders for domain events, with a deterministic clock and ids."""

from __future__ import annotations

import hashlib
import itertools
import uuid
from datetime import UTC, datetime, timedelta

from autoopt.domain.events import PromptExtracted, RunFailed, RunStarted

_counter = itertools.count(1)
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def next_id() -> uuid.UUID:
    return uuid.UUID(int=next(_counter))


def at(seconds: int) -> datetime:
    return EPOCH + timedelta(seconds=seconds)


def run_started(run_id: str = "run-1", dsl_text: str = "app: {mode: workflow}\n") -> RunStarted:
    return RunStarted(
        event_id=uuid.uuid4(),
        occurred_at=at(0),
        correlation_id=run_id,
        run_id=run_id,
        workflow_id="wf-1",
        app_name="Demo",
        app_mode="workflow",
        source_name="demo.yml",
        dsl_text=dsl_text,
        dsl_sha256=hashlib.sha256(dsl_text.encode()).hexdigest(),
        config={"optimization": {"max_iterations": 3}},
        tool_version="0.1.0",
    )


def prompt_extracted(
    run_id: str = "run-1", n: int = 1, text: str = "Summarize {{#sys.query#}}"
) -> PromptExtracted:
    return PromptExtracted(
        event_id=uuid.uuid4(),
        occurred_at=at(n),
        correlation_id=run_id,
        run_id=run_id,
        prompt_id=f"wf-1/17115289158{n:02d}/prompt_template/0/text",
        workflow_id="wf-1",
        node_id=f"17115289158{n:02d}",
        node_title="LLM",
        node_type="llm",
        field_path="/prompt_template/0/text",
        role="system",
        text=text,
        variables=("sys.query",),
    )


def run_failed(run_id: str = "run-1", message: str = "boom") -> RunFailed:
    return RunFailed(
        event_id=uuid.uuid4(),
        occurred_at=at(99),
        correlation_id=run_id,
        run_id=run_id,
        error_type="DSLFormatError",
        message=message,
    )
