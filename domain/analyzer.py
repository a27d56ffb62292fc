"""PromptAnalyzer: deterministic scores, issues and suggestions for one prompt.

Scores are 0-100. References, code fences and JSON blocks are masked first, so
a ``{{#1711528915811.text#}}`` is neither vague nor filler, and counts as one
token. Every rule and weight is in this table:

==========================  =================================================================
overall                     0.6 clarity + 0.4 efficiency
clarity                     0.4 structure + 0.3 specificity + 0.3 coherence
efficiency                  0.5 token efficiency + 0.5 information density
structure                   40, +20 headings (``#``, ``【…】``, a line ending in ``:``/``：``),
                            +20 list items (``-``, ``*``, ``1.``, ``①``), +10 paragraph breaks,
                            +10 labelled sections (role/task/output..., 角色/任务/输出...,
                            役割/タスク/出力...); a prompt under 40 tokens needs none: 80
specificity                 70, +6 per concrete marker (numbers, quotes, format words like
                            JSON/格式/形式, must/必须/必ず, examples) up to +30,
                            -12 per vague term (per language lists below) down to 0
coherence                   100, -40 x share of sentences over 60 tokens, -30 x share of
                            repeated sentences, -15 if there is no sentence at all
token efficiency            100 from 15 to 1,500 tokens; below 15 falls to 40 at 1 token;
                            above 1,500 falls 10 per 500 tokens (floor 30); -5 per filler
                            phrase (down to 30)
information density         100 x (distinct units / units + 0.25), +25 more under 40
                            units (short texts have little room to repeat), capped at 100;
                            units are words and CJK characters
==========================  =================================================================

Issues and their severities: ``too_short`` (under 5 tokens: critical; under 15:
warning), ``too_long`` (over 3,000 tokens: critical; over 1,500: warning),
``vague_language`` (2+ vague terms: warning; 1: info), ``missing_structure``
(80+ tokens and no structure marker: warning), ``redundancy`` (a repeated
sentence or line: warning), ``poor_formatting`` (3+ blank lines in a row,
trailing spaces, an unclosed code fence: info; warning for the fence),
``ambiguous_instructions`` (40+ tokens without an instruction word or an output
format: info). Suggestions carry a priority, 10 the most urgent.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from typing import Literal

from pydantic import Field

from autoopt.domain.models import FrozenModel
from autoopt.domain.text import (
    Language,
    detect_language,
    estimate_tokens,
    mask,
    plain,
    sentences,
    units,
)

IssueType = Literal[
    "too_long",
    "too_short",
    "vague_language",
    "missing_structure",
    "redundancy",
    "poor_formatting",
    "ambiguous_instructions",
]
Severity = Literal["critical", "warning", "info"]

VAGUE_TERMS: dict[str, tuple[str, ...]] = {
    "en": (
        "something",
        "stuff",
        "things",
        "somehow",
        "maybe",
        "perhaps",
        "kind of",
        "sort of",
        "etc",
        "and so on",
        "various",
        "a lot",
        "whatever",
        "some kind",
    ),
    "zh": (
        "一些",
        "某些",
        "之类",
        "等等",
        "大概",
        "也许",
        "或许",
        "差不多",
        "某种",
        "相关的内容",
        "各种各样",
    ),
    "ja": (
        "いくつか",
        "たぶん",
        "多分",
        "なんか",
        "色々",
        "いろいろ",
        "適当に",
        "ちょっと",
        "なんとなく",
        "とか",
    ),
}
# Exactly what efficiency_focus removes (and "in order to", which it shortens):
# a filler the strategy cannot take out would be a penalty nothing can lift.
FILLER_PHRASES: dict[str, tuple[str, ...]] = {
    "en": (
        "please note that",
        "it is important to note that",
        "basically",
        "actually",
        "as a matter of fact",
        "needless to say",
        "in order to",
    ),
    "zh": ("请注意", "其实", "基本上", "众所周知"),
    "ja": ("基本的に", "実は", "言うまでもなく"),
}
_SPECIFIC = re.compile(
    r"\d|\"[^\"]+\"|“[^”]+”|「[^」]+」|\bjson\b|\bmarkdown\b|\btable\b|\bformat\b|\bmust\b|"
    r"\bexample\b|\bexactly\b|\bonly\b|格式|输出|必须|示例|例如|不要|禁止|形式|出力|必ず|例[:：]|"
    r"しないで|禁止",
    re.IGNORECASE,
)
_INSTRUCTION = re.compile(
    r"\b(?:you are|act as|write|generate|summari[sz]e|translate|answer|respond|list|"
    r"extract|classify|analy[sz]e|return|output|create|explain|rewrite|review|give)\b|"
    r"请|你是|生成|总结|翻译|回答|输出|提取|分析|返回|编写|撰写|扮演|"
    r"してください|あなたは|生成|要約|翻訳|回答|出力|抽出|分析",
    re.IGNORECASE,
)
_HEADING = re.compile(r"(?m)^\s*(?:#{1,6}\s+\S|【[^】]+】|[^\n]{1,40}[:：]\s*$)")
_LIST_ITEM = re.compile(r"(?m)^\s*(?:[-*•·・]\s+|\d+[.)、．]\s*|[①-⑳]|[（(]\d+[）)])")
_SECTION = re.compile(
    r"(?im)^\s*(?:#+\s*)?(?:role|task|goal|context|instructions?|constraints?|rules|"
    r"output(?: format)?|examples?|steps|角色|任务|目标|背景|要求|约束|规则|限制|输出|"
    r"示例|步骤|技能|役割|タスク|目的|制約|ルール|出力|例|手順)\b"
)


class Issue(FrozenModel):
    type: IssueType
    severity: Severity
    message: str


class Suggestion(FrozenModel):
    type: str
    priority: int = Field(ge=1, le=10)
    message: str


class PromptAnalysis(FrozenModel):
    prompt_id: str
    overall_score: float = Field(ge=0, le=100)
    clarity_score: float = Field(ge=0, le=100)
    efficiency_score: float = Field(ge=0, le=100)
    issues: tuple[Issue, ...] = ()
    suggestions: tuple[Suggestion, ...] = ()
    metrics: dict[str, float | int | str] = Field(default_factory=dict)

    @property
    def has_critical_issue(self) -> bool:
        return any(issue.severity == "critical" for issue in self.issues)


class PromptAnalyzer:
    """Scores a prompt; the same text always gets the same analysis."""

    def analyze(self, text: str, prompt_id: str = "", edition: str = "basic") -> PromptAnalysis:
        masked = mask(text, edition)
        # Measure on prose whose masks carry no digits, so a reference is one
        # token and never a "concrete marker"; restore for comparing sentences.
        prose = plain(masked.text)
        language = detect_language(text)
        tokens = estimate_tokens(prose) + len(masked.pieces)
        numbered = [s for s in sentences(masked.text) if _has_content(s)]
        sentence_list = [plain(s) for s in numbered]
        terms = _languages(language)
        vague = sum(_count_terms(prose, VAGUE_TERMS[lang]) for lang in terms)
        filler = sum(_count_terms(prose, FILLER_PHRASES[lang]) for lang in terms)
        specific = len(_SPECIFIC.findall(prose))
        repeated = _repeated([masked.restore(s) for s in numbered])
        long_sentences = sum(1 for s in sentence_list if estimate_tokens(s) > 60)
        markers = {
            "headings": bool(_HEADING.search(prose)),
            "lists": len(_LIST_ITEM.findall(prose)) >= 2,
            "paragraphs": "\n\n" in prose.strip(),
            "sections": bool(_SECTION.search(prose)),
        }

        structure = _structure_score(tokens, markers)
        specificity = _clamp(70 + min(30, 6 * specific) - 12 * vague)
        coherence = _coherence_score(sentence_list, long_sentences, repeated)
        token_efficiency = _token_efficiency(tokens, filler)
        density = _density(prose)
        clarity = 0.4 * structure + 0.3 * specificity + 0.3 * coherence
        efficiency = 0.5 * token_efficiency + 0.5 * density
        overall = 0.6 * clarity + 0.4 * efficiency

        issues = _issues(text, prose, tokens, vague, repeated, markers, sentence_list)
        return PromptAnalysis(
            prompt_id=prompt_id,
            overall_score=round(overall, 2),
            clarity_score=round(clarity, 2),
            efficiency_score=round(efficiency, 2),
            issues=tuple(issues),
            suggestions=tuple(_suggestions(issues, filler)),
            metrics={
                "language": language,
                "tokens": tokens,
                "sentences": len(sentence_list),
                "references": sum(1 for p in masked.pieces if p.startswith("{{")),
                "vague_terms": vague,
                "filler_phrases": filler,
                "specific_markers": specific,
                "repeated_sentences": repeated,
                "structure": round(structure, 2),
                "specificity": round(specificity, 2),
                "coherence": round(coherence, 2),
                "token_efficiency": round(token_efficiency, 2),
                "information_density": round(density, 2),
            },
        )


def _languages(language: Language) -> tuple[str, ...]:
    return {
        "en": ("en",),
        "zh": ("zh",),
        "ja": ("ja", "zh"),
        "mixed": ("en", "zh", "ja"),
        "none": (),
    }[language]


def _count_terms(text: str, terms: tuple[str, ...]) -> int:
    lowered = text.lower()
    count = 0
    for term, pattern in _term_patterns(terms):
        count += len(pattern.findall(lowered)) if pattern else lowered.count(term)
    return count


@functools.cache
def _term_patterns(terms: tuple[str, ...]) -> tuple[tuple[str, re.Pattern[str] | None], ...]:
    """Whole-word patterns for ASCII terms, built once per term list (a replay
    profile showed building them on every call at a tenth of the analysis)."""
    return tuple(
        (term, re.compile(rf"\b{re.escape(term)}\b") if term.isascii() else None) for term in terms
    )


def _has_content(sentence: str) -> bool:
    return bool(units(sentence))


def _repeated(sentence_list: list[str]) -> int:
    counts = Counter(s.lower() for s in sentence_list if len(units(s)) >= 3)
    return sum(n - 1 for n in counts.values() if n > 1)


def _structure_score(tokens: int, markers: dict[str, bool]) -> float:
    if tokens < 40:
        return 80.0
    score = 40 + 20 * markers["headings"] + 20 * markers["lists"]
    score += 10 * markers["paragraphs"] + 10 * markers["sections"]
    return float(score)


def _coherence_score(sentence_list: list[str], long_sentences: int, repeated: int) -> float:
    if not sentence_list:
        return 85.0
    count = len(sentence_list)
    return _clamp(100 - 40 * long_sentences / count - 30 * min(1.0, repeated / count))


def _token_efficiency(tokens: int, filler: int) -> float:
    if tokens < 15:
        base = 40 + 60 * max(0, tokens - 1) / 14
    elif tokens <= 1500:
        base = 100.0
    else:
        base = max(30.0, 100 - 10 * (tokens - 1500) / 500)
    return max(30.0, base - 5 * filler) if base > 30 else base


def _density(prose: str) -> float:
    found = units(prose)
    if not found:
        return 100.0
    ratio = len(set(found)) / len(found)
    return _clamp(100 * min(1.0, ratio + 0.25 + (0.25 if len(found) < 40 else 0)))


def _issues(
    text: str,
    prose: str,
    tokens: int,
    vague: int,
    repeated: int,
    markers: dict[str, bool],
    sentence_list: list[str],
) -> list[Issue]:
    issues: list[Issue] = []
    if tokens < 5:
        issues.append(
            Issue(
                type="too_short",
                severity="critical",
                message=f"only ~{tokens} tokens: too little to instruct a model",
            )
        )
    elif tokens < 15:
        issues.append(Issue(type="too_short", severity="warning", message=f"only ~{tokens} tokens"))
    if tokens > 3000:
        issues.append(Issue(type="too_long", severity="critical", message=f"~{tokens} tokens"))
    elif tokens > 1500:
        issues.append(Issue(type="too_long", severity="warning", message=f"~{tokens} tokens"))
    if vague:
        issues.append(
            Issue(
                type="vague_language",
                severity="warning" if vague > 1 else "info",
                message=f"{vague} vague term(s)",
            )
        )
    if tokens >= 80 and not any(markers.values()):
        issues.append(
            Issue(
                type="missing_structure",
                severity="warning",
                message="no headings, lists or sections",
            )
        )
    if repeated:
        issues.append(
            Issue(type="redundancy", severity="warning", message=f"{repeated} repeated sentence(s)")
        )
    # Fences are masked (an unclosed one to the end), so count them in the text.
    unclosed = text.count("```") % 2 == 1
    if unclosed or "\n\n\n" in prose or re.search(r"[ \t]+\n", prose):
        issues.append(
            Issue(
                type="poor_formatting",
                severity="warning" if unclosed else "info",
                message="unclosed code fence"
                if unclosed
                else "extra blank lines or trailing spaces",
            )
        )
    if (
        tokens >= 40
        and sentence_list
        and not _INSTRUCTION.search(prose)
        and not _SPECIFIC.search(prose)
    ):
        issues.append(
            Issue(
                type="ambiguous_instructions",
                severity="info",
                message="no clear instruction or output format",
            )
        )
    return issues


_SUGGESTIONS: dict[str, tuple[str, int, str]] = {
    "too_short": ("expand", 9, "State the task, the input and the expected output."),
    "too_long": ("shorten", 7, "Cut repetition and move reference material out of the prompt."),
    "vague_language": ("add_specifics", 6, "Replace vague words with concrete requirements."),
    "missing_structure": ("add_structure", 8, "Group the instructions under headings or a list."),
    "redundancy": ("remove_redundancy", 5, "Say each requirement once."),
    "poor_formatting": ("fix_formatting", 3, "Close code fences; drop extra blank lines."),
    "ambiguous_instructions": ("add_output_format", 6, "Say what to do and in what format."),
}


def _suggestions(issues: list[Issue], filler: int) -> list[Suggestion]:
    found = [
        Suggestion(
            type=kind,
            priority=priority + (1 if issue.severity == "critical" else 0),
            message=message,
        )
        for issue in issues
        for kind, priority, message in [_SUGGESTIONS[issue.type]]
    ]
    if filler:
        found.append(
            Suggestion(type="remove_filler", priority=4, message=f"Drop {filler} filler phrase(s).")
        )
    return sorted(found, key=lambda s: -s.priority)


def _clamp(value: float) -> float:
    return max(0.0, min(100.0, value))
