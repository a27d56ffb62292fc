"""The reporting tables (DESIGN section 6), all derived from the event log.

They can be dropped and rebuilt at any time (``autoopt projections rebuild``);
the log is the only source of truth.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

from autoopt.infrastructure.tables import PositionType, metadata

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(36), primary_key=True),
    Column("workflow_id", Text, nullable=False),
    Column("app_name", Text, nullable=False),
    Column("app_mode", String(40), nullable=False),
    Column("source_name", Text, nullable=False),
    Column("dsl_sha256", String(64), nullable=False),
    Column("tool_version", String(40), nullable=False),
    Column("status", String(20), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("prompts_found", Integer),
    Column("prompts_optimized", Integer),
    Column("versions_created", Integer),
    Column("output_path", Text),
    Column("output_sha256", String(64)),
    Column("error_type", String(100)),
    Column("error_message", Text),
    # The run's optimization settings; language_model is the model's name, or
    # NULL when LLM strategies had none and ran their rule-based fallbacks.
    Column("strategies", Text),
    Column("score_threshold", Float),
    Column("min_confidence", Float),
    Column("max_iterations", Integer),
    Column("language_model", Text),
)

prompts = Table(
    "prompts",
    metadata,
    Column("run_id", String(36), nullable=False),
    Column("prompt_id", Text, nullable=False),
    Column("node_id", Text),
    Column("node_title", Text),
    Column("node_type", String(60), nullable=False),
    Column("field_path", Text, nullable=False),
    Column("role", String(20)),
    Column("edition", String(10), nullable=False),
    Column("characters", Integer, nullable=False),
    Column("variables", Integer, nullable=False),
    Column("position", BigInteger, nullable=False),
    # From PromptAnalyzed: the baseline, its issues (type:severity, comma-separated),
    # and whether the run took the prompt up ("optimize") or not ("skip") and why.
    Column("baseline_overall", Float),
    Column("baseline_clarity", Float),
    Column("baseline_efficiency", Float),
    Column("issues", Text),
    Column("triage", String(10)),
    Column("triage_reason", Text),
    PrimaryKeyConstraint("run_id", "prompt_id"),
)

iterations = Table(
    "iterations",
    metadata,
    Column("position", PositionType, primary_key=True, autoincrement=False),
    Column("run_id", String(36), nullable=False, index=True),
    Column("prompt_id", Text, nullable=False),
    Column("strategy", String(40), nullable=False),
    Column("iteration", Integer, nullable=False),
    Column("score_before", Float, nullable=False),
    Column("score_after", Float, nullable=False),
    Column("confidence", Float, nullable=False),
    Column("decision", String(10), nullable=False),
    Column("reason", Text, nullable=False),
    Column("fallback", Boolean, nullable=False),
    Column("fallback_from", String(40)),
    Column("fallback_error", Text),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
)

versions = Table(
    "versions",
    metadata,
    Column("prompt_id", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("kind", String(20), nullable=False),
    Column("content_sha256", String(64), nullable=False),
    Column("overall", Float),
    Column("clarity", Float),
    Column("efficiency", Float),
    Column("strategy", String(40)),
    Column("parent_version", Integer),
    Column("restored_version", Integer),
    Column("run_id", String(36)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("position", BigInteger, nullable=False),
    PrimaryKeyConstraint("prompt_id", "version"),
)

patches = Table(
    "patches",
    metadata,
    Column("position", PositionType, primary_key=True, autoincrement=False),
    Column("run_id", String(36), nullable=False, index=True),
    Column("prompt_id", Text, nullable=False),
    Column("version", Integer),
    Column("document_path", Text, nullable=False),
    Column("old_text", Text, nullable=False),
    Column("new_text", Text, nullable=False),
)

llm_calls = Table(
    "llm_calls",
    metadata,
    Column("position", PositionType, primary_key=True, autoincrement=False),
    Column("run_id", String(36), nullable=False, index=True),
    Column("prompt_id", Text, nullable=False),
    Column("strategy", String(40), nullable=False),
    Column("model", String(200), nullable=False),
    Column("base_url", Text),
    Column("request_sha256", String(64)),
    Column("template_version", String(40)),
    Column("prompt_tokens", Integer, nullable=False),
    Column("completion_tokens", Integer, nullable=False),
    Column("cost_usd", Float),
    Column("cached", Boolean, nullable=False),
    Column("latency_ms", Float),
    Column("error", Text),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
)

projection_checkpoints = Table(
    "projection_checkpoints",
    metadata,
    Column("name", String(60), primary_key=True),
    Column("position", BigInteger, nullable=False),
)
