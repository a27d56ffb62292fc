"""``autoopt optimize`` with a language model, end to end through the command line.

The real ``openai`` SDK talks HTTP to :class:`tests.llm_server.FakeLLMServer`
on 127.0.0.1; nothing in the project is mocked. Each scripted answer must end
in the documented decision, and the ``IterationCompleted`` event of every round
must say what happened: the strategy, the decision and its reason, the
fallback (from which LLM strategy, after which error) and the exchange with
the model (model, request hash, answer text, tokens, cost, latency, cache).

What this file proves, case by case:

* a good answer is accepted and written to the output file, its exchange
  recorded in full and priced;
* a timeout, 5xx after the retries, and an unusable body each fall back to the
  strategy's rule-based rewrite, naming the error, after exactly the requests
  the retry policy allows; a 429 with ``retry-after`` is retried and succeeds;
* an answer that loses a variable reference, or that answers a Chinese prompt
  in English, is refused by the guards;
* a refused API key (401) costs one request for the whole run and one note;
  no key at all costs none and prints one note;
* answers are cached: a second run asks nothing and records ``cached=True`` at
  no cost; ``--no-cache`` asks again; ``autoopt llm cache stats|clear`` work;
* a spent budget stops further calls and the run still completes;
* ``--dry-run`` asks nothing and prints an estimate;
* the API key never leaves the process: not in the database, the version
  store, the output, any event, any log record or any CLI output.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import Result

from autoopt.domain.events import IterationCompleted
from autoopt.domain.strategies import clarity_focus, structure_focus
from autoopt.infrastructure.llm.cache import request_key
from autoopt.infrastructure.llm.prompts import MetaPrompts
from tests.conftest import REPO_ROOT
from tests.e2e.conftest import Invoke
from tests.llm_answers import REFERENCE, prompt_in, structured_rewrite
from tests.llm_server import (
    NO_WAIT,
    Answer,
    Disconnect,
    Dynamic,
    FakeLLMServer,
    JSONAnswer,
    Malformed,
    RecordedRequest,
    Response,
    Slow,
    Status,
)

MARKER = "sk-autoopt-test-MARKER-1234"
MODEL = "gpt-4o-mini"  # priced: $0.15 in, $0.60 out per million tokens
MAX_RETRIES = 2
TIMEOUT_SECONDS = 2.0  # generous: only the slow-answer test wants a timeout
SHORT_TIMEOUT = 0.3
PROMPT_TOKENS = 300
COMPLETION_TOKENS = 80
EXPECTED_COST = (PROMPT_TOKENS * 0.15 + COMPLETION_TOKENS * 0.60) / 1_000_000

EXAMPLE = REPO_ROOT / "examples" / "support_bot.yml"
ENGLISH_ID = "Support Bot/1732000000003/prompt_template/0/text"
CHINESE_ID = "Support Bot/1732000000004/prompt_template/0/text"
# Below the threshold in support_bot.yml and with wording to work on: the English
# prompt and the Chinese one (the two bare {{#sys.query#}} prompts are skipped).
SUPPORT_BOT_LLM_PROMPTS = 2

TINY_PROMPT = (
    "Please note that you are basically a writer of short notes about "
    "{{#1711000000001.topic#}}. Maybe write in a kind of friendly way. Actually, "
    "mention the topic {{#1711000000001.topic#}} once. Keep it short."
)
TINY_ID = "Tiny/1711000000002/prompt_template/0/text"
TINY_APP = {
    "app": {"mode": "workflow", "name": "Tiny"},
    "kind": "app",
    "version": "0.1.5",
    "workflow": {
        "graph": {
            "edges": [],
            "nodes": [
                {
                    "id": "1711000000001",
                    "type": "custom",
                    "data": {
                        "title": "Start",
                        "type": "start",
                        "variables": [
                            {
                                "label": "topic",
                                "required": True,
                                "type": "text-input",
                                "variable": "topic",
                            }
                        ],
                    },
                },
                {
                    "id": "1711000000002",
                    "type": "custom",
                    "data": {
                        "title": "Writer",
                        "type": "llm",
                        "model": {"mode": "chat", "name": MODEL, "provider": "openai"},
                        "prompt_template": [{"id": "p-1", "role": "system", "text": TINY_PROMPT}],
                    },
                },
            ],
        }
    },
}


def prompt_of(request: RecordedRequest) -> str:
    return prompt_in(request.body)


def _json(text: str) -> JSONAnswer:
    return JSONAnswer(text, prompt_tokens=PROMPT_TOKENS, completion_tokens=COMPLETION_TOKENS)


def good_answer(body: dict[str, Any]) -> Response:
    return _json(structured_rewrite(prompt_in(body)))


def english_answer(body: dict[str, Any]) -> Response:
    return _json(structured_rewrite(prompt_in(body), language="en"))


def answer_without_references(body: dict[str, Any]) -> Response:
    return _json(REFERENCE.sub("the topic", structured_rewrite(prompt_in(body))))


GOOD = Dynamic(good_answer)


# --------------------------------------------------------------------------- #
# The command line, pointed at the fake server
# --------------------------------------------------------------------------- #


@dataclass
class LLMCli:
    autoopt: Invoke
    server: FakeLLMServer
    config: Path

    def configure(
        self,
        *,
        strategies: tuple[str, ...] = ("llm_guided",),
        max_iterations: int = 1,
        **llm: Any,
    ) -> None:
        document = {
            "optimizer": {
                "llm": {
                    "base_url": self.server.base_url,
                    "model": MODEL,
                    "max_retries": MAX_RETRIES,
                    "timeout_seconds": TIMEOUT_SECONDS,
                    **llm,
                },
                "optimization": {
                    "strategies": list(strategies),
                    "max_iterations": max_iterations,
                },
            }
        }
        self.config.write_text(yaml.safe_dump(document), encoding="utf-8")

    def __call__(self, *args: str, key: str = MARKER) -> Result:
        return self.autoopt("--config", str(self.config), *args, env={"OPENAI_API_KEY": key})

    def optimize(self, app: Path, *args: str, key: str = MARKER) -> tuple[Result, dict[str, Any]]:
        """One JSON-format run; returns the result and the parsed report."""
        result = self("optimize", str(app), "--format", "json", *args, key=key)
        assert result.exit_code == 0, result.output
        return result, json.loads(result.stdout)

    def rounds(self, run_id: str) -> list[IterationCompleted]:
        return [
            record.event
            for record in self.autoopt.log().read_stream(f"run-{run_id}")
            if isinstance(record.event, IterationCompleted)
        ]

    def event_types(self, run_id: str) -> list[str]:
        return [r.event.event_type for r in self.autoopt.log().read_stream(f"run-{run_id}")]

    def tiny_app(self) -> Path:
        path = self.autoopt.workdir / "tiny.yml"
        path.write_text(yaml.safe_dump(TINY_APP, allow_unicode=True), encoding="utf-8")
        return path

    def support_bot(self) -> Path:
        path = self.autoopt.workdir / "support_bot.yml"
        shutil.copy(EXAMPLE, path)
        return path


@pytest.fixture
def llm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LLMCli]:
    monkeypatch.chdir(tmp_path)
    with FakeLLMServer(default=GOOD) as server:
        cli = LLMCli(Invoke(tmp_path / "cli.db", tmp_path), server, tmp_path / "autoopt.yaml")
        cli.configure()
        yield cli
        assert server.errors == []  # no Dynamic answer raised, no handler failed


def only(rounds: list[IterationCompleted], prompt_id: str) -> IterationCompleted:
    [found] = [r for r in rounds if r.prompt_id == prompt_id]
    return found


def written_prompt(output: Path, node: int = 1, message: int = 0) -> str:
    document = yaml.safe_load(output.read_text(encoding="utf-8"))
    return str(
        document["workflow"]["graph"]["nodes"][node]["data"]["prompt_template"][message]["text"]
    )


def assert_fell_back(
    event: IterationCompleted, llm_strategy: str, rule: Callable[[str, str], str], error: str
) -> None:
    """The round used ``rule`` in place of ``llm_strategy``, after ``error``."""
    assert event.fallback is True
    assert event.fallback_from == llm_strategy
    assert event.strategy == rule.__name__
    assert event.fallback_error is not None
    assert event.fallback_error.startswith(error), event.fallback_error
    assert event.candidate_text == rule(TINY_PROMPT, "basic")


# --------------------------------------------------------------------------- #
# A good answer
# --------------------------------------------------------------------------- #


def test_a_good_answer_is_accepted_recorded_in_full_and_written(llm: LLMCli) -> None:
    app, out = llm.tiny_app(), llm.autoopt.workdir / "out.yml"
    _, report = llm.optimize(app, "--out", str(out))

    assert llm.server.requests_to() == 1
    [request] = llm.server.requests
    assert request.headers["authorization"] == f"Bearer {MARKER}"  # the key was used
    assert request.body["model"] == MODEL
    assert request.body["temperature"] == 0.2
    assert request.body["response_format"]["type"] == "json_schema"
    assert prompt_of(request) == TINY_PROMPT
    expected_text = structured_rewrite(TINY_PROMPT)

    [event] = llm.rounds(report["run_id"])
    assert (event.prompt_id, event.strategy, event.iteration) == (TINY_ID, "llm_guided", 1)
    assert event.decision == "accepted"
    assert event.reason == f"score {event.score_before:g} -> {event.score_after:g}"
    assert event.score_after > event.score_before
    assert event.confidence >= 0.7
    assert (event.fallback, event.fallback_from, event.fallback_error) == (False, None, None)
    assert event.candidate_text == expected_text

    exchange = event.llm_exchange
    assert exchange is not None
    assert (exchange.provider, exchange.model, exchange.base_url) == (
        "openai",
        MODEL,
        llm.server.base_url,
    )
    assert [m.model_dump() for m in exchange.messages] == request.body["messages"]
    assert exchange.parameters == {"temperature": 0.2}
    assert exchange.template_version == MetaPrompts().version("llm_guided")
    assert exchange.request_sha256 == request_key(
        "openai",
        llm.server.base_url,
        MODEL,
        request.body["messages"],
        {"temperature": 0.2},
        MetaPrompts().version("llm_guided"),
    )
    assert json.loads(exchange.response_text or "")["optimized_prompt"] == expected_text
    assert (exchange.prompt_tokens, exchange.completion_tokens) == (
        PROMPT_TOKENS,
        COMPLETION_TOKENS,
    )
    assert exchange.cost_usd == pytest.approx(EXPECTED_COST)
    assert exchange.cost_usd > 0
    assert exchange.latency_ms is not None and exchange.latency_ms > 0
    assert exchange.cached is False
    assert exchange.error is None

    [prompt] = report["prompts"]
    assert (prompt["decision"], prompt["strategy"]) == ("optimized", "llm_guided")
    assert written_prompt(out) == expected_text
    assert "PatchEmitted" in llm.event_types(report["run_id"])


def test_hybrid_sends_the_rules_output_to_the_model(llm: LLMCli) -> None:
    llm.configure(strategies=("hybrid",))
    _, report = llm.optimize(llm.tiny_app())

    [request] = llm.server.requests
    user = request.body["messages"][-1]["content"]
    assert user.startswith("This prompt has already been tidied by rules.")
    assert prompt_of(request) == clarity_focus(TINY_PROMPT, "basic") != TINY_PROMPT
    [event] = llm.rounds(report["run_id"])
    assert (event.strategy, event.decision, event.fallback) == ("hybrid", "accepted", False)
    assert event.llm_exchange is not None
    assert event.llm_exchange.template_version == MetaPrompts().version("hybrid")


def test_the_next_round_asks_about_the_last_accepted_candidate(llm: LLMCli) -> None:
    llm.configure(max_iterations=2)
    _, report = llm.optimize(llm.tiny_app())

    first, second = llm.server.requests
    assert prompt_of(first) == TINY_PROMPT
    assert prompt_of(second) == structured_rewrite(TINY_PROMPT)
    rounds = llm.rounds(report["run_id"])
    assert [(r.iteration, r.decision) for r in rounds] == [(1, "accepted"), (2, "rejected")]
    # The fake model answers a structured prompt with itself.
    assert rounds[1].reason == "no change"
    assert report["prompts"][0]["decision"] == "optimized"


def test_a_server_without_structured_output_is_asked_in_plain_json(llm: LLMCli) -> None:
    llm.configure(strategies=("llm_guided", "llm_clarity"))
    llm.server.script(Status(400))
    _, report = llm.optimize(llm.tiny_app())

    first, second, third = llm.server.requests
    assert "response_format" in first.body
    assert "response_format" not in second.body
    assert "response_format" not in third.body  # not asked again in the run
    rounds = llm.rounds(report["run_id"])
    assert rounds[0].decision == "accepted"
    assert not any(r.fallback for r in rounds)


# --------------------------------------------------------------------------- #
# Failures the SDK retries, and the fallbacks they end in
# --------------------------------------------------------------------------- #


def test_a_slow_answer_times_out_after_the_retries_and_falls_back(llm: LLMCli) -> None:
    llm.configure(max_retries=1, timeout_seconds=SHORT_TIMEOUT)
    llm.server.script(*[Slow(3.0, _json("too late"))] * 2)
    _, report = llm.optimize(llm.tiny_app())

    assert llm.server.requests_to() == 1 + 1  # the first try and one retry
    [event] = llm.rounds(report["run_id"])
    assert_fell_back(event, "llm_guided", structure_focus, "LLMTimeoutError: ")
    assert event.fallback_error == (
        f"LLMTimeoutError: no answer within {SHORT_TIMEOUT:g} s after 1 retries"
    )
    assert event.llm_exchange is None
    assert event.decision == "accepted"  # the rule-based rewrite improves the prompt
    assert report["prompts"][0]["strategy"] == "llm_guided->structure_focus"


def test_a_rate_limit_with_retry_after_is_retried_and_succeeds(llm: LLMCli) -> None:
    llm.server.script(Status(429, headers={"retry-after": "0.05"}))
    _, report = llm.optimize(llm.tiny_app())

    first, second = llm.server.requests
    assert second.arrived - first.arrived >= 0.05  # the header was waited for
    assert second.body == first.body
    [event] = llm.rounds(report["run_id"])
    assert (event.strategy, event.decision, event.fallback) == ("llm_guided", "accepted", False)
    assert event.llm_exchange is not None
    assert event.llm_exchange.cost_usd == pytest.approx(EXPECTED_COST)  # paid once


def test_server_errors_until_the_retries_run_out_fall_back(llm: LLMCli) -> None:
    llm.server.script(*[Status(500, headers=NO_WAIT)] * (MAX_RETRIES + 1))
    _, report = llm.optimize(llm.tiny_app())

    assert llm.server.requests_to() == MAX_RETRIES + 1
    [event] = llm.rounds(report["run_id"])
    assert_fell_back(event, "llm_guided", structure_focus, "LLMError: ")
    assert event.fallback_error == f"LLMError: HTTP 500 from the server after {MAX_RETRIES} retries"
    assert event.llm_exchange is None


def test_a_dropped_connection_after_the_retries_falls_back(llm: LLMCli) -> None:
    llm.configure(max_retries=1)
    llm.server.script(Disconnect(), Disconnect())
    _, report = llm.optimize(llm.tiny_app())

    assert llm.server.requests_to() == 1 + 1
    [event] = llm.rounds(report["run_id"])
    assert_fell_back(event, "llm_guided", structure_focus, "LLMError: ")
    assert event.fallback_error == "LLMError: cannot reach the server"


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (Malformed(b"{not json"), "the server's answer is not JSON"),
        (
            Malformed(b'{"id": "x", "object": "chat.completion", "choices": []}'),
            "the answer has no message",
        ),
        (Answer('{"optimized_prompt": "cut off'), "the answer looks like JSON but does not parse"),
        (Answer('{"rationale": "no prompt"}'), "the answer's JSON has no optimized_prompt text"),
    ],
    ids=["body-not-json", "no-choices", "content-json-broken", "content-json-no-prompt"],
)
def test_an_unusable_answer_falls_back_without_retrying_or_caching(
    llm: LLMCli, response: Response, message: str
) -> None:
    llm.server.script(response)
    _, report = llm.optimize(llm.tiny_app())

    assert llm.server.requests_to() == 1
    [event] = llm.rounds(report["run_id"])
    assert_fell_back(event, "llm_guided", structure_focus, "LLMResponseError: ")
    assert event.fallback_error == f"LLMResponseError: {message}"
    stats = json.loads(llm("llm", "cache", "stats", "--format", "json").stdout)
    assert {row["figure"]: row["value"] for row in stats}["entries"] == 0


# --------------------------------------------------------------------------- #
# Answers the guards refuse
# --------------------------------------------------------------------------- #


def test_an_answer_that_drops_a_reference_is_refused(llm: LLMCli) -> None:
    llm.server.default = Dynamic(answer_without_references)
    out = llm.autoopt.workdir / "out.yml"
    _, report = llm.optimize(llm.tiny_app(), "--out", str(out))

    assert llm.server.requests_to() == 1
    [event] = llm.rounds(report["run_id"])
    assert event.decision == "rejected"
    assert event.reason == "answer refused: a variable reference was lost, changed or invented"
    assert (event.strategy, event.fallback, event.confidence) == ("llm_guided", False, 0.0)
    assert event.llm_exchange is not None  # what the model said is kept for the audit
    assert "{{#" not in event.candidate_text
    assert report["prompts"][0]["decision"] == "kept"
    assert written_prompt(out) == TINY_PROMPT
    assert "PatchEmitted" not in llm.event_types(report["run_id"])


def test_a_chinese_prompt_answered_in_english_is_refused(llm: LLMCli) -> None:
    llm.server.default = Dynamic(english_answer)
    out = llm.autoopt.workdir / "out.yml"
    _, report = llm.optimize(llm.support_bot(), "--out", str(out))

    rounds = llm.rounds(report["run_id"])
    chinese = only(rounds, CHINESE_ID)
    assert chinese.decision == "rejected"
    assert chinese.reason == "answer refused: the language changed from zh to en"
    assert (chinese.strategy, chinese.fallback) == ("llm_guided", False)
    english = only(rounds, ENGLISH_ID)
    assert (english.decision, english.strategy) == ("accepted", "llm_guided")

    decisions = {p["prompt_id"]: p["decision"] for p in report["prompts"]}
    assert (decisions[ENGLISH_ID], decisions[CHINESE_ID]) == ("optimized", "kept")
    output = yaml.safe_load(out.read_text(encoding="utf-8"))
    nodes = output["workflow"]["graph"]["nodes"]
    original = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))["workflow"]["graph"]["nodes"]
    original_chinese = original[3]["data"]["prompt_template"][0]["text"]
    assert nodes[3]["data"]["prompt_template"][0]["text"] == original_chinese


def test_the_bilingual_example_keeps_each_prompt_in_its_language(llm: LLMCli) -> None:
    out = llm.autoopt.workdir / "out.yml"
    _, report = llm.optimize(llm.support_bot(), "--out", str(out))

    rounds = llm.rounds(report["run_id"])
    assert len(rounds) == SUPPORT_BOT_LLM_PROMPTS
    assert only(rounds, ENGLISH_ID).decision == only(rounds, CHINESE_ID).decision == "accepted"
    improved = [p["prompt_id"] for p in report["prompts"] if p["decision"] == "optimized"]
    assert improved == [ENGLISH_ID, CHINESE_ID]
    chinese_text = only(rounds, CHINESE_ID).candidate_text
    assert chinese_text.startswith("你是客服助手") and "{{#1732000000001.product#}}" in chinese_text
    nodes = yaml.safe_load(out.read_text(encoding="utf-8"))["workflow"]["graph"]["nodes"]
    assert nodes[3]["data"]["prompt_template"][0]["text"] == chinese_text
    assert nodes[2]["data"]["prompt_template"][0]["text"] == (
        only(rounds, ENGLISH_ID).candidate_text
    )


# --------------------------------------------------------------------------- #
# The API key: refused, missing
# --------------------------------------------------------------------------- #


def test_a_refused_key_costs_one_request_for_the_whole_run(llm: LLMCli) -> None:
    llm.configure(strategies=("llm_guided", "hybrid"))
    llm.server.script(Status(401))
    result, report = llm.optimize(llm.support_bot())

    assert llm.server.requests_to() == 1
    rounds = llm.rounds(report["run_id"])
    assert len(rounds) == 2 * SUPPORT_BOT_LLM_PROMPTS
    assert all(r.fallback and r.llm_exchange is None for r in rounds)
    assert [r.fallback_from for r in rounds] == ["llm_guided", "hybrid"] * SUPPORT_BOT_LLM_PROMPTS
    assert rounds[0].fallback_error == (
        "LLMAuthenticationError: the server refused the API key in $OPENAI_API_KEY (HTTP 401)"
    )
    assert {r.fallback_error for r in rounds[1:]} == {
        "LLMAuthenticationError: the server refused the API key in $OPENAI_API_KEY (HTTP 401) "
        "earlier in this run"
    }
    notes = [line for line in result.stderr.splitlines() if line.startswith("Note: ")]
    assert len(notes) == 1
    assert notes[0].startswith("Note: the server refused the API key")
    assert MARKER not in result.output


def test_a_forbidden_model_stops_llm_use_and_the_note_names_the_403(llm: LLMCli) -> None:
    """After a 403 the rounds and the note name the 403 (once said "HTTP 401")."""
    llm.configure(strategies=("llm_guided", "llm_clarity"))
    llm.server.script(Status(403))
    result, report = llm.optimize(llm.tiny_app())

    assert llm.server.requests_to() == 1
    first, second = llm.rounds(report["run_id"])
    assert first.fallback_error == (
        "LLMAuthenticationError: the server denied access to the model (HTTP 403)"
    )
    assert second.fallback_error == (
        "LLMAuthenticationError: the server denied access to the model (HTTP 403) "
        "earlier in this run"
    )
    [note] = [line for line in result.stderr.splitlines() if line.startswith("Note: ")]
    assert "HTTP 401" not in note, note  # the server said 403


def test_without_a_key_nothing_is_asked_and_one_note_says_so(llm: LLMCli) -> None:
    llm.configure(strategies=("llm_guided", "hybrid"))
    result, report = llm.optimize(llm.support_bot(), key="")

    assert llm.server.requests == []
    assert result.stderr == (
        "Note: no API key in $OPENAI_API_KEY; llm_guided, hybrid run their rule-based fallbacks.\n"
    )
    rounds = llm.rounds(report["run_id"])
    assert len(rounds) == 2 * SUPPORT_BOT_LLM_PROMPTS
    assert all(r.fallback and r.llm_exchange is None for r in rounds)
    assert {r.fallback_error for r in rounds} == {"no language model is configured"}
    assert {(r.fallback_from, r.strategy) for r in rounds} == {
        ("llm_guided", "structure_focus"),
        ("hybrid", "clarity_focus"),
    }


# --------------------------------------------------------------------------- #
# The response cache
# --------------------------------------------------------------------------- #


def cache_stats(llm: LLMCli) -> dict[str, int]:
    result = llm("llm", "cache", "stats", "--format", "json")
    assert result.exit_code == 0, result.output
    return {row["figure"]: row["value"] for row in json.loads(result.stdout)}


def summary(rounds: list[IterationCompleted]) -> list[tuple[str, str, str, str, str]]:
    return [(r.prompt_id, r.strategy, r.decision, r.reason, r.candidate_text) for r in rounds]


def test_a_second_identical_run_is_answered_from_the_cache(llm: LLMCli) -> None:
    app = llm.support_bot()
    _, first = llm.optimize(app)
    assert llm.server.requests_to() == SUPPORT_BOT_LLM_PROMPTS
    first_rounds = llm.rounds(first["run_id"])
    assert [r.llm_exchange.cached for r in first_rounds if r.llm_exchange] == [False, False]
    assert cache_stats(llm) == {"entries": 2, "live": 2, "expired": 0, "hits": 0}

    llm.server.reset()
    _, second = llm.optimize(app)
    assert llm.server.requests_to() == 0
    second_rounds = llm.rounds(second["run_id"])
    assert summary(second_rounds) == summary(first_rounds)
    exchanges = [r.llm_exchange for r in second_rounds]
    assert all(e is not None and e.cached for e in exchanges)
    assert all(e is not None and e.cost_usd == 0 and e.latency_ms is None for e in exchanges)
    assert [e.request_sha256 for e in exchanges if e] == [
        r.llm_exchange.request_sha256 for r in first_rounds if r.llm_exchange
    ]
    assert [e.response_text for e in exchanges if e] == [
        r.llm_exchange.response_text for r in first_rounds if r.llm_exchange
    ]
    assert [p["decision"] for p in second["prompts"]] == [p["decision"] for p in first["prompts"]]
    assert cache_stats(llm) == {"entries": 2, "live": 2, "expired": 0, "hits": 2}

    _, fresh = llm.optimize(app, "--no-cache")
    assert llm.server.requests_to() == SUPPORT_BOT_LLM_PROMPTS  # no cache at all, not even in-run
    fresh_exchanges = [r.llm_exchange for r in llm.rounds(fresh["run_id"])]
    assert all(e is not None and not e.cached and e.cost_usd for e in fresh_exchanges)
    assert cache_stats(llm)["hits"] == 2  # --no-cache neither reads nor counts

    cleared = llm("llm", "cache", "clear")
    assert cleared.exit_code == 0
    assert cleared.stdout == "removed 2 cached answer(s)\n"
    assert cache_stats(llm) == {"entries": 0, "live": 0, "expired": 0, "hits": 0}
    llm.server.reset()
    llm.optimize(app)
    assert llm.server.requests_to() == SUPPORT_BOT_LLM_PROMPTS


def test_disabled_cache_in_the_settings_asks_every_time(llm: LLMCli) -> None:
    llm.configure(enable_cache=False)
    app = llm.tiny_app()
    llm.optimize(app)
    llm.optimize(app)
    assert llm.server.requests_to() == 2
    assert cache_stats(llm)["entries"] == 0


# --------------------------------------------------------------------------- #
# The budget and the estimate
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("where", ["flag", "settings"])
def test_a_spent_budget_stops_further_calls_and_the_run_completes(llm: LLMCli, where: str) -> None:
    strategies = ("llm_guided", "llm_clarity", "llm_efficiency")
    if where == "flag":
        llm.configure(strategies=strategies)
        args: tuple[str, ...] = ("--max-cost", "0.000001")
    else:
        llm.configure(strategies=strategies, max_cost_usd=0.000001)
        args = ()
    result, report = llm.optimize(llm.tiny_app(), *args)

    assert llm.server.requests_to() == 1 < len(strategies)
    first, *rest = llm.rounds(report["run_id"])
    assert (first.strategy, first.fallback) == ("llm_guided", False)
    assert first.llm_exchange is not None and first.llm_exchange.cost_usd == pytest.approx(
        EXPECTED_COST
    )
    assert [r.fallback_from for r in rest] == ["llm_clarity", "llm_efficiency"]
    assert [r.strategy for r in rest] == ["clarity_focus", "efficiency_focus"]
    for event in rest:
        assert event.fallback_error is not None
        assert event.fallback_error.startswith("BudgetExceededError: the budget of $1e-06 is spent")
    assert llm.event_types(report["run_id"])[-1] == "RunCompleted"
    assert result.exit_code == 0


def test_an_unparseable_answer_still_counts_against_the_budget(llm: LLMCli) -> None:
    """An answer whose content fails to parse was still billed (its usage says so):
    it counts against the budget, so a spent budget stops the next call."""
    llm.configure(strategies=("llm_guided", "llm_clarity", "llm_efficiency"))
    billed = Answer(
        '{"optimized_prompt": "cut off',
        prompt_tokens=PROMPT_TOKENS,
        completion_tokens=COMPLETION_TOKENS,
    )
    llm.server.script(billed)
    _, report = llm.optimize(llm.tiny_app(), "--max-cost", "0.000001")

    first, *rest = llm.rounds(report["run_id"])
    assert first.fallback_error == (
        "LLMResponseError: the answer looks like JSON but does not parse"
    )
    assert [r.fallback_error and r.fallback_error.split(":")[0] for r in rest] == [
        "BudgetExceededError",
        "BudgetExceededError",
    ]
    assert llm.server.requests_to() == 1


def test_a_dry_run_with_a_key_asks_nothing_and_estimates_the_cost(llm: LLMCli) -> None:
    llm.configure(strategies=("llm_guided", "hybrid"), max_iterations=2)
    result = llm("optimize", str(llm.support_bot()), "--dry-run")

    assert result.exit_code == 0, result.output
    assert llm.server.requests == []
    calls = SUPPORT_BOT_LLM_PROMPTS * 2 * 2  # prompts x strategies x iterations
    [line] = [line for line in result.stderr.splitlines() if line.startswith("Estimate:")]
    found = re.fullmatch(
        rf"Estimate: up to {calls} LLM calls with {MODEL}, about \$(\d+\.\d{{4}})", line
    )
    assert found, line
    assert float(found.group(1)) > 0
    assert "Note:" not in result.stderr
    assert llm.autoopt.log().last_position() == 0


# --------------------------------------------------------------------------- #
# The API key never leaves the process
# --------------------------------------------------------------------------- #


def test_the_api_key_appears_nowhere(llm: LLMCli, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    llm.configure(strategies=("llm_guided", "hybrid"))
    app = llm.support_bot()
    outputs: list[str] = []

    def run(*args: str) -> Result:
        result = llm("-vv", *args)
        outputs.extend([result.stdout, result.stderr])
        return result

    assert run("optimize", str(app)).exit_code == 0  # answers, written to the cache
    assert run("optimize", str(app)).exit_code == 0  # cached answers
    llm.server.script(Status(401))
    refused = run("optimize", str(app), "--no-cache", "--out", str(app.with_name("401.yml")))
    assert "Note: the server refused the API key" in refused.stderr
    llm.server.script(*[Status(500, headers=NO_WAIT)] * (MAX_RETRIES + 1))
    run("optimize", str(app), "--no-cache", "--out", str(app.with_name("500.yml")))
    run("optimize", str(app), "--dry-run")
    run("llm", "cache", "stats")
    failed = run("optimize", str(app.with_name("missing.yml")))
    assert failed.exit_code == 1 and "Error:" in failed.stderr

    # The key was in use, and the captures caught what they should.
    assert all(r.headers["authorization"] == f"Bearer {MARKER}" for r in llm.server.requests)
    assert len(llm.server.requests) > 0
    assert any(r.name.startswith("openai") for r in caplog.records)  # SDK debug logs
    assert any("migrating" in text for text in outputs)  # autoopt's own -vv logs

    log = llm.autoopt.log()
    positions = [record.position for record in log.read_all()]
    assert any(
        isinstance(r.event, IterationCompleted) and r.event.llm_exchange for r in log.read_all()
    )
    for position in positions:
        shown = run("events", "show", str(position))
        assert shown.exit_code == 0
        assert MARKER not in shown.stdout

    for text in outputs:
        assert MARKER not in text
    assert MARKER not in caplog.text
    for record in caplog.records:
        assert MARKER not in record.getMessage()
        assert MARKER not in repr(record.args)
    files = [p for p in llm.autoopt.workdir.rglob("*") if p.is_file()]
    assert llm.autoopt.db_file in files
    assert any(p.suffix == ".yml" and "optimized" in p.name for p in files)
    assert any(llm.autoopt.storage_dir in p.parents for p in files)
    for path in files:
        assert MARKER.encode() not in path.read_bytes(), path
