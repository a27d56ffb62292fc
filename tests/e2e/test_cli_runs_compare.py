"""``autoopt runs compare``: two runs of one app, prompt by prompt.

Proves: the exact table for a first run of the example and a second run of an
edited export (one prompt's text changed, one classifier class removed, other
strategies): unchanged prompts show no change, the edited prompt says its text
changed, a different outcome is named, the removed prompt is 'prompt gone';
runs of two different apps are refused with one error line.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from tests.conftest import REPO_ROOT
from tests.e2e.conftest import Invoke

EXAMPLE = REPO_ROOT / "examples" / "support_bot.yml"


def run_ids(autoopt: Invoke) -> list[str]:
    return [
        r.event.run_id  # type: ignore[attr-defined]
        for r in autoopt.log().read_all()
        if r.event.event_type == "RunStarted"
    ]


def edited_export(folder: Path) -> Path:
    """The example, re-exported after an edit in Dify: one prompt reworded, one class gone."""
    document = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    nodes = {n["data"]["title"]: n["data"] for n in document["workflow"]["graph"]["nodes"]}
    nodes["Product answers"]["prompt_template"][0]["text"] += "\nNever guess a price."
    nodes["Route question"]["classes"].pop()
    path = folder / "edited.yml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    return path


def test_two_runs_of_one_app_compared_prompt_by_prompt(autoopt: Invoke) -> None:
    first = autoopt.workdir / "support_bot.yml"
    shutil.copy(EXAMPLE, first)
    assert autoopt("optimize", str(first), "--strategy", "structure_focus").exit_code == 0
    edited = edited_export(autoopt.workdir)
    result = autoopt("optimize", str(edited), "--strategy", "clarity_focus")
    assert result.exit_code == 0, result.output
    one, two = run_ids(autoopt)

    result = autoopt("runs", "compare", one[:8], two[:8], "--format", "csv")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "node,field,first,second,change",
        "Route question,/instruction,"
        "skipped 85.1 (score 85.07 is at or above the threshold 80),"
        "skipped 85.1 (score 85.07 is at or above the threshold 80),",
        "Route question,/classes/0/name,"
        "skipped 84.7 (score 84.66 is at or above the threshold 80),"
        "skipped 84.7 (score 84.66 is at or above the threshold 80),",
        "Route question,/classes/1/name,"
        "skipped 88.1 (score 88.09 is at or above the threshold 80),,prompt gone",
        "Product answers,/prompt_template/0/text,"
        "optimized 74.0 -> 86.0 (structure_focus),"
        'optimized 74.0 -> 78.3 (clarity_focus),"text changed, result"',
        "Product answers,/memory/query_prompt_template,"
        "skipped 75.1 (nothing to optimize: only variable references or code),"
        "skipped 75.1 (nothing to optimize: only variable references or code),",
        "订单与退款,/prompt_template/0/text,"
        "optimized 78.1 -> 92.5 (structure_focus),kept 78.1,decision",
        "订单与退款,/prompt_template/1/text,"
        "skipped 75.1 (nothing to optimize: only variable references or code),"
        "skipped 75.1 (nothing to optimize: only variable references or code),",
        "Order number,/instruction,"
        "skipped 97.6 (score 97.6 is at or above the threshold 80),"
        "skipped 97.6 (score 97.6 is at or above the threshold 80),",
        "Order number,/parameters/0/description,"
        "skipped 90.2 (score 90.25 is at or above the threshold 80),"
        "skipped 90.2 (score 90.25 is at or above the threshold 80),",
    ]


def test_runs_of_different_apps_are_refused(autoopt: Invoke) -> None:
    first = autoopt.workdir / "support_bot.yml"
    shutil.copy(EXAMPLE, first)
    other = autoopt.workdir / "other.yml"
    other.write_text(
        EXAMPLE.read_text(encoding="utf-8").replace("name: Support Bot", "name: Other Bot", 1),
        encoding="utf-8",
    )
    for app in (first, other):
        assert autoopt("optimize", str(app)).exit_code == 0
    one, two = run_ids(autoopt)
    result = autoopt("runs", "compare", one, two)
    assert result.exit_code == 1
    assert result.output == (
        f"Error: runs {one[:8]} and {two[:8]} are of different apps ('Support Bot', 'Other Bot')\n"
    )
