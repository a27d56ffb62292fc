"""The ``autoopt`` command group, its global options, and the error edge.

Expected failures (any ``OptimizerError``) become one ``Error: ...`` line and
exit code 1 here, and only here; usage errors are click's own (exit 2).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from autoopt.cli.context import CliState, configure_logging
from autoopt.cli.db_commands import db
from autoopt.cli.dsl_commands import patches_group, prompts_group
from autoopt.cli.events_commands import events_group
from autoopt.cli.llm_commands import llm_group
from autoopt.cli.maintenance_commands import fsck, storage_group
from autoopt.cli.optimize_command import optimize
from autoopt.cli.output import one_line
from autoopt.cli.projections_commands import projections_group
from autoopt.cli.report_commands import report_group
from autoopt.cli.report_html import report_html
from autoopt.cli.runs_audit import audit
from autoopt.cli.runs_commands import runs_group
from autoopt.cli.sql_command import sql
from autoopt.cli.versions_commands import versions_group
from autoopt.domain.errors import OptimizerError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
DISTRIBUTION = "dify-autoopt"  # the project name in pyproject.toml; --version prints its version


def installed_version(distribution: str = DISTRIBUTION) -> str:
    """The installed distribution's version, as ``importlib.metadata.version`` gives it.

    Read from the ``Version:`` header of the ``METADATA`` file in the first
    matching ``*.dist-info`` folder on ``sys.path``, which is where
    importlib.metadata reads it from, because importing importlib.metadata
    (email, zipfile, csv, ...) took ~27 ms, more than the rest of ``--version``
    beyond ``import click``. Anything else (an egg-info, a zipped path entry, no
    folder found) is left to importlib.metadata itself.
    """
    prefix = distribution.replace("-", "_").replace(".", "_").lower() + "-"
    for entry in sys.path:
        folder = entry or "."
        try:
            names = os.listdir(folder)
        except OSError:  # zip files, path hook entries, folders that are gone
            continue
        found = next(
            (n for n in names if n.lower().startswith(prefix) and n.endswith(".dist-info")), None
        )
        if found is not None:
            version = _metadata_version(os.path.join(folder, found, "METADATA"))
            if version is not None:
                return version
            break  # an unreadable dist-info: importlib.metadata has the last word
    from importlib.metadata import version as metadata_version

    return metadata_version(distribution)


def _metadata_version(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as metadata:
            for line in metadata:
                if not line.strip():
                    return None  # the headers end at the first blank line
                if line.startswith("Version:"):
                    return line.removeprefix("Version:").strip()
    except OSError:
        return None
    return None


def print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """What ``click.version_option(package_name=...)`` prints, without its metadata import."""
    if not value or ctx.resilient_parsing:
        return
    click.echo(f"autoopt, version {installed_version()}", color=ctx.color)
    ctx.exit()


class AutooptGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            try:
                return super().invoke(ctx)
            finally:
                # Every command that appended events leaves the read models current,
                # also when it ends in an error after appending (RunFailed, exit 1).
                if isinstance(ctx.obj, CliState):
                    ctx.obj.catch_up()
        except OptimizerError as exc:
            raise click.ClickException(one_line(str(exc))) from exc


@click.group(cls=AutooptGroup, context_settings=CONTEXT_SETTINGS)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=print_version,
    help="Show the version and exit.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Settings file (YAML, root key 'optimizer:'). Default: ./autoopt.yaml if present.",
)
@click.option(
    "--database-url",
    help="Database URL; overrides the settings file and $OPTIMIZER_DATABASE_URL.",
)
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-vv for debug).")
@click.pass_context
def cli(
    ctx: click.Context, config_file: Path | None, database_url: str | None, verbose: int
) -> None:
    """autoopt: optimize the prompts of Dify apps, with an auditable event log.

    \b
    Examples:
      autoopt db upgrade
      autoopt events list --format json
    """
    from autoopt.infrastructure.settings import Override

    overrides = []
    if database_url is not None:
        overrides.append(Override(("database", "url"), database_url, "--database-url"))
    ctx.obj = CliState(config_file=config_file, overrides=overrides, verbosity=verbose)
    ctx.call_on_close(ctx.obj.close)
    configure_logging({0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG))


cli.add_command(db)
cli.add_command(events_group)
cli.add_command(versions_group)
cli.add_command(storage_group)
cli.add_command(fsck)
cli.add_command(prompts_group)
cli.add_command(patches_group)
cli.add_command(optimize)
cli.add_command(llm_group)
cli.add_command(projections_group)
cli.add_command(runs_group)
cli.add_command(report_group)
cli.add_command(sql)
runs_group.add_command(audit)
report_group.add_command(report_html)


def main() -> None:
    cli(prog_name="autoopt")


if __name__ == "__main__":
    main()
