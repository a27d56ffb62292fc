"""``autoopt runs audit``: the decision trail of one run, exactly as a person reads it.

The run is real: the project's OptimizerService, wired by the Container over a
SQLite file in ``tmp_path``, optimizes a small app written here, and its LLM
strategy talks through the real ``openai`` SDK to
:class:`tests.llm_server.FakeLLMServer`. Only the clock and the ids are fixed
(:mod:`tests.fakes`), so every byte of the audit is known in advance.

The app has three prompts, one per verdict:

* "Writer" is weak: the model's rewrite is accepted (a priced call), its
  second round changes nothing and is rejected, and clarity_focus finds
  nothing more: optimized, with a version and a patch;
* "Translator" scores above the threshold: skipped, no rounds;
* "摘要" is too short (a critical issue): the model's answer has no
  ``optimized_prompt``, so llm_guided falls back to structure_focus (the
  failed call is still recorded, with its tokens and error), and no rule changes
  the text: every round rejected, the prompt kept.

A second run with a model the price table does not know shows the cost as
unknown, never as zero.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from autoopt.infrastructure.bootstrap import Container
from autoopt.infrastructure.dsl_files import FileSink, read_app
from autoopt.infrastructure.settings import load_settings
from tests import dify_apps
from tests.e2e.conftest import Invoke
from tests.fakes import SequentialIds, SteppingClock
from tests.llm_server import Answer, Dynamic, FakeLLMServer, JSONAnswer, Response

PRICED = "gpt-4o-mini"  # $0.15 in, $0.60 out per million tokens
UNPRICED = "local-notes-7b"
START = "1711000000001"
WRITER = (
    "Please note that you are basically a writer of short notes about "
    f"{{{{#{START}.topic#}}}}. Maybe write in a kind of friendly way. Actually, "
    f"mention the topic {{{{#{START}.topic#}}}} once. Keep it short."
)
TRANSLATOR = f"You translate {{{{#{START}.topic#}}}} into French. Output only the translation."
SUMMARY = f"Summarize {{{{#{START}.topic#}}}}."
REWRITTEN = "\n".join(
    [
        "You write short notes about a topic.",
        "",
        "## Input",
        f"- Topic: {{{{#{START}.topic#}}}}",
        "",
        "## Requirements",
        f"- Mention {{{{#{START}.topic#}}}} exactly once.",
        "- Use a friendly tone and at most three sentences.",
    ]
)


def llm_node(node_id: str, title: str, text: str) -> dict[str, Any]:
    return dify_apps.llm_node(node_id, text, title=title, model=PRICED)


APP = dify_apps.workflow_app(
    "Notes",
    [
        llm_node("1711000000002", "Writer", WRITER),
        llm_node("1711000000003", "Translator", TRANSLATOR),
        llm_node("1711000000004", "摘要", SUMMARY),
    ],
    start=START,
    inputs=("topic",),
)


def answer(body: dict[str, Any]) -> Response:
    """A rewrite of the Writer prompt; for anything else, JSON without the prompt."""
    asked = body["messages"][-1]["content"]
    if "Summarize" in asked:
        return Answer('{"rationale": "too short to improve"}', 120, 10)
    # The rewrite again when asked about the rewrite: the second round changes nothing.
    return JSONAnswer(REWRITTEN, prompt_tokens=300, completion_tokens=80)


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(default=Dynamic(answer)) as fake:
        yield fake
        assert fake.errors == []


def record_run(
    autoopt: Invoke,
    server: FakeLLMServer,
    monkeypatch: pytest.MonkeyPatch,
    *,
    app: dict[str, Any] = APP,
    model: str = PRICED,
    strategies: tuple[str, ...] = ("llm_guided", "clarity_focus"),
    first_id: int = 0,
) -> str:
    """One real run of ``app`` with a fixed clock and fixed ids; returns its run id."""
    config = autoopt.workdir / "autoopt.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "optimizer": {
                    "llm": {"base_url": server.base_url, "model": model, "max_retries": 0},
                    "optimization": {
                        "strategies": list(strategies),
                        "max_iterations": 2,
                        "score_threshold": 80.0,
                        "min_confidence": 0.7,
                    },
                }
            }
        ),
        encoding="utf-8",
    )
    source = Path("notes.yml")  # relative, as a user types it: the audit names it so
    source.write_text(yaml.safe_dump(app, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-audit-test")
    settings = load_settings(config, environ=autoopt.env)
    container = Container(settings, SteppingClock(), SequentialIds(first_id))
    try:
        service = container.optimizer_service(llm=container.llm_rewriter())
        report = service.run(
            read_app(source, settings.dsl.max_bytes),
            source.read_text(encoding="utf-8"),
            settings.optimization.config(),
            effective_config=settings.effective(),
            tool_version="0.9.0",
            sink=FileSink(Path("notes.optimized.yml")),
        )
    finally:
        container.close()
    return report.run_id


EXPECTED_TABLE = """\
run        00000000-0000-0000-0000-000000000001
app        Notes (workflow)
workflow   Notes
source     notes.yml
tool       0.9.0
settings   llm_guided, clarity_focus; threshold 80, confidence 0.7, 2 rounds; model gpt-4o-mini
status     completed
started    2026-03-01T00:00:00Z
finished   2026-03-01T00:00:22Z
prompts    3 found, 1 optimized, 4 versions created
output     notes.optimized.yml

prompt 1/3  Writer (llm)  /prompt_template/0/text
  id         Notes/1711000000002/prompt_template/0/text
  baseline   overall 72.9 (clarity 59.8, efficiency 92.5)
  issues     vague_language:warning
  triage     optimize: score 72.88 is below the threshold 80
  strategy       round  score         confidence  decision  reason
  -------------  -----  ------------  ----------  --------  --------------------
  llm_guided     1      72.9 -> 90.9  1.000       accepted  score 72.88 -> 90.88
      llm: gpt-4o-mini, 300 + 80 tokens, $0.000093
  llm_guided     2      90.9 -> 90.9  0.500       rejected  no change
      llm: gpt-4o-mini, 300 + 80 tokens, $0.000093
  clarity_focus  1      90.9 -> 90.9  0.500       rejected  no change
  outcome    optimized -> version 2 (llm_guided)
  patch      /workflow/graph/nodes/1/data/prompt_template/0/text

prompt 2/3  Translator (llm)  /prompt_template/0/text
  id         Notes/1711000000003/prompt_template/0/text
  baseline   overall 88.3 (clarity 84.8, efficiency 93.6)
  issues     too_short:warning
  triage     skip: score 88.31 is at or above the threshold 80
  outcome    skipped: score 88.31 is at or above the threshold 80

prompt 3/3  摘要 (llm)  /prompt_template/0/text
  id         Notes/1711000000004/prompt_template/0/text
  baseline   overall 79.5 (clarity 83.0, efficiency 74.3)
  issues     too_short:critical
  triage     optimize: score 79.51 is below the threshold 80
  strategy                     round  score         confidence  decision  reason
  ---------------------------  -----  ------------  ----------  --------  ---------
  llm_guided->structure_focus  1      79.5 -> 79.5  0.500       rejected  no change
      fallback: LLMResponseError: the answer's JSON has no optimized_prompt text
      llm: gpt-4o-mini, 120 + 10 tokens, $0.000024, failed
  clarity_focus                1      79.5 -> 79.5  0.500       rejected  no change
  outcome    kept (no accepted candidate)

totals
  prompts    3: 1 optimized, 1 kept, 1 skipped
  rounds     5: 1 accepted, 4 rejected, 1 fell back to rules
  llm calls  3 (0 cached), 720 + 170 tokens, $0.000210
"""


def test_audit_table_is_the_whole_decision_trail(
    autoopt: Invoke, server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = record_run(autoopt, server, monkeypatch)
    assert run_id == "00000000-0000-0000-0000-000000000001"

    result = autoopt("runs", "audit", "00000000")
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == EXPECTED_TABLE
    assert autoopt("runs", "audit", run_id, "--format", "table").stdout == EXPECTED_TABLE


def test_audit_json_is_one_document(
    autoopt: Invoke, server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = record_run(autoopt, server, monkeypatch)
    result = autoopt("runs", "audit", run_id[:8], "--format", "json")
    assert (result.exit_code, result.stderr) == (0, "")
    document = json.loads(result.stdout)

    assert set(document) == {"run", "prompts", "totals"}
    run = document["run"]
    assert (run["run_id"], run["status"], run["source_name"]) == (run_id, "completed", "notes.yml")
    assert (run["started_at"], run["finished_at"]) == (
        "2026-03-01T00:00:00Z",
        "2026-03-01T00:00:22Z",
    )
    writer, translator, summary = document["prompts"]
    assert set(writer) == {
        "prompt_id",
        "node_id",
        "node_title",
        "node_type",
        "field_path",
        "baseline",
        "issues",
        "triage",
        "triage_reason",
        "iterations",
        "final_version",
        "final_version_strategy",
        "final_version_run_id",
        "patch",
        "decision",
    }
    assert [(p["node_title"], p["decision"], p["final_version"]) for p in document["prompts"]] == [
        ("Writer", "optimized", 2),
        ("Translator", "skipped", None),
        ("摘要", "kept", None),
    ]
    assert writer["prompt_id"] == "Notes/1711000000002/prompt_template/0/text"
    assert writer["baseline"] == {"overall": 72.88, "clarity": 59.8, "efficiency": 92.5}
    assert writer["issues"] == ["vague_language:warning"]
    assert (writer["triage"], writer["triage_reason"]) == (
        "optimize",
        "score 72.88 is below the threshold 80",
    )
    assert writer["patch"] == {
        "version": 2,
        "document_path": "/workflow/graph/nodes/1/data/prompt_template/0/text",
        "old_text": WRITER,
        "new_text": REWRITTEN,
    }
    assert translator["iterations"] == [] and translator["patch"] is None

    rounds = [
        (r["strategy"], r["iteration"], r["decision"], r["reason"]) for r in writer["iterations"]
    ]
    assert rounds == [
        ("llm_guided", 1, "accepted", "score 72.88 -> 90.88"),
        ("llm_guided", 2, "rejected", "no change"),
        ("clarity_focus", 1, "rejected", "no change"),
    ]
    first = writer["iterations"][0]
    assert (first["score_before"], first["score_after"], first["confidence"]) == (72.88, 90.88, 1.0)
    call = first["llm_call"]
    assert call["base_url"] == server.base_url
    assert call["latency_ms"] > 0  # measured: the one value a rerun does not repeat
    assert {k: v for k, v in call.items() if k not in ("base_url", "latency_ms")} == {
        "model": PRICED,
        "request_sha256": call["request_sha256"],
        "template_version": call["template_version"],
        "prompt_tokens": 300,
        "completion_tokens": 80,
        "cost_usd": 0.000093,
        "cached": False,
        "error": None,
    }
    assert writer["iterations"][2]["llm_call"] is None

    fell_back = summary["iterations"][0]
    assert (fell_back["strategy"], fell_back["fallback"], fell_back["fallback_from"]) == (
        "structure_focus",
        True,
        "llm_guided",
    )
    assert fell_back["fallback_error"] == (
        "LLMResponseError: the answer's JSON has no optimized_prompt text"
    )
    assert fell_back["llm_call"]["error"] == "the answer's JSON has no optimized_prompt text"
    assert fell_back["llm_call"]["cost_usd"] == 0.000024  # a billed answer, however useless

    assert document["totals"] == {
        "prompts": 3,
        "optimized": 1,
        "kept": 1,
        "skipped": 1,
        "rounds": 5,
        "accepted": 1,
        "rejected": 4,
        "fallbacks": 1,
        "llm_calls": 3,
        "cached_calls": 0,
        "prompt_tokens": 720,
        "completion_tokens": 170,
        "cost_usd": 0.00021,
        "calls_with_unknown_cost": 0,
    }


def test_an_unknown_price_is_unknown_not_zero(
    autoopt: Invoke, server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two nodes with one text: the second node's questions are answered from the
    # cache, at a known cost of zero; the first node's cost is unknown.
    twin = json.loads(json.dumps(APP))
    nodes = twin["workflow"]["graph"]["nodes"]
    nodes[2:] = [llm_node("1711000000005", "Writer again", WRITER)]
    run_id = record_run(
        autoopt, server, monkeypatch, app=twin, model=UNPRICED, strategies=("llm_guided",)
    )

    table = autoopt("runs", "audit", run_id[:8]).stdout
    calls = [line.strip() for line in table.splitlines() if line.strip().startswith("llm:")]
    assert calls == [
        f"llm: {UNPRICED}, 300 + 80 tokens, cost unknown",
        f"llm: {UNPRICED}, 300 + 80 tokens, cost unknown",
        f"llm: {UNPRICED}, 300 + 80 tokens, $0.000000, cached",
        f"llm: {UNPRICED}, 300 + 80 tokens, $0.000000, cached",
    ]
    assert table.endswith("  llm calls  4 (2 cached), 1200 + 320 tokens, $0.000000 + unknown\n")

    document = json.loads(autoopt("runs", "audit", run_id[:8], "--format", "json").stdout)
    costs = [r["llm_call"]["cost_usd"] for p in document["prompts"] for r in p["iterations"]]
    assert costs == [None, None, 0.0, 0.0]
    assert (document["totals"]["cost_usd"], document["totals"]["calls_with_unknown_cost"]) == (0, 2)


def test_a_prefix_must_name_one_run(
    autoopt: Invoke, server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    record_run(autoopt, server, monkeypatch, strategies=("clarity_focus",))
    second = record_run(autoopt, server, monkeypatch, strategies=("clarity_focus",), first_id=100)
    assert server.requests == []

    unknown = autoopt("runs", "audit", "nope")
    assert (unknown.exit_code, unknown.stdout, unknown.stderr) == (
        1,
        "",
        "Error: no run with an id starting 'nope'\n",
    )
    ambiguous = autoopt("runs", "audit", "00000000", "--format", "json")
    assert (ambiguous.exit_code, ambiguous.stdout, ambiguous.stderr) == (
        1,
        "",
        "Error: 2 runs with an id starting '00000000'\n",
    )
    assert autoopt("runs", "audit", second).exit_code == 0
