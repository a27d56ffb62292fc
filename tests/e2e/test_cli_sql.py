"""``autoopt sql``: answers in every format, and writes refused with the database unchanged.

The database is one made by a real ``autoopt optimize`` run. "Unchanged" is
measured on the content SQLite keeps: the database file and its write-ahead log
(a missing log counts as an empty one), checkpointed before the first snapshot.
The ``-shm`` file is left out: it is the shared-memory index every reader of a
WAL database maps (and creates when missing), not data.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, text

from autoopt.domain.errors import StorageError
from autoopt.infrastructure.db import alembic_config, create_db_engine
from autoopt.infrastructure.read_only import run_query
from autoopt.infrastructure.settings import DatabaseSettings
from tests.conftest import REPO_ROOT
from tests.e2e.conftest import Invoke
from tests.postgres import ENV as POSTGRES_ENV
from tests.postgres import temporary_postgres_engine

EXAMPLE = REPO_ROOT / "examples" / "support_bot.yml"
RUNS_CSV = "status,prompts_found,prompts_optimized,app_name\ncompleted,9,2,Support Bot\n"
PROMPTS_CSV = """node_title,field_path
Route question,/instruction
Route question,/classes/0/name
Route question,/classes/1/name
Product answers,/prompt_template/0/text
Product answers,/memory/query_prompt_template
订单与退款,/prompt_template/0/text
订单与退款,/prompt_template/1/text
Order number,/instruction
Order number,/parameters/0/description
"""
RUNS_QUERY = "SELECT status, prompts_found, prompts_optimized, app_name FROM runs"
PROMPTS_QUERY = "SELECT node_title, field_path FROM prompts ORDER BY position"
READ_ONLY = "Error: autoopt sql is read-only: "


def optimized(invoke: Invoke) -> Invoke:
    app = invoke.workdir / "support_bot.yml"
    shutil.copy(EXAMPLE, app)
    result = invoke("optimize", str(app))
    assert result.exit_code == 0, result.output
    return invoke


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> Invoke:
    """One SQLite database from a real run, shared by the read-only tests of this module."""
    workdir = tmp_path_factory.mktemp("sql")
    invoke = optimized(Invoke(workdir / "cli.db", workdir))
    with sqlite3.connect(invoke.db_file) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return invoke


def content(db_file: Path) -> dict[str, str]:
    def digest(path: Path) -> str:
        return hashlib.sha256(path.read_bytes() if path.exists() else b"").hexdigest()

    return {"db": digest(db_file), "wal": digest(db_file.with_name(db_file.name + "-wal"))}


def files(folder: Path) -> set[str]:
    # A reader of a WAL database may create the -wal and -shm files; nothing else appears.
    return {p.name for p in folder.iterdir()} - {"cli.db-wal", "cli.db-shm"}


def test_a_select_over_runs_and_prompts_in_three_formats(populated: Invoke) -> None:
    csv = populated("sql", RUNS_QUERY, "--format", "csv")
    assert (csv.exit_code, csv.stdout, csv.stderr) == (0, RUNS_CSV, "")
    assert populated("sql", PROMPTS_QUERY, "--format", "csv").stdout == PROMPTS_CSV

    table = populated("sql", "SELECT status, prompts_found FROM runs")
    assert table.stdout == ("status     prompts_found\n---------  -------------\ncompleted  9\n")

    listed = json.loads(populated("runs", "list", "--format", "json").stdout)
    as_json = json.loads(
        populated(
            "sql", "SELECT run_id, status, prompts_found FROM runs", "--format", "json"
        ).stdout
    )
    assert as_json == [{"run_id": listed[0]["run_id"], "status": "completed", "prompts_found": 9}]


def test_a_select_on_the_event_log(populated: Invoke) -> None:
    query = "SELECT event_type, count(*) AS n FROM events GROUP BY event_type ORDER BY event_type"
    counts = {
        row["event_type"]: row["n"]
        for row in json.loads(populated("sql", query, "--format", "json").stdout)
    }
    assert (counts["RunStarted"], counts["PromptExtracted"], counts["RunCompleted"]) == (1, 9, 1)
    events = json.loads(populated("events", "list", "--format", "json").stdout)
    assert sum(counts.values()) == len(events)


def test_values_keep_their_meaning_in_every_format(populated: Invoke) -> None:
    query = "SELECT x'00ff' AS raw, 1.5 AS ratio, NULL AS missing, 'a,b \"c\"' AS words, 1 AS raw"
    csv = populated("sql", query, "--format", "csv")
    assert csv.stdout == 'raw,ratio,missing,words,raw_2\n00ff,1.5,,"a,b ""c""",1\n'
    assert json.loads(populated("sql", query, "--format", "json").stdout) == [
        {"raw": "00ff", "ratio": 1.5, "missing": None, "words": 'a,b "c"', "raw_2": 1}
    ]
    empty = populated("sql", "SELECT run_id FROM runs WHERE 0", "--format", "json")
    assert (empty.exit_code, empty.stdout) == (0, "[]\n")


def test_schema_questions_can_be_asked(populated: Invoke) -> None:
    shown = populated(
        "sql", "SELECT name FROM pragma_table_info('runs') LIMIT 2", "--format", "csv"
    )
    assert shown.stdout == "name\nrun_id\nworkflow_id\n"
    assert populated("sql", "PRAGMA user_version", "--format", "csv").stdout == "user_version\n0\n"


SQLITE_REFUSALS = [
    ("INSERT INTO runs (run_id) VALUES ('x')", "INSERT into runs is not allowed"),
    ("UPDATE runs SET status = 'failed'", "UPDATE of runs is not allowed"),
    ("DELETE FROM events", "DELETE from events is not allowed"),
    ("REPLACE INTO runs (run_id) VALUES ('x')", "INSERT into runs is not allowed"),
    ("DROP TABLE runs", "a schema change (DROP ...) is not allowed"),
    ("CREATE TABLE notes (x)", "a schema change (CREATE ...) is not allowed"),
    ("CREATE TEMP TABLE notes (x)", "a schema change (CREATE ...) is not allowed"),
    ("ALTER TABLE runs ADD COLUMN note TEXT", "ALTER TABLE runs is not allowed"),
    (
        "CREATE TRIGGER t AFTER INSERT ON runs BEGIN DELETE FROM events; END",
        "CREATE TRIGGER t is not allowed",
    ),
    ("ATTACH DATABASE '{dir}/attached.db' AS other", "ATTACH (or VACUUM) of '{dir}/attached.db'"),
    ("VACUUM", "VACUUM is not allowed"),
    ("VACUUM INTO '{dir}/copy.db'", "ATTACH (or VACUUM) of '{dir}/copy.db' is not allowed"),
    ("PRAGMA user_version = 5", "PRAGMA user_version=5 is not allowed"),
    ("PRAGMA journal_mode = DELETE", "PRAGMA journal_mode=DELETE is not allowed"),
    ("PRAGMA query_only = OFF", "PRAGMA query_only=OFF is not allowed"),
    ("PRAGMA writable_schema = ON", "PRAGMA writable_schema=ON is not allowed"),
    ("UPDATE sqlite_master SET sql = ''", "table sqlite_master may not be modified"),
    ("SELECT 1; DELETE FROM events", "it runs one statement at a time"),
    (
        "PRAGMA query_only = OFF; INSERT INTO runs (run_id) VALUES ('x')",
        "PRAGMA query_only=OFF is not allowed",
    ),
    (
        "WITH x AS (SELECT 'x') INSERT INTO runs (run_id) SELECT * FROM x",
        "INSERT into runs is not allowed",
    ),
    ("BEGIN IMMEDIATE", "BEGIN (transaction control) is not allowed"),
    ("ANALYZE", "ANALYZE"),
    ("REINDEX", "REINDEX"),
    ("SELECT load_extension('evil')", "the function load_extension() is not allowed"),
]


@pytest.mark.parametrize(("statement", "message"), SQLITE_REFUSALS)
def test_sqlite_refuses_every_kind_of_write_and_nothing_changes(
    populated: Invoke, statement: str, message: str
) -> None:
    folder = populated.workdir
    before, listing = content(populated.db_file), files(folder)

    result = populated("sql", statement.format(dir=folder))

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(READ_ONLY)
    assert message.format(dir=folder) in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert content(populated.db_file) == before
    assert files(folder) == listing  # no attached, vacuumed or journal file appeared
    assert populated("sql", RUNS_QUERY, "--format", "csv").stdout == RUNS_CSV


def test_a_missing_database_is_an_error_and_is_not_created(autoopt: Invoke) -> None:
    result = autoopt("sql", "SELECT 1")
    assert (result.exit_code, result.stderr) == (1, f"Error: {autoopt.db_file}: no such database\n")
    assert list(autoopt.workdir.iterdir()) == []

    elsewhere = autoopt.workdir / "no" / "such.db"
    result = autoopt("--database-url", f"sqlite:///{elsewhere}", "sql", "SELECT 1")
    assert result.stderr == f"Error: {elsewhere}: no such database\n"
    assert not elsewhere.parent.exists()


def test_a_file_that_is_not_a_database_is_refused_and_left_alone(autoopt: Invoke) -> None:
    autoopt.db_file.write_text("notes, not a database\n" * 300)
    result = autoopt("sql", "SELECT 1")
    assert (result.exit_code, result.stderr) == (
        1,
        f"Error: {autoopt.url}: the file is not a SQLite database\n",
    )
    assert autoopt.db_file.read_text() == "notes, not a database\n" * 300


def test_an_old_schema_is_queried_as_it_stands_and_not_migrated(autoopt: Invoke) -> None:
    engine = create_db_engine(DatabaseSettings(url=autoopt.url))
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0001")
    engine.dispose()

    for _ in range(2):
        result = autoopt("sql", "SELECT version_num FROM alembic_version", "--format", "csv")
        assert (result.exit_code, result.stdout) == (0, "version_num\n0001\n")
    missing = autoopt("sql", "SELECT * FROM runs")
    assert missing.stderr == "Error: autoopt sql: no such table: runs\n"


def test_bad_queries_are_one_line_errors(populated: Invoke) -> None:
    syntax = populated("sql", "SELEC 1")
    assert (syntax.exit_code, syntax.stderr) == (
        1,
        'Error: autoopt sql: near "SELEC": syntax error\n',
    )
    empty = populated("sql", "   ")
    assert empty.exit_code == 2 and "the query is empty" in empty.stderr


def test_a_runaway_query_is_stopped(populated: Invoke) -> None:
    endless = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT max(i) FROM n"
    with pytest.raises(
        StorageError, match=r"^autoopt sql: the query ran past 0.2 s and was stopped$"
    ):
        run_query(DatabaseSettings(url=populated.url), endless, timeout_seconds=0.2)


# --- PostgreSQL ------------------------------------------------------------------------------

needs_postgres = pytest.mark.skipif(
    not os.environ.get(POSTGRES_ENV), reason=f"{POSTGRES_ENV} is not set"
)
TABLES = (
    "events",
    "runs",
    "prompts",
    "iterations",
    "versions",
    "patches",
    "llm_calls",
    "llm_cache",
    "projection_checkpoints",
    "alembic_version",
)
COPY_TARGET = f"/tmp/autoopt-sql-{uuid.uuid4().hex}.txt"
POSTGRES_REFUSALS = [
    ("INSERT INTO runs (run_id) VALUES ('x')", "INSERT returns none"),
    ("INSERT INTO runs (run_id) VALUES ('x') RETURNING run_id", "cannot execute INSERT in a"),
    ("UPDATE runs SET status = 'failed' RETURNING run_id", "cannot execute UPDATE in a"),
    ("DELETE FROM events RETURNING position", "cannot execute DELETE in a"),
    ("DELETE FROM events", "DELETE returns none"),
    ("DROP TABLE runs", "DROP returns none"),
    ("CREATE TABLE notes (x int)", "CREATE returns none"),
    ("TRUNCATE events", "TRUNCATE returns none"),
    ("SET TRANSACTION READ WRITE", "SET returns none"),
    ("SET TRANSACTION READ WRITE; INSERT INTO runs (run_id) VALUES ('x')", "one statement at a"),
    ("COMMIT; INSERT INTO runs (run_id) VALUES ('x')", "one statement at a time"),
    ("SELECT set_config('transaction_read_only', 'off', true)", "read-write mode"),
    ("WITH gone AS (DELETE FROM runs RETURNING run_id) SELECT count(*) FROM gone", "read-only"),
    ("EXPLAIN ANALYZE DELETE FROM runs", "cannot execute DELETE in a read-only transaction"),
    ("DO $$ BEGIN EXECUTE 'CREATE TABLE notes (x int)'; END $$", "DO returns none"),
    (f"COPY (SELECT 1) TO '{COPY_TARGET}'", "COPY returns none"),
    ("VACUUM", "VACUUM returns none"),
]


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Invoke, Engine]]:
    """A PostgreSQL database of its own, filled by a real run."""
    if not os.environ.get(POSTGRES_ENV):
        pytest.skip(f"{POSTGRES_ENV} is not set")
    workdir = tmp_path_factory.mktemp("sql-postgres")
    with temporary_postgres_engine() as engine:
        invoke = Invoke(workdir / "unused.db", workdir)
        invoke.url = engine.url.render_as_string(hide_password=False)
        invoke.env["OPTIMIZER_DATABASE_URL"] = invoke.url
        yield optimized(invoke), engine


def checksums(engine: Engine) -> dict[str, tuple[int, str]]:
    sums = {}
    with engine.connect() as connection:
        for table in TABLES:
            count, digest = connection.execute(
                text(
                    f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), ''))"
                    f" FROM {table} t"
                )
            ).one()
            sums[table] = (count, digest)
        count, digest = connection.execute(
            text(
                "SELECT count(*), md5(string_agg(relname || relkind::text, ',' ORDER BY relname))"
                " FROM pg_class WHERE relnamespace = 'public'::regnamespace"
            )
        ).one()
        sums["schema"] = (count, digest)
    return sums


@needs_postgres
def test_postgres_answers_like_sqlite(postgres: tuple[Invoke, Engine]) -> None:
    invoke, _engine = postgres
    assert invoke("sql", RUNS_QUERY, "--format", "csv").stdout == RUNS_CSV
    assert invoke("sql", PROMPTS_QUERY, "--format", "csv").stdout == PROMPTS_CSV
    started = json.loads(
        invoke(
            "sql",
            "SELECT payload, position FROM events ORDER BY position LIMIT 1",
            "--format",
            "json",
        ).stdout
    )
    assert started[0]["position"] == 1 and started[0]["payload"]["run_id"]


@needs_postgres
@pytest.mark.parametrize(("statement", "message"), POSTGRES_REFUSALS)
def test_postgres_refuses_every_kind_of_write_and_nothing_changes(
    postgres: tuple[Invoke, Engine], statement: str, message: str
) -> None:
    invoke, engine = postgres
    before = checksums(engine)
    assert before["runs"][0] == 1 and before["events"][0] > 0

    result = invoke("sql", statement)

    assert result.exit_code == 1
    assert result.stderr.startswith(READ_ONLY), result.stderr
    assert message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert checksums(engine) == before
    assert not Path(COPY_TARGET).exists()


@needs_postgres
def test_postgres_stops_a_runaway_query(postgres: tuple[Invoke, Engine]) -> None:
    invoke, _engine = postgres
    with pytest.raises(
        StorageError, match=r"^autoopt sql: the query ran past 0.2 s and was stopped$"
    ):
        run_query(DatabaseSettings(url=invoke.url), "SELECT pg_sleep(5)", timeout_seconds=0.2)
