"""``autoopt projections``: the read models' checkpoints, catch-up and rebuild."""

from __future__ import annotations

import click

from autoopt.cli.context import CliState, pass_state
from autoopt.cli.output import emit, format_option


@click.group("projections")
def projections_group() -> None:
    """The SQL read models built from the event log.

    \b
    Examples:
      autoopt projections status
      autoopt projections rebuild
    """


@projections_group.command("status")
@format_option
@pass_state
def status(state: CliState, fmt: str) -> None:
    """Each projection's checkpoint, the log's last position, and the lag.

    \b
    Example:
      autoopt projections status
    """
    rows = [
        {"projection": s.name, "checkpoint": s.checkpoint, "head": s.head, "lag": s.lag}
        for s in state.container().projections.status()
    ]
    emit(rows, ("projection", "checkpoint", "head", "lag"), fmt)


@projections_group.command("catch-up")
@pass_state
def catch_up(state: CliState) -> None:
    """Apply the events past each checkpoint.

    \b
    Example:
      autoopt projections catch-up
    """
    applied = state.container().projections.catch_up()
    for name, count in applied.items():
        click.echo(f"{name}: {count} event(s) applied")


@projections_group.command("rebuild")
@pass_state
def rebuild(state: CliState) -> None:
    """Replay the whole log into every read model; readers see the old rows until done.

    \b
    Example:
      autoopt projections rebuild
    """
    applied = state.container().projections.rebuild()
    for name, count in applied.items():
        click.echo(f"{name}: rebuilt from {count} event(s)")
