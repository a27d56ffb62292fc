"""``autoopt runs audit``: the decision trail of one run, prompt by prompt.

Everything comes from the read models (``runs``, ``prompts``, ``iterations``,
``llm_calls``, ``versions``, ``patches``), never from the raw log, so an audit
shows exactly what ``autoopt sql`` and the reports see. Nothing here reads the
clock: the only times printed are the ones the run recorded.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import click

from autoopt.cli.audit_text import audit_lines
from autoopt.cli.context import CliState, pass_state
from autoopt.cli.output import document_format_option, format_time
from autoopt.cli.runs_commands import resolve_run

# The llm_calls columns an audit shows (not run_id, prompt_id, strategy: the round has them).
LLM_CALL_FIELDS = (
    "model",
    "base_url",
    "request_sha256",
    "template_version",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "cached",
    "latency_ms",
    "error",
)
PATCH_FIELDS = ("version", "document_path", "old_text", "new_text")


@click.command("audit")
@click.argument("run_id", metavar="RUN")
@document_format_option
@pass_state
def audit(state: CliState, run_id: str, fmt: str) -> None:
    """The decision trail of RUN (a unique prefix of its id will do).

    For each prompt, in document order: its baseline scores and issues, whether
    it was taken up and why, every round of every strategy with its scores,
    confidence, decision and reason, fallbacks and LLM calls with their cost,
    and the version and patch it ended in. Run totals close the report.

    \b
    Examples:
      autoopt runs audit 5805acc6
      autoopt runs audit 5805acc6 --format json
    """
    run = resolve_run(state, run_id)
    document = audit_document(run, read_run(state, str(run["run_id"])))
    if fmt == "json":
        click.echo(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        click.echo("\n".join(audit_lines(document)))


# --------------------------------------------------------------------------- #
# Reading: one query per table, all for this run
# --------------------------------------------------------------------------- #


def read_run(state: CliState, run_id: str) -> dict[str, list[dict[str, Any]]]:
    from sqlalchemy import Table, select

    from autoopt.infrastructure.projections import tables

    def rows(table: Table, *where: Any) -> list[dict[str, Any]]:
        query = select(table).where(*where).order_by(table.c.position)
        return [dict(row._mapping) for row in conn.execute(query)]

    # resolve_run has caught the projections up; every table is read at one checkpoint.
    with state.container().engine.connect() as conn:
        read = {
            name: rows(table, table.c.run_id == run_id)
            for name, table in (
                ("prompts", tables.prompts),
                ("iterations", tables.iterations),
                ("llm_calls", tables.llm_calls),
                ("patches", tables.patches),
            )
        }
        # A patch may reuse a version an earlier run made (same text): not filtered by run.
        patched = {p["prompt_id"] for p in read["patches"]}
        read["versions"] = rows(tables.versions, tables.versions.c.prompt_id.in_(patched))
    return read


# --------------------------------------------------------------------------- #
# The document: what both formats show
# --------------------------------------------------------------------------- #


def audit_document(
    run: Mapping[str, Any], read: Mapping[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    calls = {c["position"]: c for c in read["llm_calls"]}
    rounds: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in read["iterations"]:
        rounds[row["prompt_id"]].append(_round(row, calls.get(row["position"])))
    patches = {p["prompt_id"]: p for p in read["patches"]}
    versions = {(v["prompt_id"], v["version"]): v for v in read["versions"]}
    prompts = [
        _prompt(p, rounds[p["prompt_id"]], patches.get(p["prompt_id"]), versions, run)
        for p in read["prompts"]
    ]
    return {
        "run": dict(run),
        "prompts": prompts,
        "totals": _totals(prompts, list(calls.values())),
    }


def _prompt(
    row: Mapping[str, Any],
    rounds: list[dict[str, Any]],
    patch: Mapping[str, Any] | None,
    versions: Mapping[tuple[str, int], Mapping[str, Any]],
    run: Mapping[str, Any],
) -> dict[str, Any]:
    version = versions.get((row["prompt_id"], patch["version"])) if patch else None
    return {
        "prompt_id": row["prompt_id"],
        "node_id": row["node_id"],
        "node_title": row["node_title"],
        "node_type": row["node_type"],
        "field_path": row["field_path"],
        "baseline": None
        if row["baseline_overall"] is None
        else {
            "overall": row["baseline_overall"],
            "clarity": row["baseline_clarity"],
            "efficiency": row["baseline_efficiency"],
        },
        "issues": [i for i in (row["issues"] or "").split(",") if i],
        "triage": row["triage"],
        "triage_reason": row["triage_reason"],
        "iterations": rounds,
        "final_version": patch["version"] if patch else None,
        # What made the version, and which run: an earlier one when this run found the text stored.
        "final_version_strategy": version["strategy"] if version else None,
        "final_version_run_id": version["run_id"] if version else None,
        "patch": None if patch is None else {k: patch[k] for k in PATCH_FIELDS},
        "decision": _decision(row, rounds, patch, run),
    }


def _decision(
    row: Mapping[str, Any],
    rounds: Sequence[Mapping[str, Any]],
    patch: Mapping[str, Any] | None,
    run: Mapping[str, Any],
) -> str | None:
    """optimized | kept | skipped, or None when the log does not say (yet)."""
    if patch is not None:
        return "optimized"
    if row["triage"] == "skip":
        return "skipped"
    # A run that failed or is still going may not have reached this prompt's patch.
    if run["status"] != "completed":
        return None
    # Logs from before PromptAnalyzed have no triage: a prompt with no round was skipped.
    return "kept" if rounds or row["triage"] == "optimize" else "skipped"


def _round(row: Mapping[str, Any], call: Mapping[str, Any] | None) -> dict[str, Any]:
    return {
        "position": row["position"],
        "strategy": row["strategy"],
        "iteration": row["iteration"],
        "score_before": row["score_before"],
        "score_after": row["score_after"],
        "confidence": row["confidence"],
        "decision": row["decision"],
        "reason": row["reason"],
        "fallback": row["fallback"],
        "fallback_from": row["fallback_from"],
        "fallback_error": row["fallback_error"],
        "occurred_at": format_time(row["occurred_at"]),
        "llm_call": None if call is None else {k: call[k] for k in LLM_CALL_FIELDS},
    }


def _totals(prompts: list[dict[str, Any]], calls: list[dict[str, Any]]) -> dict[str, Any]:
    rounds = [r for p in prompts for r in p["iterations"]]
    decisions = [p["decision"] for p in prompts]
    known = [c["cost_usd"] for c in calls if c["cost_usd"] is not None]
    return {
        "prompts": len(prompts),
        "optimized": decisions.count("optimized"),
        "kept": decisions.count("kept"),
        "skipped": decisions.count("skipped"),
        "rounds": len(rounds),
        "accepted": sum(r["decision"] == "accepted" for r in rounds),
        "rejected": sum(r["decision"] == "rejected" for r in rounds),
        "fallbacks": sum(bool(r["fallback"]) for r in rounds),
        "llm_calls": len(calls),
        "cached_calls": sum(bool(c["cached"]) for c in calls),
        "prompt_tokens": sum(c["prompt_tokens"] for c in calls),
        "completion_tokens": sum(c["completion_tokens"] for c in calls),
        # The sum of the known prices only; an unknown price is counted, never taken as 0.
        "cost_usd": round(sum(known), 8),
        "calls_with_unknown_cost": len(calls) - len(known),
    }
