"""``autoopt db``: the schema revision of the database."""

from __future__ import annotations

import click

from autoopt.cli.context import CliState, pass_state


@click.group("db")
def db() -> None:
    """Create, migrate and check the database schema.

    \b
    Examples:
      autoopt db upgrade
      autoopt db check
    """


@db.command("upgrade")
@pass_state
def upgrade(state: CliState) -> None:
    """Migrate the database to the newest schema (creating it if needed).

    \b
    Examples:
      autoopt db upgrade
      autoopt --database-url postgresql+psycopg://user@db/autoopt db upgrade
    """
    from autoopt.infrastructure.db import create_db_engine, upgrade_to_head
    from autoopt.infrastructure.settings import describe_url

    settings = state.settings().database
    before, after = upgrade_to_head(create_db_engine(settings))
    where = describe_url(settings.url)
    if before == after:
        click.echo(f"{where} is already at revision {after} (head)")
    else:
        click.echo(f"Upgraded {where} from {before or 'an empty database'} to {after} (head)")


@db.command("current")
@pass_state
def current(state: CliState) -> None:
    """Print the database's schema revision, or 'none' for an empty database.

    \b
    Example:
      autoopt db current
    """
    from autoopt.infrastructure.db import create_db_engine, current_revision, head_revision

    revision, _empty = current_revision(create_db_engine(state.settings().database))
    head = head_revision()
    if revision is None:
        click.echo(f"none (head is {head})")
    elif revision == head:
        click.echo(f"{revision} (head)")
    else:
        click.echo(f"{revision} (head is {head})")


@db.command("check")
@pass_state
def check(state: CliState) -> None:
    """Exit 0 if the database is at the newest schema, 1 with the fix if not.

    \b
    Example:
      autoopt db check || autoopt db upgrade
    """
    from autoopt.domain.errors import SchemaVersionError
    from autoopt.infrastructure.db import (
        check_revision,
        create_db_engine,
        current_revision,
    )
    from autoopt.infrastructure.settings import describe_url

    settings = state.settings().database
    engine = create_db_engine(settings)
    revision, empty = current_revision(engine)
    if empty:
        raise SchemaVersionError("the database is empty, run 'autoopt db upgrade'")
    check_revision(engine, revision)
    click.echo(f"{describe_url(settings.url)} is at revision {revision} (head)")
