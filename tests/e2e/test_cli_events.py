"""``autoopt events``: exact output of list, show and tail on a small fixed log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import Invoke
from tests.factories import prompt_extracted, run_failed, run_started


@pytest.fixture
def filled(autoopt: Invoke) -> Invoke:
    log = autoopt.log()
    log.append("run-a", [run_started("a"), prompt_extracted("a", 1)], 0)
    log.append("run-b", [run_started("b")], 0)
    log.append("run-a", [run_failed("a", "the file vanished")], 2)
    return autoopt


def test_listing_an_empty_log(autoopt: Invoke) -> None:
    assert autoopt("events", "list", "--format", "json").stdout == "[]\n"
    assert autoopt("events", "list", "--format", "csv").stdout == (
        "position,stream_id,stream_version,event_type,occurred_at,schema_version,event_id,"
        "correlation_id,causation_id\n"
    )
    assert autoopt("events", "list").stdout == (
        "position  stream_id  stream_version  event_type  occurred_at\n"
        "--------  ---------  --------------  ----------  -----------\n"
    )


def test_list_as_a_table(filled: Invoke) -> None:
    result = filled("events", "list")
    assert result.exit_code == 0
    assert result.stdout == (
        "position  stream_id  stream_version  event_type       occurred_at\n"
        "--------  ---------  --------------  ---------------  --------------------\n"
        "1         run-a      1               RunStarted       2026-01-01T00:00:00Z\n"
        "2         run-a      2               PromptExtracted  2026-01-01T00:00:01Z\n"
        "3         run-b      1               RunStarted       2026-01-01T00:00:00Z\n"
        "4         run-a      3               RunFailed        2026-01-01T00:01:39Z\n"
    )


def test_list_filters_by_stream_after_and_limit(filled: Invoke) -> None:
    result = filled("events", "list", "--stream", "run-a", "--after", "1", "--format", "csv")
    lines = result.stdout.splitlines()
    assert [line.split(",")[:4] for line in lines[1:]] == [
        ["2", "run-a", "2", "PromptExtracted"],
        ["4", "run-a", "3", "RunFailed"],
    ]
    limited = json.loads(
        filled("events", "list", "--after", "1", "--limit", "2", "--format", "json").stdout
    )
    assert [row["position"] for row in limited] == [2, 3]
    assert limited[0]["correlation_id"] == "a"
    assert set(limited[0]) == {
        "position",
        "stream_id",
        "stream_version",
        "event_type",
        "occurred_at",
        "schema_version",
        "event_id",
        "correlation_id",
        "causation_id",
    }


def test_show_by_position_and_by_event_id(filled: Invoke) -> None:
    by_position = json.loads(filled("events", "show", "4").stdout)
    assert by_position["event_type"] == "RunFailed"
    assert by_position["payload"] == {
        "run_id": "a",
        "error_type": "DSLFormatError",
        "message": "the file vanished",
    }
    by_id = filled("events", "show", by_position["event_id"])
    assert json.loads(by_id.stdout) == by_position


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("99", "Error: no event at position 99\n"),
        (
            "00000000-0000-0000-0000-00000000abcd",
            "Error: no event with id 00000000-0000-0000-0000-00000000abcd\n",
        ),
        ("latest", "Error: 'latest' is neither a position nor an event id\n"),
    ],
)
def test_show_something_that_is_not_there(filled: Invoke, ref: str, message: str) -> None:
    result = filled("events", "show", ref)
    assert (result.exit_code, result.stderr) == (1, message)


def test_tail_prints_the_last_lines(filled: Invoke) -> None:
    result = filled("events", "tail", "-n", "2")
    assert result.stdout == (
        "3  2026-01-01T00:00:00Z  run-b@1  RunStarted\n"
        "4  2026-01-01T00:01:39Z  run-a@3  RunFailed\n"
    )


def test_bad_options_are_usage_errors(autoopt: Invoke) -> None:
    assert autoopt("events", "list", "--format", "xml").exit_code == 2
    assert autoopt("events", "list", "--limit", "0").exit_code == 2


def test_tail_follow_prints_events_appended_by_another_process(filled: Invoke) -> None:
    env = {**os.environ, "OPTIMIZER_DATABASE_URL": filled.url}
    follower = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "autoopt.cli.main",
            "events",
            "tail",
            "-n",
            "1",
            "--follow",
            "--interval",
            "0.05",
            "--timeout",
            "20",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=filled.workdir,
    )
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline() == "4  2026-01-01T00:01:39Z  run-a@3  RunFailed\n"
        writer = (
            "import sys\n"
            "from autoopt.infrastructure.db import open_database\n"
            "from autoopt.infrastructure.event_store import SqlEventLog\n"
            "from autoopt.infrastructure.settings import DatabaseSettings\n"
            "from tests.factories import run_started\n"
            "log = SqlEventLog(open_database(DatabaseSettings(url=sys.argv[1])))\n"
            "log.append('run-c', [run_started('c')], 0)\n"
        )
        subprocess.run(
            [sys.executable, "-c", writer, filled.url],
            check=True,
            timeout=60,
            cwd=Path(__file__).resolve().parents[2],
        )
        started = time.monotonic()
        line = follower.stdout.readline()
        assert line == "5  2026-01-01T00:00:00Z  run-c@1  RunStarted\n"
        assert time.monotonic() - started < 20
    finally:
        follower.kill()
        follower.communicate()
