"""Report views over the read models: what ``autoopt report`` prints, in SQL.

Every view reads only the projection tables, so it is as current as they are
and survives ``autoopt projections rebuild`` (which empties and refills the
tables, never drops them). The SQL is written once for SQLite and PostgreSQL;
only the calendar day of a timestamp needs a dialect of its own.

Costs follow the ``llm_calls`` rule that an unknown price is not a zero cost:
``cost_usd`` is NULL as soon as one call in the group has no price,
``known_cost_usd`` is the sum of the calls that have one, and
``unknown_cost_calls`` counts the others.

A later migration that batch-alters a table these views read must drop the
views first and create them again afterwards: SQLite refuses the batch mode's
``ALTER TABLE ... RENAME`` while a view names the table it replaces ("error in
view ...: no such table"), and PostgreSQL refuses to drop a table a view uses.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# LLM figures of a group of llm_calls rows under the alias c. They hold on the
# outer side of a LEFT JOIN too (a group without calls: zeros, cost 0.0), so
# c.position, never NULL in a real row, tells a call from "no call".
_UNKNOWN = "SUM(CASE WHEN c.position IS NOT NULL AND c.cost_usd IS NULL THEN 1 ELSE 0 END)"


def llm_figures(calls: str = "calls") -> str:
    return f"""
    COUNT(c.position) AS {calls},
    SUM(CASE WHEN c.cached THEN 1 ELSE 0 END) AS cached_calls,
    COALESCE(SUM(c.prompt_tokens), 0) AS prompt_tokens,
    COALESCE(SUM(c.completion_tokens), 0) AS completion_tokens,
    CASE WHEN {_UNKNOWN} > 0 THEN NULL ELSE COALESCE(SUM(c.cost_usd), 0.0) END AS cost_usd,
    COALESCE(SUM(c.cost_usd), 0.0) AS known_cost_usd,
    {_UNKNOWN} AS unknown_cost_calls"""


ACCEPTED = "CASE WHEN i.decision = 'accepted' THEN 1 ELSE 0 END"

# A fallback round is its own row, "llm_guided->structure_focus": the rule
# produced the candidate, the LLM strategy was asked for (its call, if one was
# made before it failed, is what the row's LLM columns count), so neither the
# LLM strategy's figures nor the rule's are blurred by the other's.
STRATEGY_EFFECTIVENESS = f"""
SELECT
    CASE WHEN i.fallback_from IS NULL THEN i.strategy
         ELSE i.fallback_from || '->' || i.strategy END AS strategy,
    COUNT(DISTINCT i.run_id) AS runs,
    COUNT(*) AS tried,
    SUM({ACCEPTED}) AS accepted,
    SUM(CASE WHEN i.decision = 'rejected' THEN 1 ELSE 0 END) AS rejected,
    CAST(SUM({ACCEPTED}) AS DOUBLE PRECISION) / COUNT(*) AS acceptance_rate,
    AVG(CASE WHEN i.decision = 'accepted' THEN i.score_after - i.score_before END)
        AS mean_improvement,
    AVG(i.confidence) AS mean_confidence,
    {llm_figures("llm_calls")}
FROM iterations i
LEFT JOIN llm_calls c ON c.position = i.position
GROUP BY 1
"""

RUN_COSTS = f"""
SELECT
    r.run_id,
    r.app_name,
    r.started_at,
    r.language_model AS model,
    {llm_figures()}
FROM runs r
LEFT JOIN llm_calls c ON c.run_id = r.run_id
GROUP BY r.run_id, r.app_name, r.started_at, r.language_model
"""

# The calendar day (UTC) as text, YYYY-MM-DD, on either database.
DAY = {
    "sqlite": "date(c.occurred_at)",
    "postgresql": "to_char(c.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
}


def daily_costs(dialect: str) -> str:
    if dialect not in DAY:
        raise NotImplementedError(f"report views: no calendar day for {dialect}")
    return f"""
SELECT
    {DAY[dialect]} AS day,
    COUNT(DISTINCT c.run_id) AS runs,
    {llm_figures()}
FROM llm_calls c
GROUP BY 1
"""


MODEL_COSTS = f"""
SELECT
    c.model,
    COUNT(DISTINCT c.run_id) AS runs,
    {llm_figures()}
FROM llm_calls c
GROUP BY c.model
"""

RUN_OUTCOMES = """
SELECT
    r.run_id,
    r.app_name,
    r.status,
    r.started_at,
    r.finished_at,
    r.prompts_found,
    r.prompts_optimized,
    r.versions_created,
    COALESCE(i.rounds, 0) AS rounds,
    COALESCE(i.accepted, 0) AS accepted,
    COALESCE(i.fallbacks, 0) AS fallbacks,
    i.acceptance_rate,
    i.mean_improvement,
    k.calls AS llm_calls,
    k.cached_calls,
    k.cost_usd,
    k.known_cost_usd,
    k.unknown_cost_calls
FROM runs r
LEFT JOIN (
    SELECT
        run_id,
        COUNT(*) AS rounds,
        SUM(CASE WHEN decision = 'accepted' THEN 1 ELSE 0 END) AS accepted,
        SUM(CASE WHEN fallback THEN 1 ELSE 0 END) AS fallbacks,
        CAST(SUM(CASE WHEN decision = 'accepted' THEN 1 ELSE 0 END) AS DOUBLE PRECISION)
            / COUNT(*) AS acceptance_rate,
        AVG(CASE WHEN decision = 'accepted' THEN score_after - score_before END)
            AS mean_improvement
    FROM iterations
    GROUP BY run_id
) i ON i.run_id = r.run_id
JOIN v_run_costs k ON k.run_id = r.run_id
"""

# Ten buckets of 0.1, each [low, high) but the last [0.9, 1.0]; a literal
# table of them, so empty buckets are rows too.
_BUCKETS = "\nUNION ALL ".join(
    f"SELECT '{n / 10:.1f}-{(n + 1) / 10:.1f}' AS bucket, "
    f"CAST({n / 10:.1f} AS DOUBLE PRECISION) AS low, "
    f"CAST({(n + 1) / 10:.1f} AS DOUBLE PRECISION) AS high"
    for n in range(10)
)
CONFIDENCE_HISTOGRAM = f"""
SELECT
    b.bucket,
    b.low,
    b.high,
    SUM({ACCEPTED}) AS accepted,
    SUM(CASE WHEN i.decision = 'rejected' THEN 1 ELSE 0 END) AS rejected
FROM ({_BUCKETS}) b
LEFT JOIN iterations i
    ON i.confidence >= b.low AND (i.confidence < b.high OR (b.high = 1.0 AND i.confidence = 1.0))
GROUP BY b.bucket, b.low, b.high
"""

# How often the runs' calls were answered from the response cache.
LLM_CACHE_USE = """
SELECT
    COUNT(*) AS calls,
    COALESCE(SUM(CASE WHEN cached THEN 1 ELSE 0 END), 0) AS cached_calls,
    CASE WHEN COUNT(*) = 0 THEN NULL
         ELSE CAST(SUM(CASE WHEN cached THEN 1 ELSE 0 END) AS DOUBLE PRECISION) / COUNT(*)
    END AS hit_rate
FROM llm_calls
"""


def views(dialect: str) -> list[tuple[str, str]]:
    """(name, SELECT) in creation order: a view comes after the views it reads."""
    return [
        ("v_strategy_effectiveness", STRATEGY_EFFECTIVENESS),
        ("v_run_costs", RUN_COSTS),
        ("v_daily_costs", daily_costs(dialect)),
        ("v_model_costs", MODEL_COSTS),
        ("v_run_outcomes", RUN_OUTCOMES),
        ("v_confidence_histogram", CONFIDENCE_HISTOGRAM),
        ("v_llm_cache_use", LLM_CACHE_USE),
    ]


def upgrade() -> None:
    for name, select in views(op.get_bind().dialect.name):
        op.execute(f"CREATE VIEW {name} AS {select.strip()}")


def downgrade() -> None:
    for name, _ in reversed(views(op.get_bind().dialect.name)):
        op.execute(f"DROP VIEW {name}")
