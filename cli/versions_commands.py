"""``autoopt versions``: the history of one prompt, and rollback."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from autoopt.cli.context import CliState, pass_state
from autoopt.cli.output import emit, format_option, format_time

if TYPE_CHECKING:
    from autoopt.domain.models import PromptVersion

COLUMNS = ("version", "kind", "overall", "clarity", "efficiency", "strategy", "created_at", "note")


def version_row(version: PromptVersion) -> dict[str, Any]:
    scores = version.scores
    return {
        "version": version.version,
        "kind": version.kind,
        "overall": scores.overall if scores else None,
        "clarity": scores.clarity if scores else None,
        "efficiency": scores.efficiency if scores else None,
        "strategy": version.strategy,
        "created_at": format_time(version.created_at),
        "note": version.note,
    }


@click.group("versions")
def versions_group() -> None:
    """Show, compare and roll back the stored versions of a prompt.

    \b
    Examples:
      autoopt versions list 'wf-1/1711528915811/prompt_template/0/text'
      autoopt versions diff PROMPT 1 3
      autoopt versions rollback PROMPT 1
    """


@versions_group.command("list")
@click.argument("prompt_id")
@click.option("--limit", type=click.IntRange(min=1), help="At most N versions, newest first.")
@click.option("--offset", type=click.IntRange(min=0), default=0, help="Skip the newest N.")
@format_option
@pass_state
def list_versions(
    state: CliState, prompt_id: str, limit: int | None, offset: int, fmt: str
) -> None:
    """List a prompt's versions, newest first.

    \b
    Example:
      autoopt versions list 'Support Bot/1732000000003/prompt_template/0/text'
    """
    history = state.container().versions.get_version_history(prompt_id, limit, offset)
    if not history and offset == 0:
        from autoopt.domain.errors import NotFoundError

        raise NotFoundError(f"no versions of prompt {prompt_id!r}")
    emit([version_row(v) for v in history], COLUMNS, fmt)


@versions_group.command("show")
@click.argument("prompt_id")
@click.argument("version", type=click.IntRange(min=1))
@pass_state
def show(state: CliState, prompt_id: str, version: int) -> None:
    """Print one version's text (its details go to stderr).

    \b
    Example:
      autoopt versions show 'Support Bot/1732000000003/prompt_template/0/text' 2 > prompt.txt
    """
    found = state.container().versions.get_version(prompt_id, version)
    row = version_row(found)
    details = ", ".join(f"{k}={v}" for k, v in row.items() if v not in (None, ""))
    click.echo(f"# {prompt_id} {details}", err=True)
    click.echo(found.text)


@versions_group.command("diff")
@click.argument("prompt_id")
@click.argument("old", type=click.IntRange(min=1))
@click.argument("new", type=click.IntRange(min=1))
@pass_state
def diff(state: CliState, prompt_id: str, old: int, new: int) -> None:
    """Show a unified diff between two versions, and their score changes.

    \b
    Example:
      autoopt versions diff 'Support Bot/1732000000003/prompt_template/0/text' 1 2
    """
    comparison = state.container().versions.compare_versions(prompt_id, old, new)
    if comparison.score_deltas is not None:
        deltas = ", ".join(f"{k} {v:+g}" for k, v in comparison.score_deltas.items())
        click.echo(f"# scores: {deltas}")
    click.echo(comparison.diff, nl=False)


@versions_group.command("rollback")
@click.argument("prompt_id")
@click.argument("version", type=click.IntRange(min=1))
@click.option("--reason", default="", help="Why; recorded in the VersionRolledBack event.")
@pass_state
def rollback(state: CliState, prompt_id: str, version: int, reason: str) -> None:
    """Make an earlier version's text the latest again, as a new version.

    \b
    Example:
      autoopt versions rollback 'Support Bot/1732000000003/prompt_template/0/text' 1
    """
    created = state.container().versions.rollback(prompt_id, version, reason=reason)
    click.echo(f"{prompt_id}: version {created.version} restores version {version}")
