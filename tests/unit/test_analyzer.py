"""PromptAnalyzer follows the table in ``domain/analyzer.py``, in every language.

What this proves:

* the analysis is deterministic: the same text gives an equal analysis;
* the weights: overall = 0.6 clarity + 0.4 efficiency, clarity = 0.4 structure
  + 0.3 specificity + 0.3 coherence, efficiency = 0.5 token efficiency + 0.5
  information density (checked on prompts whose sub-scores all differ, so a
  swapped weight fails);
* the exact sub-scores the table fixes (structure 80 under 40 tokens, 40 to
  100 from the markers; specificity 70 +6 per marker up to +30, -12 per vague
  term; coherence 100 / 85 / long and repeated sentences; token efficiency at
  1, 15, 1,500 and 3,000 tokens and per filler phrase; information density);
* every issue type from a minimal prompt written for it, with its severity and
  the thresholds (too_short 5 / 15 tokens, too_long 1,500 / 3,000, vague 1 / 2
  terms, missing structure from 80 tokens, redundancy, poor formatting for an
  unclosed fence, blank lines and trailing spaces, ambiguous instructions);
* suggestions have priorities 1-10, sorted most urgent first, with +1 for a
  critical issue;
* CJK fairness: well-written Chinese and Japanese prompts score within 10
  points of the same English prompt, CJK text is about one token per
  character, and sentences split at 。！？;
* references are opaque: a prompt of references only has no vague language and
  no filler, and a reference whose name holds a vague word is not vague;
* language detection for en, zh, ja, mixed and none.

Some tests fail on the current code because they expose bugs (see the test
names ending in ``bug_...``, each with a docstring): mask indices counted as
tokens and as concrete markers, the unreachable unclosed-fence warning, the
unreachable "mixed" language, the katakana middle dot read as Japanese, and the
undocumented +0.25 density bonus for short text.
"""

from __future__ import annotations

import pytest

from autoopt.domain.analyzer import PromptAnalysis, PromptAnalyzer
from autoopt.domain.text import detect_language, estimate_tokens, sentences

ANALYZER = PromptAnalyzer()


def analyze(text: str, edition: str = "basic") -> PromptAnalysis:
    return ANALYZER.analyze(text, prompt_id="p", edition=edition)


def issues(text: str, edition: str = "basic") -> dict[str, str]:
    """Issue type -> severity."""
    return {issue.type: issue.severity for issue in analyze(text, edition).issues}


# An unstructured English paragraph of about 110 tokens with no instruction problems.
PARAGRAPH = (
    "You are helping a small bookstore answer questions from customers who write in by email. "
    "Read each message carefully and figure out whether it is about an order, a return, "
    "or a book recommendation. "
    "When the message is about an order, look up the order and explain where the parcel is. "
    "When the message is about a return, explain the return policy in plain words. "
    "When the customer asks for a recommendation, suggest two titles that match what they "
    "describe."
)
# Vague, repetitive and padded, with a trailing space: every sub-score differs.
SLOPPY = (
    "Maybe write something about the stuff in the report, perhaps various things and so on. "
    "Write something about the stuff in the report. "
    "Write something about the stuff in the report. "
    "Basically it is very important, really. "
    "Needless to say, just do whatever seems right somehow.  \n"
    "Actually keep it kind of short etc."
)

STRUCTURED = {
    "en": (
        "# Role\nYou are a customer support assistant for an online bookstore.\n\n"
        "## Task\nAnswer the customer's question using only the order data below.\n\n"
        "## Rules\n- Reply in at most 3 sentences.\n- If the order number is missing, ask for "
        "it.\n- Never promise a refund.\n\n"
        '## Output format\nReturn JSON with the fields "answer" and "needs_human".\n'
    ),
    "zh": (
        "# 角色\n你是一家网上书店的客服助手。\n\n"
        "## 任务\n只根据下面的订单数据回答顾客的问题。\n\n"
        "## 规则\n- 回答不超过3句话。\n- 如果缺少订单号，请向顾客询问。\n- 不要承诺退款。\n\n"
        "## 输出格式\n以JSON格式返回，包含“answer”和“needs_human”两个字段。\n"
    ),
    "ja": (
        "# 役割\nあなたはオンライン書店のカスタマーサポート担当です。\n\n"
        "## タスク\n以下の注文データだけを使って、お客様の質問に回答してください。\n\n"
        "## ルール\n- 回答は3文以内にしてください。\n- 注文番号がない場合は、お客様に確認して"
        "ください。\n- 返金を約束しないでください。\n\n"
        "## 出力形式\n「answer」と「needs_human」のフィールドを持つJSONで返してください。\n"
    ),
}
ONE_PARAGRAPH = {
    "en": (
        "You are a support assistant for an online bookstore. Answer the customer's question "
        "using only the order data provided. Reply in at most three sentences and keep a "
        "friendly tone. If the order number is missing, ask the customer for it. Never promise "
        "a refund."
    ),
    "zh": (
        "你是一家网上书店的客服助手。只根据提供的订单数据回答顾客的问题。回答不超过三句话，"
        "并保持友好的语气。如果缺少订单号，请向顾客询问。不要承诺退款。"
    ),
    "ja": (
        "あなたはオンライン書店のサポート担当です。提供された注文データだけを使って、"
        "お客様の質問に回答してください。回答は三文以内にして、丁寧な口調を保ってください。"
        "注文番号がない場合は、お客様に確認してください。返金を約束しないでください。"
    ),
}


# --- determinism -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", [PARAGRAPH, SLOPPY, STRUCTURED["zh"], ONE_PARAGRAPH["ja"], "", "{{#sys.query#}}"]
)
def test_the_same_text_gets_an_equal_analysis(text: str) -> None:
    first = analyze(text)
    assert PromptAnalyzer().analyze(text, prompt_id="p") == first
    assert analyze(text) == first


def test_the_prompt_id_is_carried_through() -> None:
    assert ANALYZER.analyze("Summarize the report.", prompt_id="node-1/text").prompt_id == (
        "node-1/text"
    )


# --- weights -----------------------------------------------------------------------------

WEIGHT_CASES = [PARAGRAPH, SLOPPY, STRUCTURED["ja"], ONE_PARAGRAPH["zh"], "字" * 90, "Hi"]


@pytest.mark.parametrize("text", WEIGHT_CASES)
def test_overall_is_sixty_percent_clarity_and_forty_percent_efficiency(text: str) -> None:
    result = analyze(text)
    expected = 0.6 * result.clarity_score + 0.4 * result.efficiency_score
    assert result.overall_score == pytest.approx(expected, abs=0.011)


@pytest.mark.parametrize("text", WEIGHT_CASES)
def test_clarity_weighs_structure_specificity_and_coherence(text: str) -> None:
    result = analyze(text)
    m = result.metrics
    expected = 0.4 * m["structure"] + 0.3 * m["specificity"] + 0.3 * m["coherence"]  # type: ignore[operator]
    assert result.clarity_score == pytest.approx(expected, abs=0.011)


@pytest.mark.parametrize("text", WEIGHT_CASES)
def test_efficiency_weighs_token_efficiency_and_density_equally(text: str) -> None:
    result = analyze(text)
    m = result.metrics
    expected = 0.5 * m["token_efficiency"] + 0.5 * m["information_density"]  # type: ignore[operator]
    assert result.efficiency_score == pytest.approx(expected, abs=0.011)


def test_the_weight_cases_tell_the_weights_apart() -> None:
    # On SLOPPY every sub-score differs, so a swapped or wrong weight changes the total.
    m = analyze(SLOPPY).metrics
    assert len({m["structure"], m["specificity"], m["coherence"]}) == 3
    assert m["token_efficiency"] != m["information_density"]
    assert analyze(SLOPPY).clarity_score == pytest.approx(
        0.4 * 40 + 0.3 * 0 + 0.3 * m["coherence"],  # type: ignore[operator]
        abs=0.011,
    )


# --- exact sub-scores --------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["Hi", "Summarize the report.", ONE_PARAGRAPH["en"][:150], "字" * 39]
)
def test_structure_is_80_under_40_tokens(text: str) -> None:
    metrics = analyze(text).metrics
    assert metrics["tokens"] < 40  # type: ignore[operator]
    assert metrics["structure"] == 80


def test_structure_starts_at_40_for_a_long_unstructured_prompt() -> None:
    assert analyze("字" * 40).metrics["structure"] == 40
    assert analyze(PARAGRAPH).metrics["structure"] == 40


@pytest.mark.parametrize(
    ("prefix", "score"),
    [
        ("# Heading\n", 60),
        ("【背景】\n", 60),
        ("Read this:\n", 60),
        ("- one\n- two\n", 60),
        ("1. one\n2. two\n", 60),
        ("①一\n②二\n", 60),
        ("Read this.\n\n", 50),
        ("Task: read this.\n", 50),
        ("角色：客服\n", 50),
        ("役割：サポート\n", 50),
        ("# Task\n- one\n- two\n\n", 100),
    ],
    ids=[
        "hash",
        "cjk-bracket",
        "colon",
        "dash-list",
        "numbered",
        "circled",
        "paragraph",
        "section",
        "zh-section",
        "ja-section",
        "all",
    ],
)
def test_structure_adds_each_marker(prefix: str, score: int) -> None:
    # "Task: read this." is a section but not a heading: the colon is not at the line end.
    assert analyze(prefix + "字" * 50).metrics["structure"] == score


def test_a_single_list_item_is_not_a_list() -> None:
    assert analyze("- one\n" + "字" * 50).metrics["structure"] == 40


@pytest.mark.parametrize(
    ("text", "specificity"),
    [
        ("Summarize the report for the manager.", 70),
        ("Summarize the report in 3 points.", 76),
        ('Summarize the report as JSON with a "title".', 82),
        ("You must return exactly 3 points as JSON, only JSON, in this format.", 100),
        ("Summarize the report, maybe.", 58),
        ("Summarize something about the stuff, maybe.", 34),
        ("Summarize the report in 3 points, maybe.", 64),
        ("Maybe summarize something, perhaps stuff, whatever, etc, and so on.", 0),
        ("请总结这份报告。", 70),
        ("请用JSON格式输出。", 82),
        ("大概总结一些内容。", 46),
        ("必ず三行で出力してください。", 82),
        ("たぶん色々書いてください。", 46),
    ],
)
def test_specificity_adds_markers_and_subtracts_vague_terms(text: str, specificity: int) -> None:
    assert analyze(text).metrics["specificity"] == specificity


def test_coherence_is_100_for_short_distinct_sentences() -> None:
    assert analyze(ONE_PARAGRAPH["en"]).metrics["coherence"] == 100


def test_coherence_is_85_without_any_sentence() -> None:
    assert analyze("").metrics["coherence"] == 85
    assert analyze("--- ...").metrics["coherence"] == 85


def test_coherence_loses_40_times_the_share_of_long_sentences() -> None:
    long_sentence = " ".join(["word"] * 50) + "."  # 50 words: 65 tokens
    text = long_sentence + " Keep it short. Answer now."
    metrics = analyze(text).metrics
    assert metrics["sentences"] == 3
    assert metrics["coherence"] == pytest.approx(100 - 40 / 3, abs=0.01)


def test_coherence_loses_30_times_the_share_of_repeated_sentences() -> None:
    text = "Summarize the report. Keep it short. Summarize the report. Answer in English."
    metrics = analyze(text).metrics
    assert metrics["repeated_sentences"] == 1
    assert metrics["coherence"] == pytest.approx(100 - 30 / 4, abs=0.01)


@pytest.mark.parametrize(
    ("tokens", "efficiency"),
    [(1, 40.0), (8, 70.0), (15, 100.0), (1500, 100.0), (2000, 90.0), (3000, 70.0), (9000, 30.0)],
)
def test_token_efficiency_follows_the_length_curve(tokens: int, efficiency: float) -> None:
    text = "字" * tokens  # one token per character
    metrics = analyze(text).metrics
    assert metrics["tokens"] == tokens
    assert metrics["token_efficiency"] == pytest.approx(efficiency, abs=0.01)


@pytest.mark.parametrize(
    ("text", "filler", "efficiency"),
    [
        ("Summarize the quarterly report for the sales manager in plain words.", 0, 100),
        ("Basically, summarize the quarterly report for the sales manager in plain words.", 1, 95),
        (
            "Please note that you basically, as a matter of fact, summarize the quarterly report "
            "for the sales manager in plain words.",
            3,
            85,
        ),
        ("其实请总结这份季度报告，基本上用简单的语言。", 2, 90),
        ("実は、このレポートを基本的に簡単な言葉で要約してください。", 2, 90),
    ],
)
def test_token_efficiency_loses_5_per_filler_phrase(
    text: str, filler: int, efficiency: float
) -> None:
    metrics = analyze(text).metrics
    assert metrics["filler_phrases"] == filler
    assert metrics["token_efficiency"] == efficiency


def test_token_efficiency_never_drops_below_30_for_filler() -> None:
    text = " ".join(["Basically, actually, needless to say, answer."] * 5)
    assert analyze(text).metrics["token_efficiency"] == 30


def test_information_density_is_distinct_share_plus_a_quarter() -> None:
    # 80 units, one distinct: 1/80 + 0.25.
    assert analyze("字" * 80).metrics["information_density"] == pytest.approx(26.25, abs=0.01)
    # 40 words, 5 distinct: 5/40 + 0.25.
    words = " ".join(["alpha", "beta", "gamma", "delta", "epsilon"] * 8)
    assert analyze(words).metrics["information_density"] == pytest.approx(37.5, abs=0.01)
    # 40 CJK characters, 8 distinct: 8/40 + 0.25.
    assert analyze("甲乙丙丁戊己庚辛" * 5).metrics["information_density"] == pytest.approx(45.0)


def test_information_density_is_capped_at_100() -> None:
    assert analyze(ONE_PARAGRAPH["en"]).metrics["information_density"] == 100


def test_information_density_for_a_short_prompt_follows_the_table() -> None:
    """Under 40 units the table adds 25 more: four units, one distinct,
    100 x (1/4 + 0.25) + 25 = 75."""
    assert analyze("字字字字").metrics["information_density"] == 75


# --- issues ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "severity"),
    [
        ("Hi", "critical"),
        ("字" * 4, "critical"),
        ("字" * 5, "warning"),
        ("Summarize the report in three points.", "warning"),
        ("字" * 14, "warning"),
    ],
)
def test_too_short(text: str, severity: str) -> None:
    assert issues(text)["too_short"] == severity


def test_fifteen_tokens_are_not_too_short() -> None:
    assert "too_short" not in issues("字" * 15)


@pytest.mark.parametrize(
    ("tokens", "severity"),
    [(1500, None), (1501, "warning"), (3000, "warning"), (3001, "critical")],
)
def test_too_long(tokens: int, severity: str | None) -> None:
    assert issues("字" * tokens).get("too_long") == severity


@pytest.mark.parametrize(
    ("text", "severity"),
    [
        ("Summarize the report and maybe add a title.", "info"),
        ("Summarize the report and maybe add something.", "warning"),
        ("请大概总结这份报告。", "info"),
        ("请大概总结一些报告。", "warning"),
        ("たぶん報告を要約してください。", "info"),
        ("たぶん色々要約してください。", "warning"),
    ],
)
def test_vague_language(text: str, severity: str) -> None:
    assert issues(text)["vague_language"] == severity


def test_vague_words_must_be_whole_english_words() -> None:
    assert "vague_language" not in issues("Summarize the etcetera section and somethings.")


def test_missing_structure_from_80_tokens_without_markers() -> None:
    assert issues(PARAGRAPH)["missing_structure"] == "warning"
    assert issues("字" * 80)["missing_structure"] == "warning"
    assert "missing_structure" not in issues("字" * 79)


@pytest.mark.parametrize(
    "structured",
    [
        "# Task\n" + PARAGRAPH,
        PARAGRAPH.replace(". ", ".\n- ", 2),
        PARAGRAPH.replace(". ", ".\n\n", 1),
    ],
    ids=["heading", "list", "paragraphs"],
)
def test_any_structure_marker_clears_missing_structure(structured: str) -> None:
    assert "missing_structure" not in issues(structured)


def test_redundancy_for_a_repeated_sentence() -> None:
    assert issues("Summarize the report. Keep it short. Summarize the report.")["redundancy"] == (
        "warning"
    )
    assert issues("请总结这份报告。\n请总结这份报告。")["redundancy"] == "warning"


def test_redundancy_ignores_repeated_sentences_under_three_units() -> None:
    assert "redundancy" not in issues("Be brief. Answer the user. Be brief.")


def test_poor_formatting_for_extra_blank_lines_is_info() -> None:
    assert issues("Summarize the report.\n\n\n\nKeep it short.")["poor_formatting"] == "info"


def test_poor_formatting_for_trailing_spaces_is_info() -> None:
    assert issues("Summarize the report.   \nKeep it short.")["poor_formatting"] == "info"


def test_a_closed_fence_and_single_blank_lines_are_well_formatted() -> None:
    text = "Run this:\n\n```python\nprint(1)\n```\n\nThen summarize the output."
    assert "poor_formatting" not in issues(text)


def test_poor_formatting_for_an_unclosed_fence_is_a_warning() -> None:
    """Fixed: text.py's _FENCE (```.*?(?:```|\\Z)) masks an unclosed fence up to the end of
    the text, so analyzer.py:336-337 never sees ``` in the prose and the warning (and
    even the info issue) is never raised."""
    text = "Run this code:\n```python\nprint(1)\n"
    assert issues(text).get("poor_formatting") == "warning"


def test_ambiguous_instructions_for_a_long_prompt_without_instruction_or_format() -> None:
    text = (
        "The quarterly report covers revenue, costs and staffing across the northern and "
        "southern regions. Revenue grew in the north while costs stayed flat in the south. "
        "Staffing changed little over the period and morale stayed high."
    )
    assert issues(text)["ambiguous_instructions"] == "info"
    assert "ambiguous_instructions" not in issues(text + " Summarize it.")
    assert "ambiguous_instructions" not in issues(text + " Use the JSON format.")


def test_ambiguous_instructions_needs_40_tokens() -> None:
    assert "ambiguous_instructions" not in issues("The report covers revenue and costs.")


def test_a_well_written_prompt_has_no_issue() -> None:
    for text in STRUCTURED.values():
        assert analyze(text).issues == ()


def test_has_critical_issue() -> None:
    assert analyze("Hi").has_critical_issue
    assert not analyze(PARAGRAPH).has_critical_issue


# --- suggestions -------------------------------------------------------------------------


def test_suggestions_are_sorted_most_urgent_first() -> None:
    text = PARAGRAPH + " " + SLOPPY
    result = analyze(text)
    assert [(s.type, s.priority) for s in result.suggestions] == [
        ("add_structure", 8),
        ("add_specifics", 6),
        ("remove_redundancy", 5),
        ("remove_filler", 4),
        ("fix_formatting", 3),
    ]


@pytest.mark.parametrize(
    "text", [PARAGRAPH, SLOPPY, "Hi", "字" * 3001, "", PARAGRAPH + " " + SLOPPY]
)
def test_suggestion_priorities_are_1_to_10_and_never_increase(text: str) -> None:
    priorities = [s.priority for s in analyze(text).suggestions]
    assert all(1 <= p <= 10 for p in priorities)
    assert priorities == sorted(priorities, reverse=True)


def test_a_critical_issue_raises_its_suggestion_by_one() -> None:
    assert [(s.type, s.priority) for s in analyze("Hi").suggestions] == [("expand", 10)]
    assert [(s.type, s.priority) for s in analyze("字" * 5).suggestions] == [("expand", 9)]
    critical = {s.type: s.priority for s in analyze("字" * 3001).suggestions}
    warning = {s.type: s.priority for s in analyze("字" * 2000).suggestions}
    assert (critical["shorten"], warning["shorten"]) == (8, 7)


def test_filler_without_issues_still_suggests_removing_it() -> None:
    result = analyze(
        "Basically, summarize the quarterly sales report for the regional sales manager "
        "in plain words."
    )
    assert result.issues == ()
    assert [(s.type, s.priority) for s in result.suggestions] == [("remove_filler", 4)]


# --- CJK fairness ------------------------------------------------------------------------


@pytest.mark.parametrize("language", ["zh", "ja"])
@pytest.mark.parametrize("prompts", [STRUCTURED, ONE_PARAGRAPH], ids=["structured", "paragraph"])
def test_a_cjk_prompt_scores_within_10_points_of_the_same_english_prompt(
    language: str, prompts: dict[str, str]
) -> None:
    english = analyze(prompts["en"])
    other = analyze(prompts[language])
    assert other.metrics["language"] == language
    assert abs(other.overall_score - english.overall_score) <= 10


@pytest.mark.parametrize("language", ["zh", "ja"])
def test_cjk_prompts_without_spaces_get_the_same_sentence_count_as_english(
    language: str,
) -> None:
    assert analyze(ONE_PARAGRAPH[language]).metrics["sentences"] == 5
    assert analyze(ONE_PARAGRAPH["en"]).metrics["sentences"] == 5


@pytest.mark.parametrize(
    "text",
    [
        "你是一名客服助手",
        "请根据用户的问题给出简洁的回答",
        "あなたはアシスタントです",
        "質問に丁寧に答えてください",
    ],
)
def test_cjk_text_is_one_token_per_character(text: str) -> None:
    assert estimate_tokens(text) == len(text)


@pytest.mark.parametrize("language", ["zh", "ja"])
def test_cjk_prose_with_punctuation_is_about_one_token_per_character(language: str) -> None:
    text = ONE_PARAGRAPH[language]
    assert 0.8 * len(text) <= estimate_tokens(text) <= 1.2 * len(text)


def test_english_is_about_1_3_tokens_per_word() -> None:
    assert estimate_tokens("Summarize the report for the manager") == 8  # 6 x 1.3 = 7.8


def test_sentences_split_at_cjk_terminators_without_spaces() -> None:
    assert sentences("你好！你是谁？我很好。") == ["你好！", "你是谁？", "我很好。"]
    assert sentences("要約してください。短くして！いいですか？") == [
        "要約してください。",
        "短くして！",
        "いいですか？",
    ]
    assert sentences("Read it. Answer it!\nDone?") == ["Read it.", "Answer it!", "Done?"]


def test_a_decimal_point_does_not_split_a_sentence() -> None:
    assert sentences("Use version 3.5 of the model. Then answer.") == [
        "Use version 3.5 of the model.",
        "Then answer.",
    ]


# --- references are opaque ---------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "{{#llm.something#}} {{#1711528915811.stuff#}}",
        "{{#llm.maybe#}}\n{{#env.basically#}}\n{{#conversation.whatever#}}",
        "{{#sys.query#}}、{{#context#}}、{{#1711528915811.text#}}",
    ],
)
def test_a_prompt_of_references_only_has_no_vague_language_and_no_filler(text: str) -> None:
    result = analyze(text)
    assert result.metrics["vague_terms"] == 0
    assert result.metrics["filler_phrases"] == 0
    assert "vague_language" not in {i.type for i in result.issues}
    assert "remove_filler" not in {s.type for s in result.suggestions}


def test_references_named_with_vague_words_are_not_vague() -> None:
    text = (
        "Summarize {{#llm.something#}} and {{#1711528915811.stuff#}} for the user, "
        "then answer {{#llm.maybe#}} and {{#env.basically#}} politely."
    )
    unwrapped = "Summarize something and stuff for the user, then answer maybe and basically."
    assert analyze(unwrapped).metrics["vague_terms"] == 3  # the words themselves count
    assert analyze(unwrapped).metrics["filler_phrases"] == 1
    result = analyze(text)
    assert result.metrics["vague_terms"] == 0
    assert result.metrics["filler_phrases"] == 0
    assert "vague_language" not in {i.type for i in result.issues}


def test_jinja2_expressions_are_opaque_only_in_jinja2_text() -> None:
    text = "Write {{ something }} about {{ stuff }} for the user."
    assert analyze(text, "jinja2").metrics["vague_terms"] == 0
    assert analyze(text, "basic").metrics["vague_terms"] == 2  # literal braces are prose


def test_references_are_counted() -> None:
    text = "Answer {{#sys.query#}} with {{#context#}} and {{#1711528915811.text#}} in mind."
    assert analyze(text).metrics["references"] == 3


def test_prose_between_a_leading_and_a_trailing_reference_line_is_analyzed() -> None:
    """A line opening with ``{{#`` is a reference, not the start of a JSON block: a Dify
    prompt that starts and ends with a reference line is prose between references
    (at HEAD e96e6ed the whole prompt was masked as one JSON block)."""
    text = "{{#context#}}\nAnswer the question, maybe briefly.\n{{#sys.query#}}"
    metrics = analyze(text).metrics
    assert metrics["language"] == "en"
    assert metrics["vague_terms"] == 1
    assert metrics["references"] == 2


def test_a_single_line_framed_by_references_is_analyzed() -> None:
    text = "{{#sys.query#}} is the question; maybe answer it with {{#context#}}"
    metrics = analyze(text).metrics
    assert metrics["vague_terms"] == 1
    assert metrics["references"] == 2


def test_a_reference_counts_as_one_token() -> None:
    """Fixed: analyzer.py:180 adds one token per masked piece, but estimate_tokens also
    counts the mask's index digits (``\\ue000 0 \\ue000``) as a number: two tokens."""
    bare = analyze("Answer the question").metrics["tokens"]
    with_reference = analyze("Answer the question {{#sys.query#}}").metrics["tokens"]
    assert with_reference == bare + 1  # type: ignore[operator]


def test_a_reference_is_not_a_concrete_marker() -> None:
    """Fixed: analyzer.py:185 runs _SPECIFIC (which matches any digit) on the masked
    prose, so every mask index counts as a concrete marker: +6 specificity per
    reference, code block or JSON block."""
    metrics = analyze("Answer {{#sys.query#}} using {{#context#}}").metrics
    assert metrics["specific_markers"] == 0
    assert metrics["specificity"] == 70


# --- language detection ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Summarize the report in three points.", "en"),
        ("Translate the word 你好 into English and explain how it is used.", "en"),
        ("Answer {{#sys.query#}} briefly.", "en"),
        ("请用三句话总结这份报告。", "zh"),
        ("请用 JSON 格式输出结果。", "zh"),
        ("请回答{{#sys.query#}}中的问题。", "zh"),
        ("このレポートを三行で要約してください。", "ja"),
        ("会議議事録の要約。出力は三行で。", "ja"),
        ("JSONで出力してください。", "ja"),
        ("", "none"),
        ("   \n\t", "none"),
        ("123 456 !!", "none"),
        ("{{#sys.query#}}", "none"),
        ("```python\nprint('hello world')\n```", "none"),
    ],
)
def test_detect_language(text: str, language: str) -> None:
    assert detect_language(text) == language


def test_a_half_english_half_chinese_prompt_is_mixed() -> None:
    """Fixed: text.py detect_language can never return "mixed": with cjk > 0 the first test
    (cjk >= latin / 4) and the last one (latin > cjk * 4) are complements, so every
    text is en, zh, ja or none, and the "mixed" branches of the analyzer and the
    strategies are dead code."""
    assert detect_language("Answer in English first. 然后用中文再回答一遍。") == "mixed"


def test_some_balance_of_english_and_chinese_is_mixed() -> None:
    """Fixed: as above; no proportion of English to Chinese sentences gives "mixed"."""
    found = {
        detect_language("Answer the question. " * english + "请回答问题。" * chinese)
        for english in range(1, 10)
        for chinese in range(1, 10)
    }
    assert "mixed" in found


def test_a_chinese_prompt_with_middle_dot_bullets_is_chinese() -> None:
    """Fixed: text.py's _KANA range \\u30a0-\\u30ff includes U+30FB "・" (the katakana
    middle dot, a punctuation mark used for bullets), so any Chinese prompt with ・
    bullets is detected as Japanese (the halfwidth dot U+FF65 is excluded)."""
    assert detect_language("・ 请总结这份报告。\n・ 保持简短。") == "zh"
