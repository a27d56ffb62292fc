"""The LLM parts that need no server: answer guards, prices, meta-prompts, request keys."""

from __future__ import annotations

import pytest

from autoopt.domain.analyzer import PromptAnalyzer
from autoopt.domain.guards import answer_violation
from autoopt.infrastructure.llm.cache import request_key
from autoopt.infrastructure.llm.pricing import Pricing
from autoopt.infrastructure.llm.prompts import STRATEGIES, MetaPrompts

PROMPT = "Summarize {{#1711528915811.text#}} for {{#sys.query#}} in three bullet points."


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("", "the answer is empty"),
        ("   \n", "the answer is empty"),
        ("I'm sorry, but I can't help with that.", "the answer is a refusal"),
        ("抱歉，我无法完成这个请求。", "the answer is a refusal"),
        (
            "Summarize {{#1711528915811.text#}} in three bullets.",
            "a variable reference was lost, changed or invented",
        ),
        (
            "Summarize {{#1711528915811.text#}} for {{#sys.query#}} {{#sys.query#}} now.",
            "a variable reference was lost, changed or invented",
        ),
        (
            "用三个要点总结 {{#1711528915811.text#}}，面向 {{#sys.query#}}。",
            "the language changed from en to zh",
        ),
        (
            "Summarize {{#1711528915811.text#}} for {{#sys.query#}}. " + "Be thorough. " * 40,
            "over 3x",
        ),
    ],
)
def test_unusable_answers_are_refused_with_their_reason(answer: str, reason: str) -> None:
    violation = answer_violation(PROMPT, answer)
    assert violation is not None and reason in violation


def test_an_answer_far_shorter_than_the_prompt_is_refused() -> None:
    long_prompt = PROMPT + " Use plain words, cite the source, and keep each point short." * 4
    violation = answer_violation(long_prompt, "Sum {{#1711528915811.text#}} {{#sys.query#}}.")
    assert violation is not None and "under 0.3x" in violation


def test_a_good_answer_passes() -> None:
    answer = (
        "Summarize {{#1711528915811.text#}} for {{#sys.query#}}.\n\n"
        "## Output\n- Three bullet points."
    )
    assert answer_violation(PROMPT, answer) is None


def test_the_length_bounds_are_configurable() -> None:
    answer = "Summarize {{#1711528915811.text#}} for {{#sys.query#}}."
    assert answer_violation(PROMPT, answer, min_ratio=0.9) is not None
    assert answer_violation(PROMPT, answer, min_ratio=0.3) is None


def test_prices_are_per_million_tokens_and_unknown_models_cost_none() -> None:
    pricing = Pricing({"my-local-model": (1.0, 2.0)})
    assert pricing.cost("gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert pricing.cost("my-local-model", 500_000, 250_000) == pytest.approx(1.0)
    assert pricing.cost("llama-3-70b", 1000, 1000) is None
    assert Pricing({"gpt-4o-mini": (0.0, 0.0)}).cost("gpt-4o-mini", 10, 10) == 0.0


def test_the_users_prompt_is_data_in_every_meta_prompt() -> None:
    tricky = "Use {{#sys.query#}} and {{ name }} and {% if x %}keep{% endif %} and {# note #}."
    analysis = PromptAnalyzer().analyze(tricky)
    prompts = MetaPrompts()
    for strategy in STRATEGIES:
        messages = prompts.render(strategy, tricky, analysis)
        assert [m["role"] for m in messages] == ["system", "user"]
        assert tricky in messages[1]["content"]
        assert "{{#1711528915811.text#}}" in messages[0]["content"]  # the rule's example


def test_llm_guided_passes_the_analysis_issues() -> None:
    weak = "maybe do something with stuff"
    analysis = PromptAnalyzer().analyze(weak)
    content = MetaPrompts().render("llm_guided", weak, analysis)[1]["content"]
    for issue in analysis.issues:
        assert issue.type in content


def test_each_template_has_its_own_version() -> None:
    prompts = MetaPrompts()
    versions = {prompts.version(s) for s in STRATEGIES}
    assert len(versions) == len(STRATEGIES)
    assert all(len(v) == 16 for v in versions)


def test_the_request_key_changes_with_everything_that_shapes_an_answer() -> None:
    messages = [{"role": "user", "content": "hi"}]
    base = request_key("openai", None, "gpt-4o-mini", messages, {"temperature": 0.2}, "v1")
    assert base == request_key("openai", None, "gpt-4o-mini", messages, {"temperature": 0.2}, "v1")
    variants = [
        request_key("other", None, "gpt-4o-mini", messages, {"temperature": 0.2}, "v1"),
        request_key("openai", "http://x/v1", "gpt-4o-mini", messages, {"temperature": 0.2}, "v1"),
        request_key("openai", None, "gpt-4o", messages, {"temperature": 0.2}, "v1"),
        request_key(
            "openai",
            None,
            "gpt-4o-mini",
            [{"role": "user", "content": "hi!"}],
            {"temperature": 0.2},
            "v1",
        ),
        request_key("openai", None, "gpt-4o-mini", messages, {"temperature": 0.3}, "v1"),
        request_key("openai", None, "gpt-4o-mini", messages, {"temperature": 0.2}, "v2"),
    ]
    assert len({base, *variants}) == 7
