"""The rule-based strategies rewrite prose only, in the prompt's own language.

What this proves:

* every rule of the table in ``domain/strategies.py``, by example:
  ``clarity_focus`` drops hedges in English, Chinese and Japanese, unifies
  bullets and adds one closing line in the prompt's own language, and only
  when the prompt is multi-sentence and has no requirement word;
  ``efficiency_focus`` drops filler phrases in each language, turns
  "in order to" into "to", removes repeated lines (but never a line holding a
  reference) and extra blank lines and spaces; ``structure_focus`` turns a
  one-paragraph prompt of 3+ sentences into lead sentence + heading in the
  prompt's language + bullets, and leaves already structured prompts alone;
* ``choose_auto`` picks what the analysis calls for, with missing structure
  first, then redundancy / length / filler, else clarity;
* ``invariant_violation`` rejects a lost, changed or invented reference, a
  changed code fence or JSON block, a language change and an empty candidate,
  and accepts an unchanged text;
* the strategy names: every LLM strategy falls back to a rule-based one and
  ``ALL_STRATEGIES`` lists each name once;
* properties (hypothesis), for each of the three rule-based strategies, on
  prompts assembled from English / Chinese / Japanese sentences with hedges and
  fillers, Dify references, literal braces, code fences, JSON blocks, bullets
  and blank lines (basic edition), and on jinja2 text with ``{{ var }}``
  expressions: (a) the reference multiset is identical, (b) the protected
  pieces (code fences, JSON blocks, inline code, references) are identical as a
  multiset, (c) an en / zh / ja prompt keeps its detected language and a
  Chinese or Japanese prompt never gains the English heading or closing line,
  (d) a non-empty prompt never becomes empty, (e) the strategy is idempotent.
  On prompts mixing all three languages only (a), (b), (d) and "no English
  heading or closing in a CJK prompt" are asserted: there a rewrite can tip the
  single en/zh language threshold, which an example test below pins down.

Tests whose names end in ``bug_...`` fail on the current code because they
expose a bug, described in their docstrings; the property tests for
clarity_focus and structure_focus fail on the same bugs (the katakana middle
dot "・" read as Japanese, and structure_focus restoring 3+ blank lines at the
edges, which breaks idempotence).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoopt.domain.analyzer import Issue, PromptAnalysis, PromptAnalyzer
from autoopt.domain.references import reference_multiset
from autoopt.domain.strategies import (
    ALL_STRATEGIES,
    LLM_FALLBACKS,
    REWRITES,
    RULE_BASED,
    choose_auto,
    clarity_focus,
    efficiency_focus,
    invariant_violation,
    structure_focus,
)
from autoopt.domain.text import detect_language, protected_pieces

EN_CLOSING = "Follow the instructions above exactly."
ZH_CLOSING = "请严格按照以上要求执行。"
JA_CLOSING = "以上の指示に正確に従ってください。"
EN_HEADING = "## Requirements"
ENGLISH_ADDITIONS = (EN_CLOSING, EN_HEADING)


# --- clarity_focus -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Summarize the report, maybe in three points.", "Summarize the report, in three points."),
        ("Perhaps answer briefly.", "Answer briefly."),
        ("It is kind of urgent.", "It is urgent."),
        ("It is sort of urgent.", "It is urgent."),
        ("Somehow answer the user.", "Answer the user."),
        ("请大概总结这份报告。", "请总结这份报告。"),
        ("也许用三点回答。", "用三点回答。"),
        ("或许可以更短。", "可以更短。"),
        ("差不多一百字。", "一百字。"),
        ("たぶん要約してください。", "要約してください。"),
        ("多分短くしてください。", "短くしてください。"),
        ("なんとなく丁寧に答えてください。", "丁寧に答えてください。"),
    ],
)
def test_clarity_drops_hedges_in_each_language(text: str, expected: str) -> None:
    # Single sentences: no closing line is added, so the output is exactly the text
    # without its hedge.
    assert clarity_focus(text) == expected


def test_clarity_hands_a_dropped_sentence_openers_capital_to_the_next_word() -> None:
    assert clarity_focus("Answer briefly.\nMaybe add a title.") == (
        "Answer briefly.\nAdd a title.\n\n" + EN_CLOSING
    )


def test_clarity_leaves_a_hedge_inside_a_reference_alone() -> None:
    text = "Use {{#llm.maybe#}} and {{#1711528915811.perhaps#}} as input, only."
    assert clarity_focus(text) == text


def test_clarity_drops_a_hedge_between_a_leading_and_a_trailing_reference_line() -> None:
    text = "{{#context#}}\nAnswer the question, maybe briefly.\n{{#sys.query#}}"
    assert clarity_focus(text) == "{{#context#}}\nAnswer the question, briefly.\n{{#sys.query#}}"


def test_clarity_leaves_no_dangling_punctuation_after_a_trailing_hedge() -> None:
    """Fixed: strategies.py:51 drops a hedge with the comma and spaces *after* it, not
    before it, so a sentence-final hedge leaves "Answer briefly, ." behind."""
    out = clarity_focus("Answer briefly, maybe. Keep it polite, perhaps.")
    assert " ." not in out
    assert ", ." not in out


def test_clarity_drops_only_the_prompts_own_language_hedges() -> None:
    # An English prompt quoting a Chinese word keeps the Chinese word.
    assert clarity_focus("Translate 大概 into English, only the word.") == (
        "Translate 大概 into English, only the word."
    )


def test_clarity_unifies_every_bullet_style_to_a_dash() -> None:
    text = "Steps:\n• read\n* check\n· answer\n・ close\n- done\n  • nested\nOutput only JSON."
    assert clarity_focus(text) == (
        "Steps:\n- read\n- check\n- answer\n- close\n- done\n  - nested\nOutput only JSON."
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Summarize the report. Keep it short.",
            "Summarize the report. Keep it short. " + EN_CLOSING,
        ),
        ("总结这份报告。保持简短。", "总结这份报告。保持简短。" + ZH_CLOSING),
        (
            "記事を要約してください。短くしてください。",
            "記事を要約してください。短くしてください。" + JA_CLOSING,
        ),
        (
            "Summarize the report.\nKeep it short.",
            "Summarize the report.\nKeep it short.\n\n" + EN_CLOSING,
        ),
        ("总结这份报告。\n保持简短。", "总结这份报告。\n保持简短。\n\n" + ZH_CLOSING),
    ],
)
def test_clarity_closes_a_multi_sentence_prompt_in_its_own_language(
    text: str, expected: str
) -> None:
    assert clarity_focus(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Summarize the report. You must keep it short.",
        "Summarize the report. Output JSON.",
        "Summarize the report. Use only the text.",
        "Summarize the report. Never guess.",
        "Summarize the report. Do not guess.",
        "总结这份报告。必须简短。",
        "总结这份报告。以JSON格式输出。",
        "总结这份报告。不要猜测。",
        "記事を要約してください。必ず短くしてください。",
        "記事を要約してください。推測しないでください。",
        "記事を要約してください。JSON形式で出力してください。",
    ],
)
def test_clarity_adds_no_closing_when_a_requirement_word_exists(text: str) -> None:
    assert clarity_focus(text) == text


@pytest.mark.parametrize(
    "text", ["Summarize the report.", "总结这份报告。", "記事を要約してください。"]
)
def test_clarity_adds_no_closing_to_a_single_sentence(text: str) -> None:
    assert clarity_focus(text) == text


def test_clarity_closes_a_chinese_prompt_with_middle_dot_bullets_in_chinese() -> None:
    """Fixed: text.py's _KANA range includes U+30FB "・", so a Chinese prompt with ・ bullets
    is "ja": clarity_focus closes it with the Japanese line, and once the bullets are
    unified to "-" the output is "zh" (structure_focus: a language change that
    invariant_violation rejects)."""
    text = "・ 请总结这份报告。\n・ 保持简短。"
    assert clarity_focus(text) == "- 请总结这份报告。\n- 保持简短。\n\n" + ZH_CLOSING
    assert invariant_violation(text, structure_focus(text)) is None


def test_clarity_adds_the_closing_only_once() -> None:
    once = clarity_focus("Summarize the report. Keep it short.")
    assert once.count(EN_CLOSING) == 1
    assert clarity_focus(once) == once


# --- efficiency_focus --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Please note that you answer briefly.", "You answer briefly."),
        ("It is important to note that the user is a child.", "The user is a child."),
        ("Basically, answer briefly.", "Answer briefly."),
        ("Answer actually briefly.", "Answer briefly."),
        ("As a matter of fact, the user is a child.", "The user is a child."),
        ("Needless to say, be polite.", "Be polite."),
        ("请注意，回答要简短。", "回答要简短。"),
        ("其实你应该总结报告。", "你应该总结报告。"),
        ("基本上要简短。", "要简短。"),
        ("众所周知，用户是孩子。", "用户是孩子。"),
        ("基本的に、短くしてください。", "短くしてください。"),
        ("実は記事を要約してください。", "記事を要約してください。"),
        ("言うまでもなく、丁寧に答えてください。", "丁寧に答えてください。"),
    ],
)
def test_efficiency_drops_filler_in_each_language(text: str, expected: str) -> None:
    assert efficiency_focus(text) == expected


def test_efficiency_shortens_in_order_to() -> None:
    assert efficiency_focus("Read the data in order to answer.") == "Read the data to answer."


def test_efficiency_keeps_the_capital_of_a_sentence_opening_in_order_to() -> None:
    assert efficiency_focus("In order to help, answer briefly.") == "To help, answer briefly."


def test_efficiency_keeps_the_language_of_a_bilingual_prompt() -> None:
    """A prompt half English, half Chinese is mixed, and stays mixed when English
    filler goes."""
    text = "Please note that you answer politely. 请用中文回答。"
    assert detect_language(text) == "mixed"
    out = efficiency_focus(text)
    assert out == "You answer politely. 请用中文回答。"
    assert invariant_violation(text, out) is None


def test_efficiency_removes_a_repeated_line_case_insensitively() -> None:
    text = "Summarize the report.\nKeep it short.\nsummarize the report.\nKeep it short."
    assert efficiency_focus(text) == "Summarize the report.\nKeep it short."


def test_efficiency_keeps_repeated_lines_that_hold_a_reference() -> None:
    text = "Answer {{#sys.query#}} now.\nAnswer {{#sys.query#}} now."
    assert efficiency_focus(text) == text


def test_efficiency_keeps_repeated_short_lines() -> None:
    # Lines of fewer than three words are separators or labels, not repetitions.
    text = "Be brief.\n---\nBe brief.\n---"
    assert efficiency_focus(text) == text


def test_efficiency_removes_extra_blank_lines_and_spaces() -> None:
    text = "Summarize  the report.   \n\n\n\nKeep it\t\tshort."
    assert efficiency_focus(text) == "Summarize the report.\n\nKeep it short."


def test_efficiency_keeps_indentation() -> None:
    text = "Steps:\n    - read the data\n    - answer briefly"
    assert efficiency_focus(text) == text


# --- structure_focus ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "You are a support assistant. Read the question. Answer it politely.",
            "You are a support assistant.\n\n## Requirements\n- Read the question.\n"
            "- Answer it politely.",
        ),
        (
            "你是一名客服助手。阅读问题。礼貌地回答。",
            "你是一名客服助手。\n\n## 要求\n- 阅读问题。\n- 礼貌地回答。",
        ),
        (
            "あなたはサポート担当です。質問を読んでください。丁寧に答えてください。",
            "あなたはサポート担当です。\n\n## 要件\n- 質問を読んでください。\n"
            "- 丁寧に答えてください。",
        ),
    ],
    ids=["en", "zh", "ja"],
)
def test_structure_turns_one_paragraph_into_lead_heading_and_bullets(
    text: str, expected: str
) -> None:
    assert structure_focus(text) == expected


def test_structure_keeps_references_in_their_bullets() -> None:
    text = "You answer {{#sys.query#}}. Use {{#context#}} only. Reply in {{#env.LANG#}}."
    assert structure_focus(text) == (
        "You answer {{#sys.query#}}.\n\n## Requirements\n- Use {{#context#}} only.\n"
        "- Reply in {{#env.LANG#}}."
    )


def test_structure_keeps_the_edges_of_the_original() -> None:
    text = "\n  You are an assistant. Read the question. Answer it.  \n"
    assert structure_focus(text) == (
        "\n  You are an assistant.\n\n## Requirements\n- Read the question.\n- Answer it.\n"
    )


@pytest.mark.parametrize(
    "text",
    [
        "Summarize the report. Keep it short.",
        "# Task\nYou are an assistant. Read the question. Answer it politely.",
        "- Read the question. Answer it. Be polite.",
        "1. Read the question. Answer it. Be polite.",
        "【任务】阅读问题。礼貌地回答。保持简短。",
        "Read the question.\nAnswer it.\nBe polite.",
        "你是一名助手。\n阅读问题。\n礼貌地回答。",
    ],
    ids=["two-sentences", "heading", "bullet", "numbered", "cjk-bracket", "lines", "zh-lines"],
)
def test_structure_leaves_short_or_already_structured_prompts_alone(text: str) -> None:
    assert structure_focus(text) == text


def test_structure_is_idempotent_with_blank_lines_around_the_paragraph() -> None:
    """Fixed: strategies.py _keep_edges puts the original's leading and trailing blank
    lines back after _tidy, so "\n\n\n" survives the first pass and is cut to "\n\n"
    by the second."""
    for text in (
        "\n\n\nRead the question. Answer it. Be brief.",
        "Read the question. Answer it. Be brief.\n\n\n",
    ):
        once = structure_focus(text)
        assert structure_focus(once) == once


def test_structure_only_tidies_an_already_structured_prompt() -> None:
    text = "## Rules\n• read the question\n* answer it\n\n\n\nOutput  JSON."
    assert structure_focus(text) == "## Rules\n- read the question\n- answer it\n\nOutput JSON."


# --- choose_auto ------------------------------------------------------------------------


def _analysis(*issue_types: str, filler: int = 0) -> PromptAnalysis:
    return PromptAnalysis(
        prompt_id="p",
        overall_score=50,
        clarity_score=50,
        efficiency_score=50,
        issues=tuple(Issue(type=t, severity="warning", message=t) for t in issue_types),  # type: ignore[arg-type]
        metrics={"filler_phrases": filler},
    )


@pytest.mark.parametrize(
    ("analysis", "expected"),
    [
        (_analysis("missing_structure"), "structure_focus"),
        (_analysis("missing_structure", "redundancy", "too_long", filler=3), "structure_focus"),
        (_analysis("redundancy"), "efficiency_focus"),
        (_analysis("too_long"), "efficiency_focus"),
        (_analysis(filler=1), "efficiency_focus"),
        (_analysis("vague_language", filler=2), "efficiency_focus"),
        (_analysis(), "clarity_focus"),
        (_analysis("vague_language", "poor_formatting", "too_short"), "clarity_focus"),
        (_analysis("ambiguous_instructions"), "clarity_focus"),
    ],
    ids=[
        "structure",
        "structure-first",
        "redundancy",
        "too-long",
        "filler",
        "filler-over-vague",
        "nothing",
        "other-issues",
        "ambiguous",
    ],
)
def test_choose_auto_follows_the_table(analysis: PromptAnalysis, expected: str) -> None:
    assert choose_auto(analysis) == expected


def test_choose_auto_on_real_analyses() -> None:
    analyzer = PromptAnalyzer()
    paragraph = " ".join(
        f"The {word} section of the quarterly report describes results for region {n}."
        for n, word in enumerate(["first", "second", "third", "fourth", "fifth", "sixth"])
    )
    assert choose_auto(analyzer.analyze(paragraph)) == "structure_focus"
    repeated = "Summarize the report.\nKeep it short.\nSummarize the report."
    assert choose_auto(analyzer.analyze(repeated)) == "efficiency_focus"
    filler = "Basically, summarize the report."
    assert choose_auto(analyzer.analyze(filler)) == "efficiency_focus"
    vague = "Summarize the report, maybe with something extra."
    assert choose_auto(analyzer.analyze(vague)) == "clarity_focus"


# --- invariant_violation ----------------------------------------------------------------

ORIGINAL = (
    "Answer {{#sys.query#}} using {{#1711528915811.text#}}.\n"
    '```json\n{"answer": "..."}\n```\n'
    "Keep it short."
)


def test_invariant_accepts_equal_text() -> None:
    assert invariant_violation(ORIGINAL, ORIGINAL) is None


def test_invariant_accepts_a_prose_only_rewrite() -> None:
    candidate = ORIGINAL.replace("Keep it short.", "Be brief.")
    assert invariant_violation(ORIGINAL, candidate) is None


@pytest.mark.parametrize(
    "candidate",
    [
        ORIGINAL.replace("{{#sys.query#}}", "the question"),
        ORIGINAL.replace("{{#sys.query#}}", "{{#sys.files#}}"),
        ORIGINAL.replace("{{#1711528915811.text#}}", "{{#1711528915812.text#}}"),
        ORIGINAL + " Also see {{#context#}}.",
        ORIGINAL.replace("Keep it short.", "Keep it short, {{#sys.query#}}."),
    ],
    ids=["lost", "changed-field", "changed-node", "invented", "duplicated"],
)
def test_invariant_rejects_a_changed_reference(candidate: str) -> None:
    assert invariant_violation(ORIGINAL, candidate) == (
        "a variable reference was lost, changed or invented"
    )


@pytest.mark.parametrize(
    "candidate",
    [
        ORIGINAL.replace('{"answer": "..."}', '{"answer": "…"}'),
        ORIGINAL.replace("```json", "```"),
        ORIGINAL.replace('```json\n{"answer": "..."}\n```\n', ""),
    ],
    ids=["content", "info-string", "removed"],
)
def test_invariant_rejects_a_changed_code_fence(candidate: str) -> None:
    assert invariant_violation(ORIGINAL, candidate) == (
        "a code block, JSON block or inline code changed"
    )


def test_invariant_rejects_a_changed_json_block() -> None:
    original = 'Return this shape:\n{\n  "name": "x",\n  "n": 1\n}\nNothing else.'
    candidate = original.replace('"n": 1', '"n": 2')
    assert invariant_violation(original, candidate) == (
        "a code block, JSON block or inline code changed"
    )


@pytest.mark.parametrize(
    ("original", "candidate", "before", "after"),
    [
        ("请总结这份报告。保持简短。", "Summarize the report. Keep it short.", "zh", "en"),
        ("Summarize the report.", "总结这份报告。", "en", "zh"),
        ("記事を要約してください。", "总结这份报告。", "ja", "zh"),
    ],
)
def test_invariant_rejects_a_language_change(
    original: str, candidate: str, before: str, after: str
) -> None:
    assert invariant_violation(original, candidate) == (
        f"the language changed from {before} to {after}"
    )


def test_invariant_allows_a_first_language_for_a_prompt_without_prose() -> None:
    assert invariant_violation("{{#sys.query#}}", "Answer: {{#sys.query#}}") is None


@pytest.mark.parametrize("candidate", ["", "   ", "\n\t\n"])
def test_invariant_rejects_an_empty_candidate(candidate: str) -> None:
    assert invariant_violation(ORIGINAL, candidate) == "the candidate is empty"


def test_invariant_reads_jinja2_expressions_as_references_in_jinja2_text() -> None:
    original = "Hello {{ user.name }}, answer {{ question }}."
    assert invariant_violation(original, original, "jinja2") is None
    assert invariant_violation(original, "Hello, answer {{ question }}.", "jinja2") == (
        "a variable reference was lost, changed or invented"
    )


# --- names ------------------------------------------------------------------------------


def test_every_llm_strategy_falls_back_to_a_rule_based_one() -> None:
    assert LLM_FALLBACKS == {
        "llm_guided": "structure_focus",
        "llm_clarity": "clarity_focus",
        "hybrid": "clarity_focus",
        "llm_efficiency": "efficiency_focus",
    }
    assert set(LLM_FALLBACKS.values()) <= set(REWRITES)


def test_all_strategies_lists_each_name_once() -> None:
    assert set(RULE_BASED) == set(REWRITES)
    assert len(ALL_STRATEGIES) == len(set(ALL_STRATEGIES))
    assert set(ALL_STRATEGIES) == {*RULE_BASED, "auto", *LLM_FALLBACKS}


# --- properties -------------------------------------------------------------------------

EN_WORDS = [
    "summarize",
    "the",
    "report",
    "answer",
    "user",
    "question",
    "politely",
    "keep",
    "reply",
    "short",
    "three",
    "main",
    "points",
    "plain",
    "language",
    "check",
    "facts",
    "first",
    "customer",
    "data",
]
EN_EXTRAS = [
    "maybe",
    "perhaps",
    "kind of",
    "sort of",
    "somehow",
    "basically",
    "actually,",
    "please note that",
    "it is important to note that",
    "as a matter of fact,",
    "needless to say,",
    "in order to",
    "really",
    "very",
    "just",
    "something",
]
ZH_CLAUSES = [
    "请总结这份报告",
    "回答用户的问题",
    "保持简短",
    "使用简单的语言",
    "列出三个要点",
    "先检查事实",
]
ZH_EXTRAS = ["大概", "其实", "也许", "其实，", "基本上", "请注意，", "或许", "众所周知，"]
JA_CLAUSES = [
    "レポートを要約してください",
    "ユーザーの質問に答えてください",
    "短くしてください",
    "簡単な言葉を使ってください",
    "三つの要点を挙げてください",
]
JA_EXTRAS = ["たぶん", "実は", "実は、", "多分", "基本的に、", "なんとなく", "言うまでもなく、"]

DIFY_REFERENCES = [
    "{{#1711528915811.text#}}",
    "{{#sys.query#}}",
    "{{#context#}}",
    "{{#env.KEY#}}",
    "{{#conversation.name#}}",
]
JINJA2_EXPRESSIONS = ["{{ var }}", "{{ user.name }}", "{{ items | length }}", "{{- query -}}"]
INLINE_LITERALS = ['{"a": 1}', "{{ x }}"]
BLOCKS = [
    '```python\nprint({"a": 1})\n```',
    '{\n  "name": "Alice",\n  "age": 30\n}',
    '{"answer": "...", "score": 1}',
    "[1, 2, 3]",
]
BULLETS = ["- ", "• ", "* ", "1. ", "・ "]


@st.composite
def english_sentences(draw: st.DrawFn) -> str:
    words = draw(st.lists(st.sampled_from(EN_WORDS), min_size=2, max_size=8))
    for extra in draw(st.lists(st.sampled_from(EN_EXTRAS), max_size=2)):
        words.insert(draw(st.integers(0, len(words))), extra)
    sentence = " ".join(words)
    return sentence[0].upper() + sentence[1:] + draw(st.sampled_from([".", "!", "?"]))


def _cjk_sentences(clauses: list[str], extras: list[str]) -> st.SearchStrategy[str]:
    clause = st.tuples(st.sampled_from(["", "", *extras]), st.sampled_from(clauses)).map("".join)
    return st.tuples(
        st.lists(clause, min_size=1, max_size=3).map("，".join),
        st.sampled_from(["。", "！", "？"]),
    ).map("".join)


SENTENCES = {
    "en": english_sentences(),
    "zh": _cjk_sentences(ZH_CLAUSES, ZH_EXTRAS),
    "ja": _cjk_sentences(JA_CLAUSES, JA_EXTRAS),
}


@st.composite
def prompts(draw: st.DrawFn, language: str, references: list[str]) -> str:
    """A prompt whose prose is in ``language`` ("any" mixes all three)."""
    languages = ["en", "zh", "ja"] if language == "any" else [language]
    sentence = st.sampled_from(languages).flatmap(lambda lang: SENTENCES[lang])
    inline = st.one_of(
        sentence, sentence, sentence, st.sampled_from(references), st.sampled_from(INLINE_LITERALS)
    )
    joiner = " " if language in ("en", "any") else ""
    prose_line = st.lists(inline, min_size=1, max_size=4).map(joiner.join)
    bullet_line = st.tuples(st.sampled_from(BULLETS), prose_line).map("".join)
    line = st.one_of(
        prose_line, prose_line, bullet_line, st.sampled_from(BLOCKS), st.just(""), st.just("")
    )
    return "\n".join(draw(st.lists(line, min_size=1, max_size=8)))


def _check_invariants(
    rewrite: Callable[[str, str], str], text: str, edition: str, *, one_language: bool = True
) -> None:
    out = rewrite(text, edition)
    # (a) references
    assert reference_multiset(out, edition) == reference_multiset(text, edition)
    # (b) code fences, JSON blocks, inline code
    assert Counter(protected_pieces(out, edition)) == Counter(protected_pieces(text, edition))
    # (c) language
    before = detect_language(text)
    if one_language and before in ("en", "zh", "ja"):
        assert detect_language(out) == before
    if before in ("zh", "ja"):
        for english in ENGLISH_ADDITIONS:
            assert english in text or english not in out
    # (d) never empty
    if text.strip():
        assert out.strip()
    if one_language:
        if text.strip():
            assert invariant_violation(text, out, edition) is None
        # (e) idempotence
        assert rewrite(out, edition) == out


@pytest.mark.parametrize("name", RULE_BASED)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_strategy_keeps_the_invariants_on_single_language_prompts(
    name: str, data: st.DataObject
) -> None:
    language = data.draw(st.sampled_from(["en", "zh", "ja"]))
    text = data.draw(prompts(language, DIFY_REFERENCES))
    _check_invariants(REWRITES[name], text, "basic")


@pytest.mark.parametrize("name", RULE_BASED)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_strategy_keeps_the_invariants_on_jinja2_prompts(name: str, data: st.DataObject) -> None:
    language = data.draw(st.sampled_from(["en", "zh", "ja"]))
    text = data.draw(prompts(language, JINJA2_EXPRESSIONS + DIFY_REFERENCES))
    _check_invariants(REWRITES[name], text, "jinja2")


@pytest.mark.parametrize("name", RULE_BASED)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_strategy_keeps_the_invariants_on_mixed_language_prompts(
    name: str, data: st.DataObject
) -> None:
    # Language and idempotence are not asserted here: on bilingual text a rewrite can tip
    # the single en/zh threshold (see the bug_language_threshold test above).
    text = data.draw(prompts("any", DIFY_REFERENCES))
    _check_invariants(REWRITES[name], text, "basic", one_language=False)
