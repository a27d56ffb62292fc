"""``autoopt report``: answers for admins and auditors, from the read models.

Every report reads one of the SQL views of migration 0006 (``v_*``, listed in
the README), so what it prints is what ``SELECT * FROM v_...`` returns. Tables
are for people: rates as percentages with one decimal, mean gains as signed
score points with one decimal, confidences with three decimals, costs in
dollars with six; JSON and CSV carry the same figures as plain numbers.

An unknown price is never a zero cost: a group with calls of unknown price
shows "unknown" (all of them) or "$x + unknown" (some), and its JSON
``cost_usd`` is null while ``known_cost_usd`` holds the part that is known.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from autoopt.cli.context import CliState, pass_state
from autoopt.cli.output import document_format_option, emit, format_option, format_time

if TYPE_CHECKING:
    from autoopt.infrastructure.reporting import Reports, ViewRows

STRATEGY_HEADERS: tuple[str, ...] = ("strategy", "runs", "tried", "accepted", "rate")
STRATEGY_HEADERS += ("mean gain", "mean confidence", "llm calls", "cost")
COST_KEYS = {
    "run": ("run_id", "app_name", "started_at", "model"),
    "day": ("day", "runs"),
    "model": ("model", "runs"),
}
COST_HEADERS = ("calls", "cached", "prompt tokens", "completion tokens", "cost")
TOTALLED = ("calls", "cached_calls", "prompt_tokens", "completion_tokens", "known_cost_usd")
RUN_HEADERS: tuple[str, ...] = ("run", "app", "status", "started", "prompts", "optimized")
RUN_HEADERS += ("rounds", "accepted", "rate", "llm calls", "cost")
# Places kept in JSON and CSV: costs as the price table rounds them, the rest
# well past what a table shows.
PLACES = {"cost_usd": 8, "known_cost_usd": 8}
DEFAULT_PLACES = 4
BAR_WIDTH = 50


@click.group("report")
def report_group() -> None:
    """Reports over every recorded run, read from the SQL read models.

    \b
    Examples:
      autoopt report strategies
      autoopt report costs --by day --format csv
      autoopt report html 5805acc6 --out report.html
    """


@report_group.command("strategies")
@format_option
@pass_state
def strategies(state: CliState, fmt: str) -> None:
    """How well each strategy did, over every run.

    View v_strategy_effectiveness. Rate is accepted / tried; mean gain is
    the mean score gain (after - before) of the accepted rounds; mean
    confidence is over every round. A row "llm_guided->structure_focus"
    holds the rounds in which the LLM strategy fell back to its rule: the
    rule made the candidate, the LLM call (if one was made) is counted and
    costed there.

    \b
    Examples:
      autoopt report strategies
      autoopt report strategies --format json
    """
    view = _reports(state).view("v_strategy_effectiveness")
    rows = view.rows
    if fmt != "table":
        _emit_plain(view, fmt)
        return
    table = [
        {
            "strategy": r["strategy"],
            "runs": r["runs"],
            "tried": r["tried"],
            "accepted": r["accepted"],
            "rate": _rate(r["acceptance_rate"]),
            "mean gain": _gain(r["mean_improvement"]),
            "mean confidence": f"{r['mean_confidence']:.3f}",
            "llm calls": r["llm_calls"],
            "cost": _cost(r, r["llm_calls"]),
        }
        for r in rows
    ]
    emit(table, STRATEGY_HEADERS, fmt)
    if rows:
        click.echo(
            "\nrate: accepted / tried; mean gain: mean score gain of the accepted rounds;\n"
            "a->b: rounds in which the LLM strategy a fell back to the rule b."
        )


@report_group.command("costs")
@click.option(
    "--by",
    type=click.Choice(["run", "day", "model"]),
    default="run",
    show_default=True,
    help="One row per run, per calendar day (UTC) of the calls, or per model.",
)
@format_option
@pass_state
def costs(state: CliState, by: str, fmt: str) -> None:
    """LLM calls, cached calls, tokens and dollars.

    Views v_run_costs (every run, with or without calls), v_daily_costs and
    v_model_costs. A cached call costs nothing; a call to a model without a
    price makes the cost "unknown" ("$x + unknown" when only some are). The
    table closes with a total line; JSON and CSV hold the rows only.

    \b
    Examples:
      autoopt report costs
      autoopt report costs --by day
      autoopt report costs --by model --format csv
    """
    from autoopt.infrastructure.reporting import COSTS_BY

    view = _reports(state).view(COSTS_BY[by])
    rows, keys = view.rows, COST_KEYS[by]
    if fmt != "table":
        _emit_plain(view, fmt)
        return
    labels = {"run_id": "run", "app_name": "app", "started_at": "started"}
    headers = tuple(labels.get(k, k) for k in keys) + COST_HEADERS
    table = [
        {
            **{labels.get(k, k): _text(r[k]) for k in keys},
            **_cost_cells(r),
        }
        for r in rows
    ]
    if rows:
        total = {name: sum(r[name] for r in rows) for name in (*TOTALLED, "unknown_cost_calls")}
        table.append({headers[0]: "total", **_cost_cells(total)})
    emit(table, headers, fmt)


def _cost_cells(figures: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "calls": figures["calls"],
        "cached": figures["cached_calls"],
        "prompt tokens": figures["prompt_tokens"],
        "completion tokens": figures["completion_tokens"],
        "cost": _cost(figures, figures["calls"]),
    }


@report_group.command("runs")
@format_option
@pass_state
def runs(state: CliState, fmt: str) -> None:
    """Each run's outcome and LLM cost, oldest first.

    View v_run_outcomes: prompts found and optimized, rounds tried and accepted (rate: accepted /
    rounds), LLM calls and their cost. "-" stands for a figure the run never
    recorded (it failed or is still going) and for the cost of a run without
    LLM calls.

    \b
    Examples:
      autoopt report runs
      autoopt report runs --format json
    """
    view = _reports(state).view("v_run_outcomes")
    if fmt != "table":
        _emit_plain(view, fmt)
        return
    table = [
        {
            "run": r["run_id"],
            "app": r["app_name"],
            "status": r["status"],
            "started": format_time(r["started_at"]),
            "prompts": _text(r["prompts_found"]),
            "optimized": _text(r["prompts_optimized"]),
            "rounds": r["rounds"],
            "accepted": r["accepted"],
            "rate": _rate(r["acceptance_rate"]),
            "llm calls": r["llm_calls"],
            "cost": _cost(r, r["llm_calls"]),
        }
        for r in view.rows
    ]
    emit(table, RUN_HEADERS, fmt)


@report_group.command("confidence")
@format_option
@pass_state
def confidence(state: CliState, fmt: str) -> None:
    """Confidence of accepted and rejected rounds.

    A histogram over every round: ten buckets of 0.1 (view
    v_confidence_histogram; each holds its lower bound, the last one 1.0
    too). The table draws one "#" per accepted and one "." per rejected
    round, scaled down when a bucket holds more than fifty; JSON and CSV
    give the counts.

    \b
    Examples:
      autoopt report confidence
      autoopt report confidence --format json
    """
    view = _reports(state).view("v_confidence_histogram")
    rows = view.rows
    if fmt != "table":
        _emit_plain(view, fmt)
        return
    widest = max((r["accepted"] + r["rejected"] for r in rows), default=0)
    per_mark = max(1, math.ceil(widest / BAR_WIDTH))

    def marks(count: int) -> int:
        return math.ceil(count / per_mark)

    table = [
        {
            "confidence": r["bucket"],
            "accepted": r["accepted"],
            "rejected": r["rejected"],
            "rounds": "#" * marks(r["accepted"]) + "." * marks(r["rejected"]),
        }
        for r in rows
    ]
    emit(table, ("confidence", "accepted", "rejected", "rounds"), fmt)
    accepted = sum(r["accepted"] for r in rows)
    rejected = sum(r["rejected"] for r in rows)
    unit = "round" if per_mark == 1 else f"{per_mark} rounds (rounded up)"
    click.echo(
        f"\n{accepted + rejected} rounds: {accepted} accepted (#), {rejected} rejected (.); "
        f"one mark per {unit}."
    )


@report_group.command("cache")
@document_format_option
@pass_state
def cache(state: CliState, fmt: str) -> None:
    """The LLM response cache and the version store's LRU.

    The LLM side has two figures: the cache table itself (entries, live or
    expired, and how many answers it has served since each entry was stored;
    the same as 'autoopt llm cache stats') and the calls runs recorded, with
    the share answered from the cache (view v_llm_cache_use). The version
    store's LRU lives inside each autoopt process and its counters end with
    the process: its size is shown, a hit rate is not recorded anywhere.

    \b
    Examples:
      autoopt report cache
      autoopt report cache --format json
    """
    container = state.container()
    document = _reports(state).cache(container.llm_cache, container.storage)
    document["llm_calls"] = _plain_row(document["llm_calls"])
    if fmt == "json":
        click.echo(json.dumps(document, indent=2))
        return
    entries, use, store = document["llm_cache"], document["llm_calls"], document["storage"]
    lru = f"{store['lru_size']} versions per process" if store["lru_size"] else "off"
    blocks = [
        (
            "llm cache (table llm_cache)",
            [
                (
                    "entries",
                    f"{entries['entries']} ({entries['live']} live, {entries['expired']} expired)",
                ),
                ("hits", f"{entries['hits']} (answers served from an entry since it was stored)"),
            ],
        ),
        (
            "llm calls (recorded by runs)",
            [
                ("calls", use["calls"]),
                ("cached", f"{use['cached_calls']} ({_rate(use['hit_rate'])})"),
            ],
        ),
        (
            "version store",
            [
                ("prompts", store["prompts"]),
                ("versions", store["versions"]),
                ("index", "on" if store["index"] else "off"),
                ("lru", lru),
                (
                    "hit rate",
                    "not recorded (each process has its own LRU; its counters end with it)",
                ),
            ],
        ),
    ]
    lines: list[str] = []
    for title, pairs in blocks:
        lines.append(title)
        lines.extend(f"  {label.ljust(9)}  {value}" for label, value in pairs)
    click.echo("\n".join(lines))


# --------------------------------------------------------------------------- #
# Shared
# --------------------------------------------------------------------------- #


def _reports(state: CliState) -> Reports:
    from autoopt.infrastructure.reporting import Reports

    container = state.container()
    return Reports(container.engine, container.projections)


def _emit_plain(view: ViewRows, fmt: str) -> None:
    """JSON and CSV: the view's own rows and columns."""
    emit([_plain_row(row) for row in view.rows], view.columns, fmt)


def _plain_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """Plain numbers, rounded; times in ISO 8601 UTC."""
    return {name: _round(name, value) for name, value in row.items()}


def _round(field: str, value: Any) -> Any:
    if isinstance(value, float):
        return round(value, PLACES.get(field, DEFAULT_PLACES))
    if isinstance(value, datetime):
        return format_time(value)
    return value


def _text(value: Any) -> str:
    if value is None:
        return "-"
    return format_time(value) if isinstance(value, datetime) else str(value)


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _gain(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f}"


def _cost(figures: Mapping[str, Any], calls: int) -> str:
    """Dollars of the calls; an unknown price stays unknown, whatever else is known."""
    if not calls:
        return "-"
    unknown = figures["unknown_cost_calls"]
    if unknown == calls:
        return "unknown"
    known = f"${figures['known_cost_usd']:.6f}"
    return f"{known} + unknown" if unknown else known
