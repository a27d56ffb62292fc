"""``autoopt optimize`` through the command line, on the bundled example app."""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from autoopt.domain.dsl import extract_prompts
from autoopt.domain.dsl_loading import load_dsl
from tests.conftest import REPO_ROOT
from tests.dsl_diff import differing_paths
from tests.e2e.conftest import Invoke

EXAMPLE = REPO_ROOT / "examples" / "support_bot.yml"
NOTE = "Note: no API key in $OPENAI_API_KEY; llm_guided, hybrid run their rule-based fallbacks.\n"


@pytest.fixture
def app(autoopt: Invoke) -> Path:
    target = autoopt.workdir / "support_bot.yml"
    shutil.copy(EXAMPLE, target)
    return target


def event_types(autoopt: Invoke) -> list[str]:
    return [r.event.event_type for r in autoopt.log().read_all()]


def test_optimize_writes_the_patched_app_beside_the_input(autoopt: Invoke, app: Path) -> None:
    result = autoopt("optimize", str(app))
    assert result.exit_code == 0, result.output
    assert result.stderr == NOTE
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Support Bot  run ")
    assert lines[0].endswith(f"-> {app.with_name('support_bot.optimized.yml')}")
    assert lines[1].split() == ["node", "field", "score", "strategy", "confidence", "decision"]
    rows = {(line[:17].strip(), line.split()[-1]) for line in lines[3:-1]}
    assert ("Product answers", "optimized") in rows
    assert ("Order number", "skipped") in rows
    assert lines[-1] == "2 of 9 prompts improved"

    output = load_dsl(app.with_name("support_bot.optimized.yml").read_bytes(), "out")
    original = load_dsl(app.read_bytes(), "in")
    changed = differing_paths(original.document, output.document)
    assert changed == [
        "/workflow/graph/nodes/2/data/prompt_template/0/text",
        "/workflow/graph/nodes/3/data/prompt_template/0/text",
    ]


def test_json_output_has_the_documented_shape(autoopt: Invoke, app: Path) -> None:
    result = autoopt("optimize", str(app), "--format", "json", "--out", str(app.with_name("o.yml")))
    report = json.loads(result.stdout)
    assert set(report) == {"run_id", "workflow_id", "output_file", "prompts"}
    assert report["workflow_id"] == "Support Bot"
    assert report["output_file"] == str(app.with_name("o.yml"))
    keys = {
        "prompt_id",
        "node_id",
        "field",
        "score_before",
        "score_after",
        "strategy",
        "confidence",
        "decision",
        "reason",
    }
    assert all(set(p) == keys for p in report["prompts"])
    improved = [p for p in report["prompts"] if p["decision"] == "optimized"]
    assert [p["strategy"] for p in improved] == [
        "hybrid->clarity_focus",
        "llm_guided->structure_focus",
    ]
    assert all(p["score_after"] > p["score_before"] for p in improved)
    assert all(p["confidence"] >= 0.7 for p in improved)
    skipped = [p for p in report["prompts"] if p["decision"] == "skipped"]
    assert {p["reason"].split(":")[0].split(" ")[0] for p in skipped} == {"score", "nothing"}
    assert sum(1 for p in skipped if p["reason"].startswith("nothing to optimize")) == 2


def test_every_decision_is_in_the_event_log(autoopt: Invoke, app: Path) -> None:
    report = json.loads(autoopt("optimize", str(app), "--format", "json").stdout)
    types = event_types(autoopt)
    assert types[0] == "RunStarted"
    assert types[-1] == "RunCompleted"
    assert types.count("PromptExtracted") == 9
    assert types.count("PatchEmitted") == 2
    # A baseline for each of the 9 non-empty prompts, and 2 optimized versions.
    assert types.count("VersionCreated") == 11
    rounds = [
        r.event for r in autoopt.log().read_all() if r.event.event_type == "IterationCompleted"
    ]
    assert rounds and all(e.correlation_id == report["run_id"] for e in rounds)
    assert all(e.fallback and e.fallback_from in ("llm_guided", "hybrid") for e in rounds)


def test_event_ids_are_time_ordered_in_log_order(autoopt: Invoke, app: Path) -> None:
    report = json.loads(autoopt("optimize", str(app), "--format", "json").stdout)
    ids = [r.event.event_id for r in autoopt.log().read_all()]
    assert len(ids) > 20
    assert {i.version for i in ids} == {7}
    assert ids == sorted(ids)
    # The run's own id is random: it is typed as a prefix (runs show 3f2a9c1e).
    assert uuid.UUID(report["run_id"]).version == 4


def test_a_second_run_of_the_same_export_makes_no_new_versions(autoopt: Invoke, app: Path) -> None:
    autoopt("optimize", str(app))
    autoopt("optimize", str(app))
    events = [r.event for r in autoopt.log().read_all()]
    versions = [e for e in events if e.event_type == "VersionCreated"]
    assert sum(1 for v in versions if v.kind == "baseline") == 9
    assert sum(1 for v in versions if v.kind == "optimized") == 2
    assert not any(v.kind == "manual" for v in versions)
    patches = [e for e in events if e.event_type == "PatchEmitted"]
    assert [p.version for p in patches[:2]] == [p.version for p in patches[2:]] == [2, 2]
    completed = [e for e in events if e.event_type == "RunCompleted"]
    assert [c.versions_created for c in completed] == [11, 0]


def test_dry_run_writes_nothing_and_records_nothing(autoopt: Invoke, app: Path) -> None:
    result = autoopt("optimize", str(app), "--dry-run")
    assert result.exit_code == 0
    assert "(dry run: nothing written)" in result.stdout.splitlines()[0]
    assert not app.with_name("support_bot.optimized.yml").exists()
    assert event_types(autoopt) == []
    assert not autoopt.storage_dir.exists() or not any(autoopt.storage_dir.rglob("*.json"))


def test_options_and_presets(autoopt: Invoke, app: Path) -> None:
    conservative = json.loads(
        autoopt(
            "optimize", str(app), "--preset", "conservative", "--format", "json", "--dry-run"
        ).stdout
    )
    strategies = {p["strategy"] for p in conservative["prompts"] if p["strategy"]}
    assert strategies <= {"clarity_focus"}
    # Explicit options beat the preset: a threshold of 0 skips every prompt.
    none = json.loads(
        autoopt(
            "optimize",
            str(app),
            "--preset",
            "aggressive",
            "--threshold",
            "0",
            "--format",
            "json",
            "--dry-run",
        ).stdout
    )
    assert {p["decision"] for p in none["prompts"]} <= {"skipped", "kept"}
    assert all(
        p["reason"].endswith("threshold 0") or p["reason"].startswith("nothing to optimize")
        for p in none["prompts"]
        if p["decision"] == "skipped"
    )
    only = json.loads(
        autoopt(
            "optimize", str(app), "--strategy", "structure_focus", "--format", "json", "--dry-run"
        ).stdout
    )
    assert {p["strategy"] for p in only["prompts"] if p["strategy"]} == {"structure_focus"}


def test_a_folder_and_a_bad_app_the_others_still_run(autoopt: Invoke, app: Path) -> None:
    bad = app.with_name("broken.yml")
    bad.write_text("app: [not, a, mapping]\n")
    result = autoopt("optimize", str(autoopt.workdir), "--format", "json")
    assert result.exit_code == 1
    assert result.stderr.endswith(f"Error: {bad}: app: expected a mapping, found a list\n")
    report = json.loads(result.stdout)
    assert report["workflow_id"] == "Support Bot"
    assert app.with_name("support_bot.optimized.yml").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--strategy", "telepathy"],
            "Error: --strategy: Value error, unknown strategy 'telepathy'; choose from ",
        ),
        (["--min-confidence", "2"], "Error: --min-confidence: Input should be less than or equal"),
        (["--max-iterations", "0"], "Error: --max-iterations: Input should be greater than"),
    ],
)
def test_bad_options_are_one_error_line(
    autoopt: Invoke, app: Path, args: list[str], message: str
) -> None:
    result = autoopt("optimize", str(app), *args)
    assert result.exit_code == 1
    assert result.stderr.startswith(message)
    assert result.stderr.count("\n") == 1
    assert not app.with_name("support_bot.optimized.yml").exists()
    assert event_types(autoopt) == []


def test_out_with_two_apps_is_refused(autoopt: Invoke, app: Path) -> None:
    other = app.with_name("other.yml")
    shutil.copy(app, other)
    result = autoopt("optimize", str(app), str(other), "--out", "x.yml")
    assert result.exit_code == 1
    assert result.stderr == "Error: --out names one output file; give exactly one app with it\n"


@pytest.mark.parametrize("spelling", ["same path", "relative", "symlink"])
def test_out_over_the_input_is_refused_unless_asked(
    autoopt: Invoke, app: Path, spelling: str
) -> None:
    original = app.read_bytes()
    out = {
        "same path": str(app),
        "relative": f"sub/../{app.name}",
        "symlink": str(autoopt.workdir / "alias.yml"),
    }[spelling]
    (autoopt.workdir / "sub").mkdir()
    (autoopt.workdir / "alias.yml").symlink_to(app)
    result = autoopt("optimize", str(app), "--out", out)
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {out}: --out is the input file; pass --overwrite-input to replace it\n"
    )
    assert app.read_bytes() == original
    assert event_types(autoopt) == []


def test_overwrite_input_replaces_the_input_with_the_patched_app(
    autoopt: Invoke, app: Path
) -> None:
    original = app.read_bytes()
    result = autoopt("optimize", str(app), "--out", str(app), "--overwrite-input")
    assert result.exit_code == 0, result.output
    assert app.read_bytes() != original
    changed = differing_paths(
        load_dsl(original, "before").document, load_dsl(app.read_bytes(), "after").document
    )
    assert changed == [
        "/workflow/graph/nodes/2/data/prompt_template/0/text",
        "/workflow/graph/nodes/3/data/prompt_template/0/text",
    ]


def test_a_killed_runs_temp_output_is_removed_by_the_next_run(autoopt: Invoke, app: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    output = app.with_name("support_bot.optimized.yml")
    stale = output.with_name(f".{output.name}.{dead.stdout.strip()}.0badc0de.tmp")
    stale.write_text("half an app")
    live = output.with_name(f".{output.name}.{os.getpid()}.0badc0de.tmp")
    live.write_text("a writer still at work")
    assert autoopt("optimize", str(app)).exit_code == 0
    assert not stale.exists()
    assert live.exists(), "a running writer's temp file was taken away"


def test_a_bad_file_writes_nothing(autoopt: Invoke) -> None:
    bad = autoopt.workdir / "bad.yml"
    bad.write_bytes(b"\xff\xfe not utf-8")
    result = autoopt("optimize", str(bad))
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1].startswith(f"Error: {bad}: UTF-16 text")
    assert not (autoopt.workdir / "bad.optimized.yml").exists()
    assert event_types(autoopt) == []


def test_the_example_has_weak_and_strong_prompts_in_two_languages() -> None:
    prompts = extract_prompts(load_dsl(EXAMPLE.read_bytes(), str(EXAMPLE)))
    texts = " ".join(p.text for p in prompts)
    assert "客服助手" in texts and "support assistant" in texts
    assert len(prompts) == 9


def test_a_progress_bar_goes_to_stderr_when_it_is_a_terminal(autoopt: Invoke, app: Path) -> None:
    """Under a pseudo-terminal the bar is drawn on stderr; stdout keeps only the table."""
    master, slave = pty.openpty()
    env = {**os.environ, **autoopt.env, "COLUMNS": "120"}
    process = subprocess.Popen(
        [sys.executable, "-m", "autoopt.cli.main", "optimize", str(app), "--dry-run"],
        stdout=subprocess.PIPE,
        stderr=slave,
        env=env,
        cwd=autoopt.workdir,
    )
    os.close(slave)
    stdout, _ = process.communicate(timeout=120)
    drawn = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        drawn += chunk
    os.close(master)
    assert process.returncode == 0
    assert b"Support Bot" in drawn and b"100%" in drawn
    assert b"100%" not in stdout
