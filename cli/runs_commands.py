"""``autoopt runs``: the runs recorded in the log, read from the ``runs`` read model."""

from __future__ import annotations

from typing import Any

import click

from autoopt.cli.context import CliState, pass_state
from autoopt.cli.output import emit, format_option, format_time

LIST_COLUMNS = (
    "run_id",
    "workflow_id",
    "status",
    "started_at",
    "prompts_found",
    "prompts_optimized",
    "versions_created",
)


@click.group("runs")
def runs_group() -> None:
    """The optimization runs recorded in the event log.

    \b
    Examples:
      autoopt runs list
      autoopt runs show 5805acc6-34ab-4574-99bd-0f5c7a2266a7
    """


@runs_group.command("list")
@click.option("--limit", type=click.IntRange(min=1), help="Only the newest N runs.")
@format_option
@pass_state
def list_runs(state: CliState, limit: int | None, fmt: str) -> None:
    """List runs, newest first.

    \b
    Example:
      autoopt runs list --limit 10
    """
    rows = _runs(state, limit)
    emit(rows, LIST_COLUMNS, fmt)


@runs_group.command("show")
@click.argument("run_id")
@format_option
@pass_state
def show(state: CliState, run_id: str, fmt: str) -> None:
    """Everything the log says about one run (a unique prefix of its id will do).

    \b
    Example:
      autoopt runs show 5805acc6
    """
    run = resolve_run(state, run_id)
    emit([{"field": k, "value": v} for k, v in run.items()], ("field", "value"), fmt)


def resolve_run(state: CliState, prefix: str) -> dict[str, Any]:
    """The ``runs`` row whose id starts with ``prefix``; exactly one must."""
    from autoopt.domain.errors import NotFoundError

    matches = [r for r in _runs(state, None) if str(r["run_id"]).startswith(prefix)]
    if len(matches) != 1:
        problem = "no run" if not matches else f"{len(matches)} runs"
        raise NotFoundError(f"{problem} with an id starting {prefix!r}")
    return matches[0]


def _runs(state: CliState, limit: int | None) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from autoopt.infrastructure.projections.tables import runs

    container = state.container()
    container.projections.catch_up()
    query = select(runs).order_by(runs.c.started_at.desc(), runs.c.run_id)
    if limit is not None:
        query = query.limit(limit)
    with container.engine.connect() as conn:
        rows = [dict(row._mapping) for row in conn.execute(query)]
    for row in rows:
        for key in ("started_at", "finished_at"):
            if row[key] is not None:
                row[key] = format_time(row[key])
    return rows


def _register_subcommands() -> None:
    # Long commands get modules of their own; registered here so the group stays whole.
    from autoopt.cli.runs_compare import compare
    from autoopt.cli.runs_replay import replay

    runs_group.add_command(replay)
    runs_group.add_command(compare)


_register_subcommands()
