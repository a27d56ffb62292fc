"""The text form of ``autoopt runs audit``: a run's header, each prompt's trail, totals.

It renders the document ``runs_audit`` builds from the read models; the JSON
form is that document itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from autoopt.cli.output import one_line, render
from autoopt.infrastructure.report_text import llm_call_text

ROUND_COLUMNS = ("strategy", "round", "score", "confidence", "decision", "reason")
# Past these a cell or a detail line stops being readable; the JSON keeps the whole text.
REASON_WIDTH = 60
DETAIL_WIDTH = 100
INDENT = "  "
LABEL_WIDTH = len("llm calls")  # the longest label: every block's values line up


def audit_lines(document: Mapping[str, Any]) -> list[str]:
    run = document["run"]
    lines = _header(run)
    prompts = document["prompts"]
    for number, prompt in enumerate(prompts, 1):
        lines.append("")
        lines.extend(_prompt_lines(prompt, f"{number}/{len(prompts)}", run))
    lines.append("")
    lines.extend(_totals_lines(document["totals"]))
    return lines


def _header(run: Mapping[str, Any]) -> list[str]:
    status = run["status"]
    if run["error_type"]:
        status += f": {run['error_type']}: {_clip(run['error_message'] or '', DETAIL_WIDTH)}"
    fields = [
        ("run", run["run_id"]),
        ("app", f"{run['app_name']} ({run['app_mode']})"),
        ("workflow", run["workflow_id"]),
        ("source", run["source_name"]),
        ("tool", run["tool_version"]),
        ("settings", _settings(run)),
        ("status", status),
        ("started", run["started_at"]),
        ("finished", run["finished_at"] or "-"),
        ("prompts", _counts(run)),
        ("output", run["output_path"] or "-"),
    ]
    return _fields(fields, "")


def _settings(run: Mapping[str, Any]) -> str:
    if run["strategies"] is None:
        return "- (not recorded)"
    model = run["language_model"] or "none: LLM strategies used their rule-based fallbacks"
    return (
        f"{run['strategies'].replace(',', ', ')}; threshold {run['score_threshold']:g}, "
        f"confidence {run['min_confidence']:g}, {run['max_iterations']} rounds; "
        f"model {model}"
    )


def _counts(run: Mapping[str, Any]) -> str:
    if run["prompts_found"] is None:
        return "- (the run did not complete)"
    return (
        f"{run['prompts_found']} found, {run['prompts_optimized']} optimized, "
        f"{run['versions_created']} versions created"
    )


def _prompt_lines(prompt: Mapping[str, Any], number: str, run: Mapping[str, Any]) -> list[str]:
    node = prompt["node_title"] or prompt["node_id"] or "app"
    baseline = prompt["baseline"]
    triage = prompt["triage"] or "not recorded"
    if prompt["triage_reason"]:
        triage += f": {one_line(prompt['triage_reason'])}"
    lines = [f"prompt {number}  {node} ({prompt['node_type']})  {prompt['field_path']}"]
    lines.extend(
        _fields(
            [
                ("id", prompt["prompt_id"]),
                ("baseline", _baseline(baseline) if baseline else "not recorded"),
                ("issues", ", ".join(prompt["issues"]) or "none"),
                ("triage", triage),
            ],
            INDENT,
        )
    )
    if prompt["iterations"]:
        lines.extend(_rounds(prompt["iterations"]))
    lines.extend(_fields(_outcome(prompt, run), INDENT))
    return lines


def _baseline(scores: Mapping[str, float]) -> str:
    return (
        f"overall {scores['overall']:.1f} (clarity {scores['clarity']:.1f}, "
        f"efficiency {scores['efficiency']:.1f})"
    )


def _rounds(rounds: Sequence[Mapping[str, Any]]) -> list[str]:
    rows = [
        {
            "strategy": f"{r['fallback_from']}->{r['strategy']}"
            if r["fallback_from"]
            else r["strategy"],
            "round": r["iteration"],
            "score": f"{r['score_before']:.1f} -> {r['score_after']:.1f}",
            # Three places, as recorded: a reason "confidence 0.665 is below 0.7" must match it.
            "confidence": f"{r['confidence']:.3f}",
            "decision": r["decision"],
            "reason": _clip(r["reason"], REASON_WIDTH),
        }
        for r in rounds
    ]
    header, rule, *cells = render(rows, ROUND_COLUMNS, "table").split("\n")
    # A round's fallback and LLM call go on their own lines under it, not in more columns.
    lines = [INDENT + header, INDENT + rule]
    for line, r in zip(cells, rounds, strict=True):
        lines.append(INDENT + line)
        if r["fallback_error"]:
            lines.append(f"{INDENT * 3}fallback: {_clip(r['fallback_error'], DETAIL_WIDTH)}")
        if r["llm_call"]:
            call = llm_call_text(
                r["llm_call"],
                quoted_error=r["fallback_error"],
                clip=lambda text: _clip(text, DETAIL_WIDTH),
            )
            lines.append(f"{INDENT * 3}llm: {call}")
    return lines


def _outcome(prompt: Mapping[str, Any], run: Mapping[str, Any]) -> list[tuple[str, str]]:
    decision, patch = prompt["decision"], prompt["patch"]
    if decision == "optimized" and patch is not None:
        made_by = [prompt["final_version_strategy"] or ""]
        if prompt["final_version_run_id"] not in (None, run["run_id"]):
            made_by.append(f"made by run {str(prompt['final_version_run_id'])[:8]}")
        if run["status"] != "completed":
            made_by.append(f"not written: the run {run['status']}")
        note = ", ".join(filter(None, made_by))
        return [
            (
                "outcome",
                f"optimized -> version {patch['version']}" + (f" ({note})" if note else ""),
            ),
            ("patch", patch["document_path"]),
        ]
    if decision == "skipped":
        reason = one_line(prompt["triage_reason"] or "") or "no reason recorded"
        return [("outcome", f"skipped: {reason}")]
    if decision == "kept":
        return [("outcome", "kept (no accepted candidate)")]
    if run["status"] == "running":
        return [("outcome", "none yet (the run is still going)")]
    return [("outcome", f"none (the run {run['status']} before this prompt's verdict)")]


def _totals_lines(t: Mapping[str, Any]) -> list[str]:
    prompts = (
        f"{t['prompts']}: {t['optimized']} optimized, {t['kept']} kept, {t['skipped']} skipped"
    )
    rounds = f"{t['rounds']}: {t['accepted']} accepted, {t['rejected']} rejected, "
    rounds += f"{t['fallbacks']} fell back to rules"
    if t["llm_calls"]:
        known = f"${t['cost_usd']:.6f}" if t["llm_calls"] > t["calls_with_unknown_cost"] else ""
        cost = " + ".join(filter(None, [known, "unknown" if t["calls_with_unknown_cost"] else ""]))
        llm = (
            f"{t['llm_calls']} ({t['cached_calls']} cached), "
            f"{t['prompt_tokens']} + {t['completion_tokens']} tokens, {cost}"
        )
    else:
        llm = "none"
    return [
        "totals",
        *_fields([("prompts", prompts), ("rounds", rounds), ("llm calls", llm)], INDENT),
    ]


def _fields(pairs: Sequence[tuple[str, Any]], indent: str) -> list[str]:
    return [f"{indent}{label.ljust(LABEL_WIDTH)}  {value}" for label, value in pairs]


def _clip(text: str, width: int) -> str:
    flat = one_line(text)
    return flat if len(flat) <= width else flat[: width - 3] + "..."
