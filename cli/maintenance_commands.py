"""``autoopt storage`` and ``autoopt fsck``: the version store's health."""

from __future__ import annotations

import click

from autoopt.cli.context import CliState, pass_state
from autoopt.cli.output import emit, format_option


@click.group("storage")
def storage_group() -> None:
    """Inspect and maintain the prompt version store.

    \b
    Examples:
      autoopt storage stats
      autoopt storage verify
    """


@storage_group.command("stats")
@format_option
@pass_state
def stats(state: CliState, fmt: str) -> None:
    """Counts, size and cache figures of the version store.

    \b
    Example:
      autoopt storage stats --format json
    """
    figures = state.container().storage.get_storage_stats()
    emit([{"figure": k, "value": v} for k, v in figures.items()], ("figure", "value"), fmt)


@storage_group.command("verify")
@pass_state
def verify(state: CliState) -> None:
    """Check every version file and the index; exit 1 naming each problem.

    \b
    Example:
      autoopt storage verify
    """
    problems = state.container().storage.verify()
    for line in problems:
        click.echo(line)
    if problems:
        raise click.ClickException(f"{len(problems)} problem(s) in the version store")
    click.echo("ok")


@storage_group.command("reindex")
@pass_state
def reindex(state: CliState) -> None:
    """Rebuild index.json from the version files (the file store only).

    \b
    Example:
      autoopt storage reindex
    """
    from autoopt.infrastructure.storage import FileSystemStorage

    storage = state.container().storage
    if not isinstance(storage, FileSystemStorage):
        # Its prompt_heads rows are written in each save's transaction: nothing to rebuild.
        raise click.ClickException(
            "storage reindex applies to the file store only (storage.backend is 'database')"
        )
    count = storage.rebuild_index()
    click.echo(f"index.json rebuilt: {count} prompt(s)")


@click.command("fsck")
@click.option("--repair", is_flag=True, help="Fix what can be fixed without guessing.")
@pass_state
def fsck(state: CliState, repair: bool) -> None:
    """Check that version files, the index, the event log and the read models agree.

    \b
    Exit 0 when they agree, 1 with one line per disagreement otherwise.
    Example:
      autoopt fsck --repair
    """
    from autoopt.infrastructure import fsck as checker

    container = state.container()
    if repair:
        for line in checker.repair(container.storage, container.versions, container.projections):
            click.echo(f"repaired: {line}")
    findings = checker.check(container.storage, container.event_log, container.projections)
    for finding in findings:
        click.echo(f"{finding.subject}: {finding.problem}")
    if findings:
        raise click.ClickException(f"{len(findings)} disagreement(s)")
    click.echo("ok")


@storage_group.command("cleanup")
@click.option(
    "--keep",
    type=click.IntRange(min=1),
    required=True,
    help="Versions to keep per prompt (newest first); latest and best always stay.",
)
@format_option
@pass_state
def cleanup(state: CliState, keep: int, fmt: str) -> None:
    """Remove old version files; the events that record them stay.

    \b
    Example:
      autoopt storage cleanup --keep 5
    """
    container = state.container()
    rows = []
    for prompt_id in container.storage.list_prompts():
        removed = container.versions.prune(prompt_id, keep)
        if removed:
            rows.append({"prompt_id": prompt_id, "removed": " ".join(map(str, removed))})
    emit(rows, ("prompt_id", "removed"), fmt)
