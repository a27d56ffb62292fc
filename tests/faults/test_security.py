"""Hostile input through the real CLI: it stays data, and the walls hold.

* Node ids, app names and prompt ids built to escape (``..``, absolute paths,
  NUL, back-slashes, look-alike slashes, the store's own file names and temp
  suffix) go through ``autoopt optimize`` and the ``autoopt versions``
  commands; every file made under the test's root is inside the storage
  folder, the database's folder files or the app's output, and nothing named
  with the hostile token appears anywhere an escape would put it. Versions of
  hostile ids read back exactly.
* ``autoopt sql`` refuses writes hidden behind comments, CTEs, RETURNING,
  ATTACH/VACUUM INTO, PRAGMAs and second statements: exit 1, one ``Error:``
  line, the database's bytes and rows unchanged, no new file.
* ``autoopt report html`` of prompts carrying scripts, event handlers,
  ``</textarea>``, ``javascript:`` links and template syntax runs nothing in
  headless Chromium and shows the text escaped.
* A database file owned by someone else, a read-only one, and one in a
  read-only folder: commands that must write exit 1 with one ``Error:`` line
  naming the file, and the file keeps its bytes.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import browser
from tests.dify_apps import llm_node, workflow_app
from tests.faults.hostile import TOKEN, WEAK, TreeGuard, hostile_names
from tests.faults.workspace import Workspace


def one_error_line(result: Any) -> str:
    """The single ``Error:`` line of a failed in-process run; fails on anything else."""
    assert result.exit_code == 1, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return str(lines[0])


def guard(workspace: Workspace, app: Path | None = None) -> TreeGuard:
    allowed = [workspace.storage_dir, workspace.outputs, workspace.db_file]
    allowed += [workspace.db_file.with_name(workspace.db_file.name + s) for s in ("-wal", "-shm")]
    if app is not None:
        allowed.append(app.with_name(f"{app.stem}.optimized.yml"))
    return TreeGuard(workspace.root.parent, allowed)


def write_app(folder: Path, document: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "app.yml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    return path


# -- path escape ------------------------------------------------------------------------------


def test_hostile_node_ids_stay_inside_the_store_and_read_back(
    workspace: Workspace, tmp_path: Path
) -> None:
    names = hostile_names(tmp_path)
    texts = {name: WEAK.format(n=i) for i, name in enumerate(names)}
    app = write_app(
        tmp_path / "apps", workflow_app("Safe App", [llm_node(n, texts[n]) for n in names])
    )
    watch = guard(workspace, app)

    result = workspace.invoke("optimize", str(app), "--format", "json")

    assert result.exit_code == 0, result.output
    assert watch.strays() == []
    prompts = json.loads(result.stdout)["prompts"]
    assert sorted(p["node_id"] for p in prompts) == sorted(names)
    for prompt in prompts:
        assert prompt["prompt_id"] == f"Safe App/{prompt['node_id']}/prompt_template/0/text"
        shown = workspace.invoke("versions", "show", "--", prompt["prompt_id"], "1")
        assert (shown.exit_code, shown.stdout) == (0, texts[prompt["node_id"]] + "\n")
    # Every prompt folder is one plain child of the store, and maps back to its id.
    folders = [p for p in workspace.storage_dir.iterdir() if p.is_dir()]
    assert len(folders) == len(names)
    ids = {json.loads((f / "prompt.json").read_text("utf-8"))["prompt_id"] for f in folders}
    assert ids == {p["prompt_id"] for p in prompts}
    done = workspace.invoke("storage", "verify")
    assert (done.exit_code, done.stdout) == (0, "ok\n"), done.output


@pytest.mark.slow
def test_hostile_app_names_stay_inside_the_store(workspace: Workspace, tmp_path: Path) -> None:
    for i, name in enumerate(hostile_names(tmp_path)):
        app = write_app(tmp_path / f"apps{i}", workflow_app(name, [llm_node("n1", WEAK)]))
        watch = guard(workspace, app)
        result = workspace.invoke("optimize", str(app), "--format", "json")
        assert result.exit_code == 0, (name, result.output)
        assert watch.strays() == [], name
        prompt_id = json.loads(result.stdout)["prompts"][0]["prompt_id"]
        # The app name is the id's first part as Dify shows it (a line break becomes a space).
        assert prompt_id == f"{' '.join(name.splitlines())}/n1/prompt_template/0/text"
        shown = workspace.invoke("versions", "show", "--", prompt_id, "1")
        assert (shown.exit_code, shown.stdout) == (0, WEAK + "\n"), name
    done = workspace.invoke("fsck")
    assert (done.exit_code, done.stdout) == (0, "ok\n"), done.output


def test_versions_commands_with_hostile_prompt_ids_touch_nothing(
    workspace: Workspace, tmp_path: Path
) -> None:
    app = write_app(tmp_path / "apps", workflow_app("Safe App", [llm_node("n1", WEAK)]))
    assert workspace.invoke("optimize", str(app)).exit_code == 0
    before = workspace.snapshot()
    watch = guard(workspace)
    ids = [
        prompt_id
        for name in hostile_names(tmp_path)
        for prompt_id in (name, f"Safe App/{name}", f"{name}/n1/prompt_template/0/text")
    ]
    for prompt_id in ids:
        for args in (
            ("versions", "list", "--", prompt_id),
            ("versions", "show", "--", prompt_id, "1"),
            ("versions", "diff", "--", prompt_id, "1", "2"),
        ):
            assert "no version" in one_error_line(workspace.invoke(*args)), args
    assert workspace.snapshot() == before  # reading creates nothing, anywhere
    for prompt_id in ids:
        result = workspace.invoke("versions", "rollback", "--", prompt_id, "1")
        assert "has no version 1" in one_error_line(result), prompt_id
    assert watch.strays() == []
    after = workspace.snapshot()
    assert after["tables"] == before["tables"]
    versions = {k: v for k, v in after["files"].items() if re.search(r"/[0-9]+\.json$", k)}
    assert versions == {k: v for k, v in before["files"].items() if re.search(r"/[0-9]+\.json$", k)}
    done = workspace.invoke("fsck")
    assert (done.exit_code, done.stdout) == (0, "ok\n"), done.output


# -- autoopt sql cannot write -------------------------------------------------------------------

SQL_WRITES = [
    "/* harmless */ DELETE FROM events",
    "-- a comment\nDELETE FROM events",
    "SELECT 1 /* ; */ ; DELETE FROM events",
    "SELECT 1;\n-- done\nDROP TABLE events",
    "DELETE FROM events RETURNING *",
    "UPDATE runs SET status = 'pwned' RETURNING run_id",
    "INSERT INTO events SELECT * FROM events RETURNING position",
    "INSERT OR REPLACE INTO runs (run_id) VALUES ('x')",
    "WITH gone AS (SELECT position FROM events) DELETE FROM events WHERE position IN gone",
    "WITH x(a) AS (SELECT 1) UPDATE runs SET status = 'pwned'",
    "WITH d AS (DELETE FROM events RETURNING *) SELECT * FROM d",
    "dElEtE fRoM events",
    "DROP TABLE IF EXISTS events",
    "DROP INDEX IF EXISTS ix_events_stream",
    "CREATE INDEX ix_pwned ON runs(status)",
    "CREATE VIEW v_pwned AS SELECT 1",
    "CREATE VIRTUAL TABLE t_pwned USING fts5(x)",
    "ATTACH DATABASE '{dir}/" + TOKEN + "-attached.db' AS other",
    "ATTACH 'file:{dir}/" + TOKEN + "-uri.db?mode=rwc' AS other",
    "VACUUM INTO '{dir}/" + TOKEN + "-vacuum.db'",
    "VACUUM main INTO '{dir}/" + TOKEN + "-vacuum2.db'",
    "PRAGMA main.journal_mode = DELETE",
    "pragma JOURNAL_MODE=off",
    "PRAGMA writable_schema = 1",
    "PRAGMA main.user_version = 7",
    "PRAGMA schema_version = 1",
    "PRAGMA wal_checkpoint(TRUNCATE)",
    "PRAGMA incremental_vacuum",
    "PRAGMA optimize",
    "PRAGMA query_only = 0",
    "PRAGMA temp_store_directory = '{dir}'",
    "SELECT load_extension('{dir}/" + TOKEN + "-evil')",
    "SELECT LOAD_EXTENSION('/lib/x86_64-linux-gnu/libc.so.6', 'system')",
    "SAVEPOINT s",
    "COMMIT",
    "DETACH DATABASE main",
    "REINDEX events",
    "ANALYZE sqlite_schema",
]


def db_bytes(workspace: Workspace) -> dict[str, str]:
    files = [workspace.db_file, workspace.db_file.with_name(workspace.db_file.name + "-wal")]
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files if p.exists()}


@pytest.fixture
def populated(workspace: Workspace, tmp_path: Path) -> Workspace:
    app = write_app(tmp_path / "apps", workflow_app("Safe App", [llm_node("n1", WEAK)]))
    assert workspace.invoke("optimize", str(app)).exit_code == 0
    return workspace


def test_sql_refuses_every_disguised_write(populated: Workspace, tmp_path: Path) -> None:
    before, content = populated.snapshot(), db_bytes(populated)
    watch = guard(populated)
    for statement in SQL_WRITES:
        result = populated.invoke("sql", "--", statement.format(dir=populated.root))
        one_error_line(result)
        assert result.stdout == "", statement
        assert populated.snapshot() == before, statement
        assert db_bytes(populated) == content, statement
    assert watch.strays() == []
    count = populated.invoke("sql", "SELECT count(*) AS n FROM events", "--format", "json")
    assert json.loads(count.stdout) == [{"n": len(before["tables"]["events"])}]


def test_the_installed_command_refuses_a_write_too(populated: Workspace) -> None:
    before = populated.snapshot()
    done = populated.run("sql", "/* x */ DELETE FROM events RETURNING *")
    assert done.returncode == 1, done.describe()
    assert (
        done.stderr.startswith("Error: autoopt sql is read-only") and done.stderr.count("\n") == 1
    )
    assert populated.snapshot() == before


# -- the HTML report runs no script -------------------------------------------------------------

PAYLOADS = [
    "<script>document.title='pwned-script'</script>",
    "<img src=x onerror=\"document.title='pwned-img'\">",
    "</textarea><script>document.title='pwned-textarea'</script>",
    "</pre></td></table><svg onload=\"document.title='pwned-svg'\">",
    "<a href=\"javascript:document.title='pwned-link'\">click</a>",
    "<iframe srcdoc=\"<script>parent.document.title='pwned-iframe'</script>\"></iframe>",
    '<style>body{display:none}</style><base href="javascript:/">',
    '<meta http-equiv="refresh" content="0;url=javascript:document.title=\'pwned-meta\'">',
    "{{ 7*7 }} {% if true %}jinja-ran{% endif %} {{#x.y#}} ${7*7}",
    "\"><script>document.title='pwned-attr'</script>",
    "'-alert(1)-'</script><script>document.title='pwned-js'</script>",
]


def test_the_report_shows_hostile_prompts_as_text_and_runs_nothing(
    workspace: Workspace, tmp_path: Path
) -> None:
    nodes = [
        llm_node(f"n{i}", f"{WEAK.format(n=i)} Quote exactly: {payload}", title=payload)
        for i, payload in enumerate(PAYLOADS)
    ]
    app = write_app(tmp_path / "apps", workflow_app(f"Hostile {PAYLOADS[0]}", nodes))
    run = workspace.invoke(
        "optimize", str(app), "--format", "json", "--strategy", "structure_focus"
    )
    assert run.exit_code == 0, run.output
    report = json.loads(run.stdout)
    out = tmp_path / "report.html"
    done = workspace.invoke("report", "html", report["run_id"], "--out", str(out))
    assert done.exit_code == 0, done.output
    raw = out.read_text(encoding="utf-8")
    assert "<script" not in raw.lower() and "<svg" not in raw.lower()
    assert 'href="javascript:' not in raw.lower()

    dom = browser.dump_dom(out)
    # Every payload would set the title; it is still the page's own, the name as text.
    title = f"autoopt report: Hostile {escaped(PAYLOADS[0])}, run {report['run_id']}"
    assert f"<title>{title}</title>" in dom
    # No element came out of a prompt; the page's own links point inside it.
    assert not re.search(r"<(script|img|svg|iframe|base|textarea)[\s>]", dom)
    assert not re.search(r'<a (?![^>]*href="#)', dom)
    assert dom.count("<style") == raw.lower().count("<style")
    assert dom.count("<meta") == raw.lower().count("<meta")
    # Template syntax is text too: nothing rendered it.
    assert dom.count("jinja-ran") == dom.count("{% if true %}jinja-ran{% endif %}") > 0
    assert "{{ 7*7 }}" in dom
    # Shown as text, escaped, at least once per payload (the node title and the prompt).
    for payload in PAYLOADS:
        assert escaped(payload) in dom, payload


def escaped(text: str) -> str:
    """Text as a browser serializes a text node."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# -- a database file that is not ours, or read-only ---------------------------------------------

PR_CAPBSET_DROP = 24
# CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_FSETID: what lets root
# ignore file modes and ownership.
FILE_CAPABILITIES = (0, 1, 2, 3, 4)


def as_plain_user() -> None:
    """In the child, before exec: root keeps uid 0 but loses its power over file modes.

    ``user=nobody`` cannot be used here: the interpreter lives under /root (mode 0700).
    Without these capabilities uid 0 is bound by modes as any user is, and a file
    owned by ``nobody`` is someone else's.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in FILE_CAPABILITIES:
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def locked_database(workspace: Workspace, folder: Path, variant: str) -> Path:
    """A copy of the workspace's database that this test's runs may read but not write."""
    connection = sqlite3.connect(workspace.db_file)
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    folder.mkdir()
    database = folder / "autoopt.db"
    shutil.copy(workspace.db_file, database)
    root = os.geteuid() == 0
    if variant == "owned by someone else" and root:
        os.chown(database, NOBODY, NOBODY)
        database.chmod(0o644)
    elif variant == "read-only folder":
        folder.chmod(0o555)
    else:
        database.chmod(0o444)
    return database


NOBODY = 65534


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["owned by someone else", "read-only file", "read-only folder"])
def test_a_database_we_may_not_write_is_one_clear_error(
    populated: Workspace, tmp_path: Path, variant: str
) -> None:
    database = locked_database(populated, tmp_path / "locked", variant)
    content = hashlib.sha256(database.read_bytes()).hexdigest()
    store = populated.snapshot()["files"]
    app = write_app(tmp_path / "again", workflow_app("Other App", [llm_node("n1", WEAK)]))
    prompt_id = "Safe App/n1/prompt_template/0/text"
    env = {**os.environ, **populated.env, "OPTIMIZER_DATABASE_URL": f"sqlite:///{database}"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            populated.command(*args),
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            preexec_fn=as_plain_user if os.geteuid() == 0 else None,
        )

    try:
        for args in (("optimize", str(app)), ("versions", "rollback", "--", prompt_id, "1")):
            done = run(*args)
            assert done.returncode == 1, (args, done.stdout, done.stderr)
            assert "Traceback" not in done.stderr
            lines = done.stderr.splitlines()
            assert len(lines) == 1 and lines[0].startswith("Error: "), (args, done.stderr)
            assert str(database) in lines[0] and "readonly" in lines[0].replace("-", ""), lines
        for args in (("sql", "SELECT count(*) AS n FROM events"), ("runs", "list")):
            done = run(*args)
            # Reading may work; if it cannot, it says which file and why, in one line.
            if done.returncode != 0:
                assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
                assert done.stderr.count("\n") == 1 and str(database) in done.stderr
                assert "cannot open the database" in done.stderr
        assert not app.with_name("app.optimized.yml").exists()
        assert hashlib.sha256(database.read_bytes()).hexdigest() == content
        after = populated.snapshot()["files"]
        # Every stored version keeps its bytes (index.json is a cache). A rollback
        # writes its new version file before its event, so it leaves that file
        # behind for ``fsck --repair`` to record: reported on issue #10.
        assert {k: after.get(k) for k in store if k != "index.json"} == {
            k: v for k, v in store.items() if k != "index.json"
        }
    finally:
        database.parent.chmod(0o755)
