"""``autoopt db``: exact output for a new, a current, an old and a foreign database."""

from __future__ import annotations

from alembic import command

from autoopt.infrastructure.db import alembic_config, create_db_engine, head_revision
from autoopt.infrastructure.settings import DatabaseSettings
from tests.e2e.conftest import Invoke

HEAD = head_revision()


def test_db_current_on_an_empty_database(autoopt: Invoke) -> None:
    result = autoopt("db", "current")
    assert (result.exit_code, result.stdout) == (0, f"none (head is {HEAD})\n")


def test_db_upgrade_then_current_then_check(autoopt: Invoke) -> None:
    first = autoopt("db", "upgrade")
    assert first.exit_code == 0
    assert first.stdout == f"Upgraded {autoopt.url} from an empty database to {HEAD} (head)\n"

    again = autoopt("db", "upgrade")
    assert again.stdout == f"{autoopt.url} is already at revision {HEAD} (head)\n"

    assert autoopt("db", "current").stdout == f"{HEAD} (head)\n"
    check = autoopt("db", "check")
    assert (check.exit_code, check.stdout) == (0, f"{autoopt.url} is at revision {HEAD} (head)\n")


def test_db_check_on_an_empty_database_fails_with_the_fix(autoopt: Invoke) -> None:
    result = autoopt("db", "check")
    assert result.exit_code == 1
    assert result.stderr == "Error: the database is empty, run 'autoopt db upgrade'\n"


def test_an_old_database_is_reported_then_upgraded(autoopt: Invoke) -> None:
    engine = create_db_engine(DatabaseSettings(url=autoopt.url))
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0001")

    assert autoopt("db", "current").stdout == f"0001 (head is {HEAD})\n"
    for args in (("db", "check"), ("events", "list")):
        result = autoopt(*args)
        assert result.exit_code == 1
        assert result.stderr == "Error: database is at revision 0001, run 'autoopt db upgrade'\n"

    upgraded = autoopt("db", "upgrade")
    assert upgraded.stdout == f"Upgraded {autoopt.url} from 0001 to {HEAD} (head)\n"
    assert autoopt("events", "list", "--format", "json").stdout == "[]\n"


def test_a_file_that_is_not_a_database(autoopt: Invoke) -> None:
    autoopt.db_file.write_text("not a database, just notes\n" * 200)
    for args in (("db", "current"), ("db", "upgrade"), ("events", "list")):
        result = autoopt(*args)
        assert result.exit_code == 1, args
        assert result.stderr == f"Error: {autoopt.url}: the file is not a SQLite database\n"
    assert autoopt.db_file.read_text() == "not a database, just notes\n" * 200


def test_database_url_flag_beats_the_environment(autoopt: Invoke) -> None:
    other = autoopt.workdir / "other.db"
    result = autoopt("--database-url", f"sqlite:///{other}", "db", "upgrade")
    assert result.stdout == f"Upgraded sqlite:///{other} from an empty database to {HEAD} (head)\n"
    assert other.is_file() and not autoopt.db_file.exists()


def test_a_password_in_the_url_is_never_printed(autoopt: Invoke) -> None:
    result = autoopt(
        "--database-url", "postgresql+psycopg://u:hunter2@127.0.0.1:1/none", "db", "current"
    )
    assert result.exit_code == 1
    assert "hunter2" not in result.output
    assert result.stderr.startswith("Error: postgresql+psycopg://u:***@127.0.0.1:1/none: ")
