"""``autoopt versions``, ``storage`` and ``fsck`` on a real store and database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoopt.domain.models import PromptVersion, Scores
from autoopt.infrastructure.storage.naming import prompt_dir_name
from tests.e2e.conftest import Invoke
from tests.factories import at

PROMPT = "wf-1/1711528915811/prompt_template/0/text"


@pytest.fixture
def versioned(autoopt: Invoke) -> Invoke:
    with autoopt.services() as services:
        services.versions.create_version(
            PROMPT,
            "Summarize {{#sys.query#}}.\nBe brief.\n",
            kind="baseline",
            scores=Scores(overall=50, clarity=45, efficiency=57.5),
        )
        services.versions.create_version(
            PROMPT,
            "Summarize {{#sys.query#}} in 3 bullets.\nBe brief.\n",
            kind="optimized",
            scores=Scores(overall=72, clarity=80, efficiency=60),
            strategy="clarity_focus",
            parent_version=1,
        )
    return autoopt


def prompt_folder(autoopt: Invoke) -> Path:
    return autoopt.storage_dir / prompt_dir_name(PROMPT)


def test_versions_list(versioned: Invoke) -> None:
    result = versioned("versions", "list", PROMPT, "--format", "csv")
    lines = result.stdout.splitlines()
    assert lines[0] == "version,kind,overall,clarity,efficiency,strategy,created_at,note"
    assert [line.split(",")[:6] for line in lines[1:]] == [
        ["2", "optimized", "72.0", "80.0", "60.0", "clarity_focus"],
        ["1", "baseline", "50.0", "45.0", "57.5", ""],
    ]


def test_versions_list_of_an_unknown_prompt(versioned: Invoke) -> None:
    result = versioned("versions", "list", "nope")
    assert (result.exit_code, result.stderr) == (1, "Error: no versions of prompt 'nope'\n")


def test_versions_show_prints_the_text_on_stdout(versioned: Invoke) -> None:
    result = versioned("versions", "show", PROMPT, "2")
    assert result.stdout == "Summarize {{#sys.query#}} in 3 bullets.\nBe brief.\n\n"
    assert result.stderr.startswith(f"# {PROMPT} version=2, kind=optimized, overall=72.0")
    missing = versioned("versions", "show", PROMPT, "9")
    assert (missing.exit_code, missing.stderr) == (
        1,
        f"Error: prompt '{PROMPT}' has no version 9\n",
    )


def test_versions_diff(versioned: Invoke) -> None:
    assert versioned("versions", "diff", PROMPT, "1", "2").stdout == (
        "# scores: overall +22, clarity +35, efficiency +2.5\n"
        f"--- {PROMPT}@1\n+++ {PROMPT}@2\n@@ -1,2 +1,2 @@\n"
        "-Summarize {{#sys.query#}}.\n+Summarize {{#sys.query#}} in 3 bullets.\n Be brief.\n"
    )


def test_versions_rollback_records_an_event(versioned: Invoke) -> None:
    result = versioned("versions", "rollback", PROMPT, "1", "--reason", "too long")
    assert result.stdout == f"{PROMPT}: version 3 restores version 1\n"
    event = json.loads(versioned("events", "show", "3").stdout)
    assert event["stream_id"] == f"prompt-{PROMPT}"
    assert event["stream_version"] == 3
    assert event["event_type"] == "VersionRolledBack"
    assert event["payload"]["restored_version"] == 1
    assert event["payload"]["reason"] == "too long"
    assert versioned("versions", "show", PROMPT, "3").stdout.startswith(
        "Summarize {{#sys.query#}}."
    )


def test_storage_stats_and_reindex(versioned: Invoke) -> None:
    stats = json.loads(versioned("storage", "stats", "--format", "json").stdout)
    figures = {row["figure"]: row["value"] for row in stats}
    assert (figures["prompts"], figures["versions"]) == (1, 2)
    (versioned.storage_dir / "index.json").write_text("{broken")
    assert versioned("storage", "reindex").stdout == "index.json rebuilt: 1 prompt(s)\n"
    index = json.loads((versioned.storage_dir / "index.json").read_text())
    assert index == {PROMPT: {"latest": 2, "total": 2}}


def test_storage_verify_names_a_corrupt_file(versioned: Invoke) -> None:
    assert versioned("storage", "verify").stdout == "ok\n"
    broken = prompt_folder(versioned) / "1.json"
    broken.write_text('{"prompt_id": ')
    result = versioned("storage", "verify")
    assert result.exit_code == 1
    assert result.stdout.startswith(f"{broken}: corrupt version file")
    assert result.stderr == "Error: 1 problem(s) in the version store\n"


def test_cleanup_keeps_latest_and_best_and_fsck_stays_clean(versioned: Invoke) -> None:
    with versioned.services() as services:
        for n, overall in enumerate([40, 30, 20], start=3):
            services.versions.create_version(
                PROMPT,
                f"text {n}",
                kind="manual",
                scores=Scores(overall=overall, clarity=50, efficiency=50),
            )
    result = versioned("storage", "cleanup", "--keep", "1", "--format", "csv")
    assert result.stdout == f"prompt_id,removed\n{PROMPT},1 3 4\n"
    assert sorted(p.name for p in prompt_folder(versioned).glob("[0-9]*")) == [
        "1.deleted",
        "2.json",
        "3.deleted",
        "4.deleted",
        "5.json",
    ]
    assert versioned("fsck").stdout == "ok\n"


def test_fsck_finds_and_repairs_a_version_without_its_event(versioned: Invoke) -> None:
    with versioned.services() as services:
        services.storage.save_version(
            PromptVersion(
                prompt_id=PROMPT, version=3, text="crashed", kind="manual", created_at=at(7)
            )
        )
    result = versioned("fsck")
    assert result.exit_code == 1
    assert result.stdout == f"{PROMPT}: version 3 has no event in the log\n"
    assert result.stderr == "Error: 1 disagreement(s)\n"

    repaired = versioned("fsck", "--repair")
    assert repaired.exit_code == 0
    assert repaired.stdout == (
        "repaired: rebuilt index.json\n"
        f"repaired: {PROMPT}: recorded version 3 in the log\n"
        "repaired: read models: applied 1 event(s) they were behind\n"
        "ok\n"
    )
    assert versioned("fsck").stdout == "ok\n"


def test_fsck_reports_a_lost_file_and_a_changed_file(versioned: Invoke) -> None:
    folder = prompt_folder(versioned)
    (folder / "1.json").unlink()
    data = json.loads((folder / "2.json").read_text())
    data["text"] = "tampered"
    (folder / "2.json").write_text(json.dumps(data))
    result = versioned("fsck", "--repair")
    assert result.exit_code == 1
    assert result.stdout.splitlines()[-2:] == [
        f"{PROMPT}: version 2: file differs from the recorded SHA-256",
        f"{PROMPT}: version 1 is in the log but has no file",
    ]


def test_fsck_names_read_models_behind_the_log_and_repair_catches_them_up(
    versioned: Invoke,
) -> None:
    # A crash after an append and before the projection update leaves exactly this.
    with versioned.services() as services:
        services.versions.create_version(PROMPT, "appended, not projected", kind="manual")
        services.event_log.appended = 0  # the process "dies" before catching up
    result = versioned("fsck")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"projection {name}: at position 2, the log at 3: 1 event(s) not applied"
        for name in ("runs", "prompts", "iterations", "versions", "patches", "llm_calls")
    ]
    repaired = versioned("fsck", "--repair")
    assert repaired.stdout.splitlines()[-2:] == [
        "repaired: read models: applied 1 event(s) they were behind",
        "ok",
    ]
    status = versioned("projections", "status", "--format", "csv").stdout.splitlines()
    assert {line.rsplit(",", 1)[1] for line in status[1:]} == {"0"}


def test_rollback_of_an_unknown_prompt_leaves_nothing_in_the_store(versioned: Invoke) -> None:
    before = sorted(p.name for p in versioned.storage_dir.iterdir())
    result = versioned("versions", "rollback", "no such prompt", "1")
    assert (result.exit_code, result.stderr) == (
        1,
        "Error: prompt 'no such prompt' has no version 1\n",
    )
    assert sorted(p.name for p in versioned.storage_dir.iterdir()) == before
