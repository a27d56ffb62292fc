"""``autoopt report html RUN --out FILE``: one self-contained page per run.

Runs are real: the CLI optimizes an app (no API key, so the rule strategies),
then writes the page. The hostile-prompt test opens the page in headless
Chromium (:mod:`tests.browser`, Debian's package, installed when missing) and
reads the DOM after load: a prompt holding ``<script>``, an ``<img onerror>``
and Dify's ``{{#x.y#}}`` must show as text and run nothing.
"""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import yaml

from tests import browser
from tests.conftest import REPO_ROOT
from tests.e2e.conftest import Invoke

EXAMPLE = REPO_ROOT / "examples" / "support_bot.yml"
POLICY = "default-src 'none'; style-src 'unsafe-inline'"
SCRIPT = "<script>document.title='pwned';document.body.innerHTML='pwned'</script>"
IMAGE = "<img src=x onerror=\"document.title='pwned';document.body.innerHTML='pwned'\">"
# Weak on purpose (vague words, one long line), so structure_focus rewrites it.
HOSTILE = (
    "Please note that you are basically a helper for {{#x.y#}}. Maybe answer in a kind of "
    f"friendly way. Actually, quote this exactly: {SCRIPT} and {IMAGE}. Keep it short."
)
HOSTILE_TITLE = "Writer <i>x</i>"


def hostile_app() -> dict[str, Any]:
    return {
        "app": {"mode": "workflow", "name": "Hostile <b>App</b>"},
        "kind": "app",
        "version": "0.1.5",
        "workflow": {
            "graph": {
                "edges": [],
                "nodes": [
                    {
                        "id": "x",
                        "type": "custom",
                        "data": {
                            "title": "Start",
                            "type": "start",
                            "variables": [{"label": "y", "type": "text-input", "variable": "y"}],
                        },
                    },
                    {
                        "id": "1711000000002",
                        "type": "custom",
                        "data": {
                            "title": HOSTILE_TITLE,
                            "type": "llm",
                            "model": {"mode": "chat", "name": "gpt-4o-mini", "provider": "openai"},
                            "prompt_template": [{"id": "p1", "role": "system", "text": HOSTILE}],
                        },
                    },
                ],
            }
        },
    }


def optimize(autoopt: Invoke, app: Path, *options: str) -> dict[str, Any]:
    result = autoopt("optimize", str(app), "--format", "json", *options)
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def write_report(autoopt: Invoke, run: str, out: Path, *options: str) -> None:
    result = autoopt("report", "html", run, "--out", str(out), *options)
    assert (result.exit_code, result.stdout) == (0, f"Wrote {out}\n"), result.output


class DiffTables(HTMLParser):
    """The text of each side-by-side diff on a page: per table, its two columns of lines."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[dict[str, list[str]]] = []
        self._cell: tuple[str, list[str]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = (dict(attrs).get("class") or "").split()
        if tag == "table" and "diff" in classes:
            self.tables.append({"old": [], "new": []})
        elif tag == "td" and "code" in classes and "empty" not in classes:
            self._cell = ("old" if "old" in classes else "new", [])

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell[1].append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            side, parts = self._cell
            self.tables[-1][side].append("".join(parts))
            self._cell = None


def diff_tables(page: str) -> list[dict[str, list[str]]]:
    parser = DiffTables()
    parser.feed(page)
    return parser.tables


def test_hostile_prompt_is_text_in_the_browser(autoopt: Invoke) -> None:
    app = autoopt.workdir / "hostile.yml"
    app.write_text(yaml.safe_dump(hostile_app(), allow_unicode=True), encoding="utf-8")
    run = optimize(autoopt, app, "--strategy", "structure_focus")
    assert [p["decision"] for p in run["prompts"]] == ["optimized"], run
    out = autoopt.workdir / "report.html"
    write_report(autoopt, run["run_id"][:8], out)

    raw = out.read_text(encoding="utf-8")
    assert "<script" not in raw.lower()
    assert not re.search(r"https?://", raw)
    assert f'<meta http-equiv="Content-Security-Policy" content="{POLICY}' in raw

    dom = browser.dump_dom(out)
    title = f"autoopt report: Hostile &lt;b&gt;App&lt;/b&gt;, run {run['run_id']}"
    assert f"<title>{title}</title>" in dom
    assert f'<code id="run-id">{run["run_id"]}</code>' in dom
    assert '<table class="diff">' in dom
    # Shown as text: escaped in the serialized DOM, on both sides of the diff.
    assert dom.count("&lt;script&gt;document.title='pwned'") == 2
    assert dom.count("&lt;img src=x onerror=") == 2
    assert "{{#x.y#}}" in dom
    assert "Writer &lt;i&gt;x&lt;/i&gt;" in dom
    # Nothing ran: no element was made from the prompt, and no script rewrote the page.
    assert not re.search(r"<(script|img|i|b)[\s>]", dom)
    assert "<body>pwned" not in dom and "<title>pwned" not in dom

    # What a reader sees, for the record (and for a person checking by eye).
    shot = browser.screenshot(out, autoopt.workdir / "report.png")
    assert shot.stat().st_size > 10_000


def test_support_bot_page_shows_every_prompt_and_both_diffs(autoopt: Invoke) -> None:
    app = autoopt.workdir / "support_bot.yml"
    shutil.copy(EXAMPLE, app)
    run_id = optimize(autoopt, app)["run_id"]
    out = autoopt.workdir / "support_bot.html"
    write_report(autoopt, run_id, out)
    page = out.read_text(encoding="utf-8")

    audit = json.loads(autoopt("runs", "audit", run_id, "--format", "json").stdout)
    for prompt in audit["prompts"]:
        assert prompt["node_title"] in page
        assert prompt["field_path"] in page
    assert "Route question" in page and "订单与退款" in page and "Order number" in page
    # The two optimized prompts, before and after, line for line, nothing lost or added.
    patches = [p["patch"] for p in audit["prompts"] if p["decision"] == "optimized"]
    assert len(patches) == 2
    assert diff_tables(page) == [
        {"old": p["old_text"].splitlines(), "new": p["new_text"].splitlines()} for p in patches
    ]
    # A skipped prompt's text is shown once, as extracted.
    assert '<pre class="text">Decide which kind of question the user is asking.</pre>' in page
    # Scores, decisions with reasons, and the cost.
    assert "74.0 -&gt; 90.3" in page
    assert "skip: score 85.07 is at or above the threshold 80" in page
    assert "confidence 0.665 is below 0.7" in page
    assert "<dt>cost</dt><dd>$0.000000</dd>" in page


def test_out_is_never_overwritten_without_force(autoopt: Invoke) -> None:
    app = autoopt.workdir / "support_bot.yml"
    shutil.copy(EXAMPLE, app)
    run_id = optimize(autoopt, app)["run_id"]
    out = autoopt.workdir / "report.html"
    out.write_text("keep me", encoding="utf-8")

    refused = autoopt("report", "html", run_id, "--out", str(out))
    assert (refused.exit_code, refused.stdout) == (1, "")
    assert refused.stderr == f"Error: {out} exists; pass --force to replace it\n"
    assert out.read_text(encoding="utf-8") == "keep me"

    write_report(autoopt, run_id, out, "--force")
    assert run_id in out.read_text(encoding="utf-8")
    # Nothing is left beside it: the atomic write's temp files are gone.
    assert sorted(p.name for p in autoopt.workdir.glob(".report.html*")) == []


def test_unknown_run_is_one_error_line(autoopt: Invoke) -> None:
    assert autoopt("db", "upgrade").exit_code == 0
    out = autoopt.workdir / "report.html"
    result = autoopt("report", "html", "nope", "--out", str(out))
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == "Error: no run with an id starting 'nope'\n"
    assert not out.exists()


def test_unwritable_out_is_one_error_line(autoopt: Invoke) -> None:
    app = autoopt.workdir / "support_bot.yml"
    shutil.copy(EXAMPLE, app)
    run_id = optimize(autoopt, app)["run_id"]
    out = autoopt.workdir / "missing" / "report.html"
    result = autoopt("report", "html", run_id, "--out", str(out))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {out}: cannot write (")
    assert result.stderr.count("\n") == 1
