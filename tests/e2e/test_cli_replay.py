"""``autoopt runs replay``: a recorded run re-run from the log alone.

Proves: runs without a model (rule strategies and LLM fallbacks), a second run
that reuses stored versions, a run after a rollback, and a run with real LLM
exchanges (answers, a 5xx after retries, an unusable answer) through the real
``openai`` SDK all replay ``identical``; the replay appends nothing, writes no
version and asks the model nothing. Tampering with one recorded score (with
the append-only trigger dropped, as only an attacker would) is reported at
that event, field and values, with exit code 1. A what-if replay lists the
decisions other settings change, answers from recorded exchanges where the
request is the same and falls back to the rules where it is not.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from autoopt.domain.events import IterationCompleted, PatchEmitted
from tests.conftest import REPO_ROOT
from tests.e2e.conftest import Invoke
from tests.integration.test_llm_optimize import GOOD, LLMCli
from tests.llm_server import Answer, FakeLLMServer, Status

EXAMPLE = REPO_ROOT / "examples" / "support_bot.yml"
ENGLISH_ID = "Support Bot/1732000000003/prompt_template/0/text"


def run_ids(autoopt: Invoke) -> list[str]:
    """Run ids in the order they started."""
    return [
        r.event.run_id  # type: ignore[attr-defined]
        for r in autoopt.log().read_all()
        if r.event.event_type == "RunStarted"
    ]


def files_under(folder: Path) -> list[tuple[str, int]]:
    return sorted((str(p), p.stat().st_size) for p in folder.rglob("*") if p.is_file())


@pytest.fixture
def app(autoopt: Invoke) -> Path:
    path = autoopt.workdir / "support_bot.yml"
    shutil.copy(EXAMPLE, path)
    return path


def test_offline_runs_replay_identical_and_replay_changes_nothing(
    autoopt: Invoke, app: Path
) -> None:
    assert autoopt("optimize", str(app)).exit_code == 0
    assert autoopt("optimize", str(app), "--strategy", "structure_focus").exit_code == 0
    autoopt("versions", "rollback", ENGLISH_ID, "1")
    assert autoopt("optimize", str(app), "--max-iterations", "1").exit_code == 0
    runs = run_ids(autoopt)
    assert len(runs) == 3
    head = autoopt.log().last_position()
    stored = files_under(autoopt.storage_dir)
    db_size = autoopt.db_file.stat().st_size

    for run_id in runs:
        result = autoopt("runs", "replay", run_id, "--verify")
        assert (result.exit_code, result.stdout) == (0, "identical\n"), result.output

    assert autoopt.log().last_position() == head
    assert files_under(autoopt.storage_dir) == stored
    assert autoopt.db_file.stat().st_size == db_size
    # The second and third runs met stored versions: the replay had to know them.
    second = [r.event for r in autoopt.log().read_stream(f"run-{runs[1]}")]
    assert any(isinstance(e, PatchEmitted) for e in second)


def test_the_full_replay_shows_each_prompts_decision_and_the_verdict(
    autoopt: Invoke, app: Path
) -> None:
    assert autoopt("optimize", str(app), "--strategy", "structure_focus").exit_code == 0
    [run_id] = run_ids(autoopt)
    result = autoopt("runs", "replay", run_id[:8])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["node", "field", "decision"]
    assert "Product answers  /prompt_template/0/text        optimized 74.0 -> " in result.stdout
    assert "Order number     /instruction                   skipped 97.6 (score 97.6 is" in (
        result.stdout
    )
    recorded = len(autoopt.log().read_stream(f"run-{run_id}"))
    versions = 9 + 2  # a baseline per prompt, and two optimized
    assert lines[-2] == f"{recorded + versions} events replayed, {recorded + versions} recorded"
    assert lines[-1] == "identical"

    document = json.loads(autoopt("runs", "replay", run_id, "--format", "json").stdout)
    assert document["identical"] is True
    assert document["divergence"] is None
    assert [p["decision"] for p in document["prompts"]].count("optimized") == 2


def test_a_tampered_score_is_reported_at_that_event(autoopt: Invoke, app: Path) -> None:
    assert autoopt("optimize", str(app), "--strategy", "structure_focus").exit_code == 0
    [run_id] = run_ids(autoopt)
    [target] = [
        r
        for r in autoopt.log().read_stream(f"run-{run_id}")
        if isinstance(r.event, IterationCompleted) and r.event.prompt_id == ENGLISH_ID
    ][:1]
    event = target.event
    assert isinstance(event, IterationCompleted)

    # Only someone bypassing autoopt can do this: the log refuses UPDATE.
    with sqlite3.connect(autoopt.db_file) as conn:
        conn.execute("DROP TRIGGER events_refuse_update")
        conn.execute(
            "UPDATE events SET payload = json_set(payload, '$.score_after', 99.5) "
            "WHERE position = ?",
            (target.position,),
        )

    result = autoopt("runs", "replay", run_id, "--verify")
    assert result.exit_code == 1
    assert result.stdout == (
        f"diverged at position {target.position} (IterationCompleted, prompt {ENGLISH_ID}, "
        f"structure_focus round 1): score_after: recorded 99.5, replayed {event.score_after!r}\n"
    )
    document = json.loads(autoopt("runs", "replay", run_id, "--verify", "--format", "json").stdout)
    assert document["identical"] is False
    assert document["divergence"]["position"] == target.position


def test_what_if_lists_the_decisions_other_settings_change(autoopt: Invoke, app: Path) -> None:
    assert autoopt("optimize", str(app), "--strategy", "structure_focus").exit_code == 0
    [run_id] = run_ids(autoopt)
    head = autoopt.log().last_position()

    same = autoopt("runs", "replay", run_id, "--with", "max_iterations=3")
    assert same.exit_code == 0, same.output
    assert same.stdout.splitlines()[-1] == "0 of 9 decisions would change"

    strict = autoopt("runs", "replay", run_id, "--with", "min_confidence=1", "--format", "json")
    document = json.loads(strict.stdout)
    assert document["changed"] == 2
    changed = [p for p in document["prompts"] if p["changed"]]
    assert {p["recorded"].split()[0] for p in changed} == {"optimized"}
    assert {p["what_if"].split()[0] for p in changed} == {"kept"}

    skip_all = autoopt("runs", "replay", run_id, "--with", "threshold=0")
    assert skip_all.stdout.splitlines()[-1] == "2 of 9 decisions would change"
    assert autoopt.log().last_position() == head


# --------------------------------------------------------------------------- #
# With a language model
# --------------------------------------------------------------------------- #


@pytest.fixture
def llm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LLMCli]:
    monkeypatch.chdir(tmp_path)
    with FakeLLMServer(default=GOOD) as server:
        cli = LLMCli(Invoke(tmp_path / "cli.db", tmp_path), server, tmp_path / "autoopt.yaml")
        cli.configure(strategies=("llm_guided", "hybrid"), max_iterations=2)
        yield cli


def test_a_run_with_llm_exchanges_replays_identical_without_asking_the_model(
    llm: LLMCli,
) -> None:
    # The first call fails after its retries, the second answers broken JSON, the rest answer.
    llm.server.script(Status(500), Status(500), Status(500), Answer("{not an answer"))
    _, report = llm.optimize(llm.support_bot())
    run_id = report["run_id"]
    rounds = llm.rounds(run_id)
    errors = [r.fallback_error or "" for r in rounds]
    assert any(e.startswith("LLMError: HTTP 500") for e in errors)
    assert any(e.startswith("LLMResponseError") for e in errors)
    assert any(r.llm_exchange is not None and r.llm_exchange.error for r in rounds)
    answered = [r for r in rounds if r.llm_exchange is not None and not r.fallback]
    assert answered and any(r.decision == "accepted" for r in answered)
    asked = llm.server.requests_to()

    # No key now: a replay needs none, and asks nothing.
    result = llm("runs", "replay", run_id, "--verify", key="")
    assert (result.exit_code, result.stdout) == (0, "identical\n"), result.output
    assert llm.server.requests_to() == asked

    # What-if: the same requests get the recorded answers; a strategy never asked falls back.
    same = llm("runs", "replay", run_id, "--with", "strategies=llm_guided,hybrid", key="")
    assert same.stdout.splitlines()[-1] == "0 of 9 decisions would change", same.output
    other = llm(
        "runs", "replay", run_id, "--with", "strategies=llm_clarity", "--format", "json", key=""
    )
    document = json.loads(other.stdout)
    # Never asked in the run: no recorded answer, so the rule-based fallback worked instead.
    optimized = [p["what_if"] for p in document["prompts"] if p["what_if"].startswith("optimized")]
    assert optimized and all("(llm_clarity->clarity_focus)" in d for d in optimized)
    assert document["changed"] >= 1
    assert llm.server.requests_to() == asked


def test_replay_of_an_unknown_run_is_one_error_line(autoopt: Invoke, app: Path) -> None:
    result = autoopt("runs", "replay", "0000")
    assert result.exit_code == 1
    assert result.output == "Error: no run with an id starting '0000'\n"
