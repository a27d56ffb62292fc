"""``autoopt report html``: one run as a single self-contained HTML page.

The page shows what ``autoopt runs audit`` shows, from the same document, plus
each optimized prompt's before and after side by side.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from autoopt.cli.context import CliState, pass_state
from autoopt.cli.runs_audit import audit_document, read_run
from autoopt.cli.runs_commands import resolve_run


@click.command("html")
@click.argument("run_id", metavar="RUN")
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the page (written atomically).",
)
@click.option("--force", is_flag=True, help="Replace the file at --out if there is one.")
@pass_state
def report_html(state: CliState, run_id: str, out_file: Path, force: bool) -> None:
    """Write RUN (a unique prefix of its id will do) as one HTML page.

    The page holds the run summary, per prompt its scores, issues, every round
    with its decision and reason, LLM calls and cost, and a side-by-side diff
    of each optimized prompt. It needs no network: no scripts, no fonts, no
    external URLs, and a Content-Security-Policy that would stop them anyway.
    An existing file is left alone unless --force is given.

    \b
    Examples:
      autoopt report html 5805acc6 --out report.html
      autoopt report html 5805acc6 --out report.html --force
    """
    from autoopt.infrastructure.html_report import render_report

    # Before any reading: a refusal should not wait on catching the projections up.
    if not force and out_file.exists():
        raise click.ClickException(_exists(out_file))
    run = resolve_run(state, run_id)
    run_id = str(run["run_id"])
    document = audit_document(run, read_run(state, run_id))
    page = render_report(document, _extracted_texts(state, run_id))
    _write(out_file, page.encode("utf-8"), replace=force)
    click.echo(f"Wrote {out_file}")


def _extracted_texts(state: CliState, run_id: str) -> dict[str, str]:
    """Each prompt's text as the run found it, by prompt id.

    The read models hold no prompt text (``prompts`` has no text column, and
    ``patches`` has texts only for the optimized prompts), yet the page shows
    every prompt: the run's own ``PromptExtracted`` events are where the
    originals are recorded. One stream, so this stays a single indexed query.
    """
    from autoopt.domain.events import PromptExtracted

    records = state.container().event_log.read_stream(f"run-{run_id}")
    return {
        r.event.prompt_id: r.event.text for r in records if isinstance(r.event, PromptExtracted)
    }


def _write(target: Path, data: bytes, *, replace: bool) -> None:
    try:
        if replace:
            from autoopt.infrastructure.storage.atomic import write_atomic

            write_atomic(target, data)
        else:
            _write_new(target, data)
    except FileExistsError as exc:
        raise click.ClickException(_exists(target)) from exc
    except OSError as exc:
        raise click.ClickException(f"{target}: cannot write ({exc.strerror})") from exc


def _write_new(target: Path, data: bytes) -> None:
    """Write ``target`` atomically, failing if it exists by then.

    The check before rendering leaves a window in which another process may
    create the file; a hard link, unlike a rename, never replaces what is there.
    """
    from autoopt.infrastructure.storage.atomic import fsync_dir, temp_name, write_atomic

    staged = temp_name(target)
    write_atomic(staged, data)
    try:
        try:
            os.link(staged, target)
        except FileExistsError:
            raise
        except OSError:
            # A file system without hard links: the earlier check is the best there is.
            if target.exists():
                raise FileExistsError(target) from None
            os.replace(staged, target)
    finally:
        staged.unlink(missing_ok=True)
    fsync_dir(target.parent)


def _exists(target: Path) -> str:
    return f"{target} exists; pass --force to replace it"
