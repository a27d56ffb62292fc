"""The optimization cycle for one prompt, with the real analyzer and the real strategies.

Proves, on ``Prompt`` objects built by hand (each test first checks that the analyzer sees its
text as the test needs): a prompt at or above ``score_threshold`` without a critical issue is
skipped with a reason, one with a critical issue is not, and an empty prompt always is; with
several strategies each later one starts from the best candidate so far and the outcome's best is
the highest-scoring accepted round; a strategy stops at its first rejected round ("no change",
"no improvement", or the confidence gate); the confidence formula of the module docstring; LLM
strategies fall back to their rule and say so; ``auto`` picks the rule the analysis calls for;
invalid configurations are refused; and over a spread of prompts every accepted round improves
the score and keeps every invariant.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from autoopt.domain.analyzer import PromptAnalysis, PromptAnalyzer
from autoopt.domain.models import OptimizationConfig, Prompt
from autoopt.domain.optimizer import PromptOptimizer, PromptOutcome, Round, confidence
from autoopt.domain.strategies import (
    ALL_STRATEGIES,
    LLM_FALLBACKS,
    REWRITES,
    RULE_BASED,
    clarity_focus,
    efficiency_focus,
    invariant_violation,
    structure_focus,
)

# The English system prompt of examples/support_bot.yml: fillers, hedges, one paragraph.
WEAK_EN = (
    "Please note that you are basically a support assistant for {{#1732000000001.product#}}. "
    "Maybe answer the question in a kind of friendly way. Actually, use only facts from the "
    "product manual. If you do not know the answer, say so and suggest contacting support. "
    "Keep the answer short."
)
# Its Chinese sibling.
WEAK_ZH = (
    "你是{{#1732000000001.product#}}的客服助手。其实你需要处理用户关于订单、付款和退款的问题。"
    "请大概先确认用户的订单号。然后说明退款政策，退款会在七个工作日内原路返回。"
    "不要承诺政策以外的补偿。"
)
# Short (under 40 tokens: structure cannot score), hedged, no filler.
HEDGED = (
    "Maybe write something about the topic. Perhaps add various things. Use a kind of formal tone."
)
# Filler but no structure or vagueness problem.
FILLER = (
    "Please note that you should basically answer every question in valid JSON. Actually, list "
    "exactly 3 items for each product that the user mentions."
)
# Long single paragraph: the analyzer reports missing structure.
BOOKSHOP = (
    "You are a helpful assistant for a bookshop. Customers ask about books, orders and opening "
    "hours. Answer questions about books using the catalog. Answer questions about orders using "
    "the order system. Tell customers that the shop opens at 9 and closes at 18 on weekdays. Be "
    "polite and keep answers short. Recommend similar books when a customer likes an author. "
    "Never share the personal data of other customers with anyone. If a question is outside "
    "these topics, say that you cannot help with it and suggest calling the shop."
)
# A good prompt: high score, no issue at all.
STRONG = "Translate the user's message into French. Return only the translation, with no notes."
# Under 5 tokens: a critical too_short issue, but a fairly high score.
TINY = "Summarize it."

ANALYZER = PromptAnalyzer()
ALL_RULES = ("structure_focus", "clarity_focus", "efficiency_focus")
PROMPT_ID = "Test App/1732000000003/prompt_template/0/text"


def prompt(text: str, edition: str = "basic") -> Prompt:
    return Prompt(
        prompt_id=PROMPT_ID,
        workflow_id="Test App",
        node_id="1732000000003",
        node_title="LLM",
        node_type="llm",
        field_path="/prompt_template/0/text",
        document_path="/workflow/graph/nodes/2/data/prompt_template/0/text",
        role="system",
        edition=edition,  # type: ignore[arg-type]
        text=text,
    )


def analysis_of(text: str, edition: str = "basic") -> PromptAnalysis:
    return ANALYZER.analyze(text, PROMPT_ID, edition)


def optimize(text: str, edition: str = "basic", **config: object) -> PromptOutcome:
    # A threshold of 100 makes every prompt a candidate unless a test says otherwise.
    settings = {"score_threshold": 100.0, **config}
    return PromptOptimizer(ANALYZER).optimize(
        prompt(text, edition), OptimizationConfig.model_validate(settings)
    )


def accepted(outcome: PromptOutcome) -> list[Round]:
    return [r for r in outcome.rounds if r.decision == "accepted"]


def summary(outcome: PromptOutcome) -> list[tuple[str, int, str]]:
    return [(r.strategy, r.iteration, r.decision) for r in outcome.rounds]


def made(overall: float, clarity: float, efficiency: float, prompt_id: str = "p") -> PromptAnalysis:
    return PromptAnalysis(
        prompt_id=prompt_id,
        overall_score=overall,
        clarity_score=clarity,
        efficiency_score=efficiency,
    )


# --- skipping ----------------------------------------------------------------------------------


def test_a_prompt_at_the_threshold_without_a_critical_issue_is_skipped_with_a_reason() -> None:
    baseline = analysis_of(STRONG)
    assert not baseline.has_critical_issue and baseline.overall_score > 85

    outcome = optimize(STRONG, score_threshold=baseline.overall_score)

    assert outcome.rounds == [] and outcome.best is None
    assert outcome.skipped is not None
    assert "threshold" in outcome.skipped
    assert f"{baseline.overall_score:g}" in outcome.skipped
    assert outcome.final_text == STRONG


def test_a_prompt_just_under_the_threshold_is_optimized() -> None:
    baseline = analysis_of(STRONG)
    outcome = optimize(STRONG, score_threshold=baseline.overall_score + 0.01)
    assert outcome.skipped is None
    assert outcome.rounds, "a prompt under the threshold must be tried"


def test_a_critical_issue_is_optimized_even_above_the_threshold() -> None:
    baseline = analysis_of(TINY)
    assert baseline.has_critical_issue
    assert {i.type for i in baseline.issues if i.severity == "critical"} == {"too_short"}
    assert baseline.overall_score > 70

    outcome = optimize(TINY, score_threshold=50.0, strategies=("clarity_focus",))

    assert outcome.skipped is None
    assert summary(outcome) == [("clarity_focus", 1, "rejected")]


@pytest.mark.parametrize("text", ["", "   \n\t  "])
def test_an_empty_prompt_is_skipped_whatever_the_config(text: str) -> None:
    outcome = optimize(text, score_threshold=100.0, strategies=ALL_RULES)
    assert outcome.skipped == "empty prompt"
    assert outcome.rounds == [] and outcome.best is None
    assert outcome.final_text == text


def test_a_given_baseline_is_used_instead_of_the_analyzer() -> None:
    given = made(99.0, 99.0, 99.0)
    outcome = PromptOptimizer(ANALYZER).optimize(
        prompt(WEAK_EN), OptimizationConfig(score_threshold=80.0), given
    )
    assert outcome.baseline == given
    assert outcome.skipped is not None and "99" in outcome.skipped


# --- several strategies ------------------------------------------------------------------------


def test_each_strategy_starts_from_the_best_so_far_and_the_best_round_wins() -> None:
    outcome = optimize(WEAK_EN, strategies=ALL_RULES, min_confidence=0.0)

    assert summary(outcome) == [
        ("structure_focus", 1, "accepted"),
        ("structure_focus", 2, "rejected"),
        ("clarity_focus", 1, "accepted"),
        ("clarity_focus", 2, "rejected"),
        ("efficiency_focus", 1, "accepted"),
        ("efficiency_focus", 2, "rejected"),
    ]
    structured, _, clarified, _, trimmed, _ = outcome.rounds
    # Each strategy's first candidate is its rule applied to the previous best candidate.
    assert structured.candidate_text == structure_focus(WEAK_EN)
    assert clarified.candidate_text == clarity_focus(structured.candidate_text)
    assert trimmed.candidate_text == efficiency_focus(clarified.candidate_text)
    assert clarified.score_before == structured.score_after
    assert trimmed.score_before == clarified.score_after
    assert structured.score_before == outcome.baseline.overall_score
    assert outcome.best == trimmed
    assert outcome.best.score_after == max(r.score_after for r in accepted(outcome))
    assert outcome.final_text == trimmed.candidate_text


def test_a_later_strategy_that_earns_nothing_leaves_the_earlier_best() -> None:
    # The confidence gate refuses what clarity and efficiency make of the structured text.
    outcome = optimize(WEAK_ZH, strategies=ALL_RULES, min_confidence=0.7)

    assert [(r.strategy, r.decision) for r in outcome.rounds] == [
        ("structure_focus", "accepted"),
        ("structure_focus", "rejected"),
        ("clarity_focus", "rejected"),
        ("efficiency_focus", "rejected"),
    ]
    structured = outcome.rounds[0]
    assert outcome.best == structured
    # The refused rounds were tried on the structured text, not on the original.
    for later in outcome.rounds[2:]:
        assert later.score_before == structured.score_after
    assert outcome.rounds[2].candidate_text == clarity_focus(structured.candidate_text)


def test_the_best_is_the_highest_accepted_score_in_either_order() -> None:
    forward = optimize(WEAK_EN, strategies=ALL_RULES, min_confidence=0.0)
    backward = optimize(WEAK_EN, strategies=tuple(reversed(ALL_RULES)), min_confidence=0.0)
    assert forward.best is not None and backward.best is not None
    # Both orders end with all three rules applied; the best is the highest score of its run.
    for outcome in (forward, backward):
        assert outcome.best.score_after == max(r.score_after for r in accepted(outcome))
        assert outcome.best.score_after > outcome.baseline.overall_score


# --- stopping ----------------------------------------------------------------------------------


def test_the_round_after_an_idempotent_rewrite_is_rejected_as_no_change() -> None:
    outcome = optimize(HEDGED, strategies=("clarity_focus",), max_iterations=5, min_confidence=0)

    assert summary(outcome) == [("clarity_focus", 1, "accepted"), ("clarity_focus", 2, "rejected")]
    first, second = outcome.rounds
    assert second.reason == "no change"
    assert second.candidate_text == first.candidate_text
    assert outcome.best == first


def test_a_changed_candidate_that_does_not_score_higher_stops_the_strategy() -> None:
    # Under 40 tokens the structure score is fixed: bullets change the text, not the score.
    assert structure_focus(HEDGED) != HEDGED
    outcome = optimize(HEDGED, strategies=("structure_focus",), max_iterations=3, min_confidence=0)

    assert summary(outcome) == [("structure_focus", 1, "rejected")]
    (only,) = outcome.rounds
    assert only.score_after <= only.score_before
    assert only.reason.startswith("no improvement")
    assert outcome.best is None and outcome.final_text == HEDGED


def test_max_iterations_one_runs_one_round_per_strategy() -> None:
    outcome = optimize(WEAK_EN, strategies=ALL_RULES, max_iterations=1, min_confidence=0)
    assert [(r.strategy, r.iteration) for r in outcome.rounds] == [
        ("structure_focus", 1),
        ("clarity_focus", 1),
        ("efficiency_focus", 1),
    ]


def test_a_rule_that_would_break_an_invariant_changes_nothing() -> None:
    # Dropping the hedge leaves no prose: the language would go from English to none,
    # so clarity_focus hands the text back and the round is "no change".
    text = "Maybe {{#sys.query#}}"
    assert clarity_focus(text) == text
    outcome = optimize(text, strategies=("clarity_focus",), min_confidence=0.0)
    (only,) = outcome.rounds
    assert (only.decision, only.reason) == ("rejected", "no change")


def test_a_candidate_that_breaks_an_invariant_is_rejected_with_zero_confidence() -> None:
    """The gate checks every candidate itself: a rewrite that loses a reference
    (here a deliberately broken one standing in for a strategy) is refused."""
    text = "Answer {{#sys.query#}} in three bullet points. Keep it short and friendly."

    def lossy(candidate: str, edition: str) -> str:
        return candidate.replace("{{#sys.query#}}", "the question") + " Be exact."

    optimizer = PromptOptimizer(PromptAnalyzer(), rewrites={"clarity_focus": lossy})
    outcome = optimizer.optimize(
        prompt(text),
        OptimizationConfig(strategies=("clarity_focus",), score_threshold=100, min_confidence=0.0),
    )
    (only,) = outcome.rounds
    assert only.decision == "rejected"
    assert only.reason == ("invariant broken: a variable reference was lost, changed or invented")
    assert only.confidence == 0.0
    assert outcome.best is None and outcome.final_text == text


# --- the confidence gate -----------------------------------------------------------------------


def test_a_confidence_of_one_accepts_nothing() -> None:
    outcome = optimize(WEAK_EN, strategies=ALL_RULES, min_confidence=1.0)

    assert outcome.best is None and outcome.final_text == WEAK_EN
    assert [r.strategy for r in outcome.rounds] == list(ALL_RULES)
    for r in outcome.rounds:
        assert r.decision == "rejected"
        assert r.score_after > r.score_before  # refused by the gate, not for its score
        assert r.reason == f"confidence {r.confidence:g} is below 1"


def test_a_confidence_of_zero_accepts_an_improvement_the_default_gate_refuses() -> None:
    refused = optimize(WEAK_ZH, strategies=("clarity_focus",), min_confidence=0.7)
    (round_,) = refused.rounds
    assert round_.decision == "rejected"
    assert round_.score_after > round_.score_before
    assert round_.confidence < 0.7
    assert "below 0.7" in round_.reason

    allowed = optimize(WEAK_ZH, strategies=("clarity_focus",), min_confidence=0.0)
    assert allowed.rounds[0].decision == "accepted"
    assert allowed.best == allowed.rounds[0]
    assert allowed.best.candidate_text == round_.candidate_text


def test_the_recorded_confidence_is_the_formula_on_the_two_analyses() -> None:
    outcome = optimize(WEAK_EN, strategies=ALL_RULES, min_confidence=0.0)
    before = outcome.baseline
    for r in outcome.rounds:
        assert r.confidence == confidence(before, r.analysis)
        assert r.analysis == analysis_of(r.candidate_text)
        if r.decision == "accepted":
            before = r.analysis


# Values from the docstring: 0.5, +0.03 per point of overall improvement (at most 0.3), +0.2 when
# clarity and efficiency both rise or +0.1 when one rises and neither falls, -0.03 per point that
# either falls (at most 0.3 each), clamped to 0..1.
@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        pytest.param(made(60, 60, 60), made(65, 66, 63), 0.85, id="both-rise"),
        pytest.param(made(60, 60, 60), made(62, 64, 60), 0.66, id="one-rises-one-equal"),
        pytest.param(made(60, 60, 60), made(64, 70, 55), 0.47, id="one-rises-one-falls"),
        pytest.param(made(60, 60, 60), made(60, 60, 60), 0.5, id="unchanged"),
        pytest.param(made(60, 60, 60), made(75, 80, 60), 0.9, id="improvement-capped-at-15"),
        pytest.param(made(50, 50, 50), made(90, 100, 50), 0.9, id="improvement-capped-at-40"),
        pytest.param(made(60, 60, 60), made(50, 60, 10), 0.2, id="a-fall-counts-at-most-0.3"),
        pytest.param(made(60, 60, 60), made(40, 40, 40), 0.0, id="two-big-falls-floor-at-0"),
        pytest.param(made(50, 50, 50), made(95, 95, 95), 1.0, id="largest-possible"),
    ],
)
def test_confidence_formula(before: PromptAnalysis, after: PromptAnalysis, expected: float) -> None:
    assert confidence(before, after) == pytest.approx(expected, abs=1e-9)


def test_a_worse_overall_score_adds_nothing_for_improvement() -> None:
    # Overall falls by 10, clarity rises, efficiency stays: only the +0.1 for one rising.
    assert confidence(made(60, 60, 60), made(50, 65, 60)) == pytest.approx(0.6)


# --- LLM strategies and auto -------------------------------------------------------------------


@pytest.mark.parametrize(("llm", "rule"), sorted(LLM_FALLBACKS.items()))
def test_an_llm_strategy_falls_back_to_its_rule_and_records_it(llm: str, rule: str) -> None:
    assert rule in RULE_BASED
    outcome = optimize(WEAK_EN, strategies=(llm,), min_confidence=0.0)

    assert outcome.rounds
    for r in outcome.rounds:
        assert r.strategy == rule
        assert r.fallback_from == llm
        assert r.fallback_error == "no language model is configured"
    assert outcome.rounds[0].candidate_text == REWRITES[rule](WEAK_EN, "basic")


def test_the_documented_fallbacks() -> None:
    assert LLM_FALLBACKS == {
        "llm_guided": "structure_focus",
        "llm_clarity": "clarity_focus",
        "hybrid": "clarity_focus",
        "llm_efficiency": "efficiency_focus",
    }


def test_a_rule_strategy_records_no_fallback() -> None:
    outcome = optimize(WEAK_EN, strategies=("clarity_focus",))
    assert outcome.rounds
    assert all(r.fallback_from is None and r.fallback_error is None for r in outcome.rounds)


@pytest.mark.parametrize(
    ("text", "issue_or_metric", "rule"),
    [
        pytest.param(BOOKSHOP, "missing_structure", "structure_focus", id="structure"),
        pytest.param(FILLER, "filler_phrases", "efficiency_focus", id="filler"),
        pytest.param(HEDGED, "vague_language", "clarity_focus", id="otherwise-clarity"),
    ],
)
def test_auto_runs_the_rule_the_analysis_calls_for(
    text: str, issue_or_metric: str, rule: str
) -> None:
    baseline = analysis_of(text)
    kinds = {i.type for i in baseline.issues}
    if issue_or_metric == "filler_phrases":
        assert baseline.metrics["filler_phrases"] and "missing_structure" not in kinds
    else:
        assert issue_or_metric in kinds
    if rule == "clarity_focus":
        assert not kinds & {"missing_structure", "redundancy", "too_long"}
        assert baseline.metrics["filler_phrases"] == 0

    outcome = optimize(text, strategies=("auto",), max_iterations=1, min_confidence=0.0)

    (first,) = outcome.rounds
    assert first.strategy == rule
    assert first.fallback_from is None
    assert first.candidate_text == REWRITES[rule](text, "basic")
    assert first.decision == "accepted"


def test_auto_chooses_again_from_each_accepted_candidate() -> None:
    # Structured, the bookshop prompt no longer lacks structure: auto moves on to another rule.
    outcome = optimize(BOOKSHOP, strategies=("auto",), max_iterations=3, min_confidence=0.0)
    assert outcome.rounds[0].strategy == "structure_focus"
    assert len(outcome.rounds) >= 2
    assert outcome.rounds[1].strategy != "structure_focus"
    assert outcome.rounds[1].score_before == outcome.rounds[0].score_after


# --- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        pytest.param({"strategies": ("gpt_magic",)}, "unknown strategy", id="unknown-strategy"),
        pytest.param(
            {"strategies": ("clarity_focus", "auto", "clarity_focus")},
            "listed twice",
            id="duplicate-strategy",
        ),
        pytest.param({"strategies": ()}, "at least one strategy", id="no-strategy"),
        pytest.param({"score_threshold": 100.5}, "less than or equal to 100", id="threshold"),
        pytest.param({"score_threshold": -1}, "greater than or equal to 0", id="neg-threshold"),
        pytest.param({"min_confidence": -0.1}, "greater than or equal to 0", id="confidence"),
        pytest.param({"min_confidence": 1.5}, "less than or equal to 1", id="confidence-high"),
        pytest.param({"max_iterations": 0}, "greater than or equal to 1", id="no-iterations"),
        pytest.param({"temperature": 0.3}, "Extra inputs", id="unknown-field"),
    ],
)
def test_an_invalid_config_is_refused(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        OptimizationConfig.model_validate(settings)


def test_every_strategy_name_is_accepted_and_the_defaults_are_the_seeds() -> None:
    assert OptimizationConfig(strategies=ALL_STRATEGIES).strategies == ALL_STRATEGIES
    default = OptimizationConfig()
    assert (
        default.strategies,
        default.score_threshold,
        default.min_confidence,
        default.max_iterations,
    ) == (("llm_guided", "hybrid"), 80.0, 0.7, 3)


# --- invariants over a spread of prompts -------------------------------------------------------

SPREAD = [
    (WEAK_EN, "basic"),
    ("Maybe {{#sys.query#}}", "basic"),
    (WEAK_ZH, "basic"),
    (HEDGED, "basic"),
    (FILLER, "basic"),
    (BOOKSHOP, "basic"),
    (
        "Maybe summarize {{#sys.query#}} in a kind of short way. Perhaps use the `summary` "
        'field.\n\n```json\n{"summary": "..."}\n```\nPlease note that basically the '
        "output must be valid JSON. Please note that basically the output must be valid JSON.",
        "basic",
    ),
    (
        "Basically, you answer questions about {{ product }}. Maybe be kind of brief. "
        "Actually, use {{ manual }} only. In order to help, ask for the order id.",
        "jinja2",
    ),
    (
        "あなたはサポート担当です。たぶん丁寧に答えてください。基本的に、{{#sys.query#}}に"
        "答えます。実は、マニュアルの内容だけを使います。なんとなく短く答えてください。",
        "basic",
    ),
    (
        "Write something about {{topic}}. Write something about {{topic}}.\n\n\n\n"
        "• use various things\n• and so on   \n• maybe add stuff",
        "basic",
    ),
]


@pytest.mark.parametrize(("text", "edition"), SPREAD)
@pytest.mark.parametrize("strategies", [ALL_RULES, ("auto",), tuple(LLM_FALLBACKS)])
def test_every_accepted_round_improves_and_keeps_every_invariant(
    text: str, edition: str, strategies: tuple[str, ...]
) -> None:
    outcome = optimize(text, edition, strategies=strategies, min_confidence=0.0)
    assert outcome.skipped is None
    previous: dict[str, float] = {}
    for r in outcome.rounds:
        if r.decision != "accepted":
            continue
        assert r.score_after > r.score_before
        assert r.analysis.overall_score == r.score_after
        assert invariant_violation(text, r.candidate_text, edition) is None
        assert r.confidence >= 0.0
        key = f"{r.strategy}:{r.fallback_from}"
        if key in previous:  # a strategy's accepted rounds build on each other
            assert r.score_before == previous[key]
        previous[key] = r.score_after
    if outcome.best is not None:
        assert outcome.best.decision == "accepted"
        assert outcome.best.score_after > outcome.baseline.overall_score
        assert outcome.best.score_after == max(r.score_after for r in accepted(outcome))


def test_the_spread_is_not_vacuous() -> None:
    improved = sum(
        1
        for text, edition in SPREAD
        if optimize(text, edition, strategies=ALL_RULES, min_confidence=0.0).best is not None
    )
    assert improved >= len(SPREAD) - 1


@pytest.mark.parametrize(("text", "edition"), SPREAD)
def test_every_round_is_rejected_or_accepted_for_the_reason_it_gives(
    text: str, edition: str
) -> None:
    outcome = optimize(text, edition, strategies=ALL_RULES, min_confidence=0.7)
    for r in outcome.rounds:
        violation = invariant_violation(text, r.candidate_text, edition)
        if r.decision == "accepted":
            assert r.reason == f"score {r.score_before:g} -> {r.score_after:g}"
            assert violation is None and r.confidence >= 0.7
        elif r.reason.startswith("invariant broken"):
            assert violation is not None and r.confidence == 0.0
        else:
            assert r.reason == "no change" or r.reason.startswith(("no improvement", "confidence"))
