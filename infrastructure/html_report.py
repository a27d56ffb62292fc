"""The HTML report of one run: a single page that needs nothing but itself.

It renders the document ``autoopt runs audit`` builds from the read models
(run, prompts with their rounds and patches, totals), plus each prompt's text
as extracted, into ``templates/report.html.j2``.

Prompt text is data, never markup: Dify prompts are full of ``{{#node.var#}}``
and may hold ``<script>``. So every value reaches the template as a variable of
an environment that escapes everything it prints, the diff is built here as
plain rows of text (``difflib.HtmlDiff`` writes markup of its own around
unescaped text), and the page carries a Content-Security-Policy that forbids
scripts, images, fonts and any fetch: even a value that slipped through
escaping could not run or call out.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path
from typing import Any, Literal

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from autoopt.infrastructure.report_text import llm_call_text

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
TEMPLATE = "report.html.j2"
# Two paired lines that are neither this alike overall nor share a run of this
# share of the shorter one are shown as replaced whole: marking the few characters
# unrelated lines share would only scatter highlights over them. The second test
# keeps a line that was cut in two (a long line, its first sentence) marked finely.
INTRALINE_MIN_RATIO = 0.4
INTRALINE_MIN_RUN = 0.5

DiffTag = Literal["equal", "replace", "delete", "insert"]


@dataclass(frozen=True)
class Segment:
    text: str
    changed: bool


@dataclass(frozen=True)
class DiffRow:
    """One line of the side-by-side diff; a side without a line has no number."""

    tag: DiffTag
    left_number: int | None
    left: tuple[Segment, ...]
    right_number: int | None
    right: tuple[Segment, ...]


def side_by_side(before: str, after: str) -> list[DiffRow]:
    """Lines matched by ``difflib``; a replaced line pair also marks its changed characters."""
    old, new = before.splitlines(), after.splitlines()
    rows: list[DiffRow] = []
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            for i, j in zip(range(i1, i2), range(j1, j2), strict=True):
                same = (Segment(old[i], False),)
                rows.append(DiffRow("equal", i + 1, same, j + 1, same))
            continue
        # A block of replaced lines is paired up in order; the longer side's rest stands alone.
        pairs = zip_longest(range(i1, i2), range(j1, j2))
        for i, j in pairs:
            if i is not None and j is not None:
                left, right = _intraline(old[i], new[j])
                rows.append(DiffRow("replace", i + 1, left, j + 1, right))
            elif i is not None:
                rows.append(DiffRow("delete", i + 1, (Segment(old[i], True),), None, ()))
            elif j is not None:
                rows.append(DiffRow("insert", None, (), j + 1, (Segment(new[j], True),)))
    return rows


def _intraline(old: str, new: str) -> tuple[tuple[Segment, ...], tuple[Segment, ...]]:
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    longest = max(block.size for block in matcher.get_matching_blocks())
    shorter = min(len(old), len(new))
    if matcher.ratio() < INTRALINE_MIN_RATIO and longest < INTRALINE_MIN_RUN * shorter:
        return (Segment(old, True),), (Segment(new, True),)
    left: list[Segment] = []
    right: list[Segment] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        changed = tag != "equal"
        if i2 > i1:
            left.append(Segment(old[i1:i2], changed))
        if j2 > j1:
            right.append(Segment(new[j1:j2], changed))
    return tuple(left), tuple(right)


def render_report(document: Mapping[str, Any], texts: Mapping[str, str]) -> str:
    """The page for one run's audit ``document``; ``texts`` maps prompt ids to their
    extracted text, shown for the prompts that kept it (no patch holds it)."""
    environment = Environment(
        loader=FileSystemLoader(str(TEMPLATES_DIR)),
        # Everything this environment loads is HTML, whatever the template's name ends in.
        autoescape=select_autoescape(
            enabled_extensions=("html", "html.j2"), default_for_string=True, default=True
        ),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return environment.get_template(TEMPLATE).render(page=page_model(document, texts))


# --------------------------------------------------------------------------- #
# The page model: every string the template prints, formatted here
# --------------------------------------------------------------------------- #


def page_model(document: Mapping[str, Any], texts: Mapping[str, str]) -> dict[str, Any]:
    run = document["run"]
    prompts = document["prompts"]
    return {
        "run_id": run["run_id"],
        "app_name": run["app_name"],
        "status": run["status"],
        "summary": _summary(run),
        "totals": _totals(document["totals"]),
        "prompts": [
            _prompt(number, prompt, texts.get(prompt["prompt_id"]), run)
            for number, prompt in enumerate(prompts, 1)
        ],
    }


def _summary(run: Mapping[str, Any]) -> list[tuple[str, str]]:
    status = run["status"]
    if run["error_type"]:
        status += f": {run['error_type']}: {run['error_message'] or ''}"
    if run["strategies"] is None:
        settings = "not recorded"
    else:
        model = run["language_model"] or "none (LLM strategies used their rule-based fallbacks)"
        settings = (
            f"strategies {run['strategies'].replace(',', ', ')}; threshold "
            f"{run['score_threshold']:g}, confidence {run['min_confidence']:g}, "
            f"{run['max_iterations']} rounds; model {model}"
        )
    if run["prompts_found"] is None:
        counts = "not recorded (the run did not complete)"
    else:
        counts = (
            f"{run['prompts_found']} found, {run['prompts_optimized']} optimized, "
            f"{run['versions_created']} versions created"
        )
    return [
        ("run", run["run_id"]),
        ("app", f"{run['app_name']} ({run['app_mode']})"),
        ("workflow", run["workflow_id"]),
        ("source", run["source_name"]),
        ("tool", f"autoopt {run['tool_version']}"),
        ("settings", settings),
        ("status", status),
        ("started", run["started_at"]),
        ("finished", run["finished_at"] or "-"),
        ("prompts", counts),
        ("output", run["output_path"] or "-"),
    ]


def _totals(t: Mapping[str, Any]) -> list[tuple[str, str]]:
    tokens = f"{t['prompt_tokens']} prompt + {t['completion_tokens']} completion"
    cost = f"${t['cost_usd']:.6f}"
    if t["calls_with_unknown_cost"]:
        # An unknown price is never shown as 0: the sum is of the known ones only.
        cost += f" + {t['calls_with_unknown_cost']} calls of unknown cost"
    return [
        (
            "prompts",
            f"{t['prompts']}: {t['optimized']} optimized, {t['kept']} kept, {t['skipped']} skipped",
        ),
        (
            "rounds",
            f"{t['rounds']}: {t['accepted']} accepted, {t['rejected']} rejected, "
            f"{t['fallbacks']} fallbacks",
        ),
        (
            "llm calls",
            f"{t['llm_calls']} ({t['cached_calls']} cached)" if t["llm_calls"] else "none",
        ),
        ("tokens", tokens),
        ("cost", cost),
    ]


def _prompt(
    number: int, prompt: Mapping[str, Any], text: str | None, run: Mapping[str, Any]
) -> dict[str, Any]:
    rounds = prompt["iterations"]
    baseline = prompt["baseline"]
    best = _best_round(rounds)
    patch = prompt["patch"]
    return {
        "anchor": f"prompt-{number}",
        "number": number,
        "node": prompt["node_title"] or prompt["node_id"] or "app",
        "node_type": prompt["node_type"],
        "field_path": prompt["field_path"],
        "prompt_id": prompt["prompt_id"],
        "decision": prompt["decision"] or "none",
        "baseline": _scores(baseline),
        "score": _score_change(baseline, best),
        "strategy": _strategy(best) if best else "",
        "confidence": f"{best['confidence']:.3f}" if best else "",
        "issues": ", ".join(prompt["issues"]) or "none",
        "triage": _triage(prompt),
        "rounds": [_round(r) for r in rounds],
        "cost": _prompt_cost(rounds),
        "outcome": _outcome(prompt, run),
        # The optimized ones show before and after side by side; the rest their text once.
        "diff": side_by_side(patch["old_text"], patch["new_text"]) if patch else None,
        "text": None if patch else text,
    }


def _best_round(rounds: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The accepted round with the highest score: the candidate the run kept."""
    accepted = [r for r in rounds if r["decision"] == "accepted"]
    return max(accepted, key=lambda r: r["score_after"]) if accepted else None


def _score_change(baseline: Mapping[str, float] | None, best: Mapping[str, Any] | None) -> str:
    if baseline is None:
        return "-"
    if best is None:
        return f"{baseline['overall']:.1f}"
    return f"{baseline['overall']:.1f} -> {best['score_after']:.1f}"


def _strategy(round_: Mapping[str, Any]) -> str:
    if round_["fallback_from"]:
        return f"{round_['fallback_from']}->{round_['strategy']}"
    return str(round_["strategy"])


def _scores(scores: Mapping[str, float] | None) -> str:
    if scores is None:
        return "not recorded"
    return (
        f"overall {scores['overall']:.1f} (clarity {scores['clarity']:.1f}, "
        f"efficiency {scores['efficiency']:.1f})"
    )


def _triage(prompt: Mapping[str, Any]) -> str:
    triage = prompt["triage"] or "not recorded"
    if prompt["triage_reason"]:
        triage += f": {prompt['triage_reason']}"
    return str(triage)


def _round(r: Mapping[str, Any]) -> dict[str, Any]:
    call = r["llm_call"]
    return {
        "strategy": _strategy(r),
        "round": r["iteration"],
        "score": f"{r['score_before']:.1f} -> {r['score_after']:.1f}",
        # Three places, as recorded: a reason "confidence 0.665 is below 0.7" must match it.
        "confidence": f"{r['confidence']:.3f}",
        "decision": r["decision"],
        "reason": r["reason"],
        "fallback_error": r["fallback_error"],
        "llm": llm_call_text(call) if call else None,
    }


def _prompt_cost(rounds: Sequence[Mapping[str, Any]]) -> str:
    calls = [r["llm_call"] for r in rounds if r["llm_call"]]
    if not calls:
        return "no LLM calls"
    known = [c["cost_usd"] for c in calls if c["cost_usd"] is not None]
    cost = f"{len(calls)} LLM calls, ${sum(known):.6f}"
    if len(known) < len(calls):
        cost += f" + {len(calls) - len(known)} of unknown cost"
    return cost


def _outcome(prompt: Mapping[str, Any], run: Mapping[str, Any]) -> str:
    decision, patch = prompt["decision"], prompt["patch"]
    if decision == "optimized" and patch is not None:
        made_by = [prompt["final_version_strategy"] or ""]
        if prompt["final_version_run_id"] not in (None, run["run_id"]):
            made_by.append(f"made by run {str(prompt['final_version_run_id'])[:8]}")
        if run["status"] != "completed":
            made_by.append(f"not written: the run {run['status']}")
        note = ", ".join(filter(None, made_by))
        return f"optimized -> version {patch['version']}" + (f" ({note})" if note else "")
    if decision == "skipped":
        return f"skipped: {prompt['triage_reason'] or 'no reason recorded'}"
    if decision == "kept":
        return "kept: no candidate was accepted"
    if run["status"] == "running":
        return "none yet: the run is still going"
    return f"none: the run {run['status']} before this prompt's verdict"
