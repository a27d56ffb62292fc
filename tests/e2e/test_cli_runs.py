"""``autoopt runs list | show``: completed and failed runs, read from the runs table."""

from __future__ import annotations

import json
import shutil

from tests.conftest import REPO_ROOT
from tests.e2e.conftest import Invoke

EXAMPLE = REPO_ROOT / "examples" / "support_bot.yml"


def test_runs_list_and_show(autoopt: Invoke) -> None:
    app = autoopt.workdir / "support_bot.yml"
    shutil.copy(EXAMPLE, app)
    good = json.loads(autoopt("optimize", str(app), "--format", "json").stdout)
    # An output folder that does not exist: the run fails after RunStarted.
    failed = autoopt("optimize", str(app), "--out", str(autoopt.workdir / "no" / "out.yml"))
    assert failed.exit_code == 1

    listed = json.loads(autoopt("runs", "list", "--format", "json").stdout)
    assert [r["status"] for r in listed] == ["failed", "completed"]
    assert listed[1]["run_id"] == good["run_id"]
    assert (listed[1]["prompts_found"], listed[1]["prompts_optimized"]) == (9, 2)
    assert listed[0]["prompts_found"] is None
    assert set(listed[0]) == {
        "run_id",
        "workflow_id",
        "status",
        "started_at",
        "prompts_found",
        "prompts_optimized",
        "versions_created",
    }
    assert json.loads(autoopt("runs", "list", "--limit", "1", "--format", "json").stdout) == [
        listed[0]
    ]

    shown = json.loads(autoopt("runs", "show", listed[0]["run_id"][:8], "--format", "json").stdout)
    fields = {row["field"]: row["value"] for row in shown}
    assert fields["status"] == "failed"
    assert fields["error_type"] == "DSLFormatError"
    assert "cannot write" in fields["error_message"]
    assert fields["dsl_sha256"] == fields["dsl_sha256"].lower() and len(fields["dsl_sha256"]) == 64


def test_show_needs_one_matching_run(autoopt: Invoke) -> None:
    result = autoopt("runs", "show", "nope")
    assert (result.exit_code, result.stderr) == (1, "Error: no run with an id starting 'nope'\n")
