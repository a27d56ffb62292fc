"""``autoopt prompts`` and ``autoopt patches``: a Dify app's prompts, and patching them."""

from __future__ import annotations

from pathlib import Path

import click

from autoopt.cli.context import CliState, pass_state
from autoopt.cli.output import emit, format_option

PROMPT_COLUMNS = (
    "prompt_id",
    "node_id",
    "node_title",
    "node_type",
    "field_path",
    "role",
    "edition",
    "characters",
    "variables",
    "empty",
)
# Plain paths: a missing file or a folder is reported by the reader as one
# "Error: <file>: ..." line with exit 1, like any other bad input.
APP_FILE = click.Path(path_type=Path)


@click.group("prompts")
def prompts_group() -> None:
    """Find the prompts in a Dify app export.

    \b
    Example:
      autoopt prompts list my_app.yml --format json
    """


@prompts_group.command("list")
@click.argument("app_file", type=APP_FILE)
@format_option
@pass_state
def list_prompts(state: CliState, app_file: Path, fmt: str) -> None:
    """List every prompt-bearing field of APP_FILE, one row per prompt.

    \b
    Example:
      autoopt prompts list examples/support_bot.yml --format csv
    """
    from autoopt.domain.dsl import extract_prompts
    from autoopt.infrastructure.dsl_files import read_app

    app = read_app(app_file, state.settings().dsl.max_bytes)
    rows = [
        {
            "prompt_id": p.prompt_id,
            "node_id": p.node_id,
            "node_title": p.node_title,
            "node_type": p.node_type,
            "field_path": p.field_path,
            "role": p.role,
            "edition": p.edition,
            "characters": len(p.text),
            "variables": list(p.variables),
            "empty": p.empty,
        }
        for p in extract_prompts(app)
    ]
    emit(rows, PROMPT_COLUMNS, fmt)


@click.group("patches")
def patches_group() -> None:
    """Apply prompt patches to a Dify app export.

    \b
    Example:
      autoopt patches apply my_app.yml patches.json --out my_app.patched.yml
    """


@patches_group.command("apply")
@click.argument("app_file", type=APP_FILE)
@click.argument("patches_file", type=APP_FILE)
@click.option(
    "--out",
    "out_file",
    type=APP_FILE,
    required=True,
    help="Where to write the patched app (written atomically).",
)
@click.option(
    "--overwrite-input",
    is_flag=True,
    help="Let --out name APP_FILE itself; without it that is refused.",
)
@pass_state
def apply(
    state: CliState, app_file: Path, patches_file: Path, out_file: Path, overwrite_input: bool
) -> None:
    """Apply the patches in PATCHES_FILE (a JSON list) to APP_FILE.

    Each patch: {"workflow_id", "node_id", "selector_type": "by_id"|"by_path",
    "selector_value", "strategy": "replace"|"prepend"|"append"|"template",
    "content", "if_missing": "skip"|"error"}.

    \b
    Example:
      autoopt patches apply app.yml patches.json --out app.patched.yml
    """
    from autoopt.domain.patching import apply_patches
    from autoopt.infrastructure.dsl_files import read_app, refuse_overwriting_input, write_app
    from autoopt.infrastructure.patch_files import read_patches

    if not overwrite_input:
        refuse_overwriting_input(out_file, app_file)
    app = read_app(app_file, state.settings().dsl.max_bytes)
    outcome = apply_patches(app, read_patches(patches_file))
    write_app(out_file, outcome.document)
    for number, result in enumerate(outcome.results, start=1):
        if result.status == "applied":
            click.echo(f"patch {number}: applied to {result.document_path}")
        else:
            click.echo(f"patch {number}: skipped ({result.reason})")
    click.echo(f"Wrote {out_file}: {len(outcome.applied)} of {len(outcome.results)} applied")
