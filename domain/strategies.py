"""Rule-based rewrites of a prompt, and the names of every strategy.

Each rule works on prose only: references, code fences, inline code and JSON
blocks are masked first (``domain.text.mask``) and restored byte for byte, so
no rule can touch them. Every strategy keeps four invariants, which
:func:`invariant_violation` checks on every candidate: the references are the
same multiset, the protected blocks are unchanged, the language is kept (no
English heading in a Chinese prompt), and the result is not empty. Applied to
its own output a strategy changes nothing more.

==================  ===========================================================================
clarity_focus       drop hedges (maybe, perhaps, kind of / 大概, 也许 / たぶん), unify bullets,
                    and close a multi-sentence prompt without an explicit requirement with
                    one line in its own language ("Follow the instructions above exactly.")
efficiency_focus    drop filler phrases (please note that, basically / 其实, 基本上 /
                    基本的に, 実は), "in order to" -> "to", repeated lines, extra blank lines
                    and spaces
structure_focus     a single paragraph of 3+ sentences becomes its lead sentence and a
                    bullet list under a heading in the prompt's language (Requirements /
                    要求 / 要件); otherwise as clarity_focus's formatting clean-up
auto                the one the analysis calls for: missing structure -> structure_focus;
                    redundancy, filler or length -> efficiency_focus; else clarity_focus
==================  ===========================================================================

The LLM strategies are names here; without a language model each falls back to
its rule-based counterpart (``LLM_FALLBACKS``) and the fallback is recorded.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable

from autoopt.domain.analyzer import PromptAnalysis
from autoopt.domain.references import reference_multiset
from autoopt.domain.text import MASK, Masked, detect_language, mask, sentences, units

Rewrite = Callable[[str, str], str]

RULE_BASED = ("clarity_focus", "efficiency_focus", "structure_focus")
LLM_FALLBACKS = {
    "llm_guided": "structure_focus",
    "llm_clarity": "clarity_focus",
    "hybrid": "clarity_focus",
    "llm_efficiency": "efficiency_focus",
}
ALL_STRATEGIES = (*RULE_BASED, "auto", *LLM_FALLBACKS)

_HEDGES = {
    "en": r"\b(?:maybe|perhaps|kind of|sort of|somehow)\b,?[ \t]*",
    "zh": r"(?:大概|也许|或许|差不多)",
    "ja": r"(?:たぶん|多分|なんとなく)",
}
_FILLERS = {
    "en": r"\b(?:please note that|it is important to note that|basically,?|actually,?|"
    r"as a matter of fact,?|needless to say,?)[ \t]*",
    "zh": r"(?:请注意[，,：:]?|其实[，,]?|基本上[，,]?|众所周知[，,]?)",
    "ja": r"(?:基本的に[、,]?|実は[、,]?|言うまでもなく[、,]?)",
}
_CLOSING = {
    "en": "Follow the instructions above exactly.",
    "zh": "请严格按照以上要求执行。",
    "ja": "以上の指示に正確に従ってください。",
}
_HEADINGS = {"en": "## Requirements", "zh": "## 要求", "ja": "## 要件"}
_REQUIREMENT = re.compile(
    r"\b(?:must|exactly|only|format|json|output|do not|never|always)\b|必须|严格|格式|输出|不要|"
    r"禁止|必ず|正確|形式|出力|しないで",
    re.IGNORECASE,
)
_STRUCTURE = re.compile(r"(?m)^\s*(?:#{1,6}\s|[-*•·・]\s|\d+[.)、．]\s?|【)")
_BULLET = re.compile(r"(?m)^([ \t]*)[•·・*][ \t]+")


def clarity_focus(text: str, edition: str = "basic") -> str:
    masked = mask(text, edition)
    language = detect_language(text)
    prose = _drop(masked.text, _HEDGES, language)
    prose = _tidy(_BULLET.sub(r"\1- ", prose))
    closing = _CLOSING.get(language)
    if (
        closing
        and closing not in prose
        and len([s for s in sentences(prose) if units(s)]) >= 2
        and not _REQUIREMENT.search(prose)
    ):
        separator = "\n\n" if "\n" in prose.strip() else (" " if language == "en" else "")
        prose = prose.rstrip() + separator + closing
    return _finish(masked, prose, text, edition)


def efficiency_focus(text: str, edition: str = "basic") -> str:
    masked = mask(text, edition)
    language = detect_language(text)
    prose = _drop(masked.text, _FILLERS, language)
    if language in ("en", "mixed"):
        prose = re.sub(
            r"\bin order to\b",
            lambda m: "To" if m.group(0)[0].isupper() else "to",
            prose,
            flags=re.IGNORECASE,
        )
    prose = _tidy(_dedupe_lines(prose))
    return _finish(masked, prose, text, edition)


def structure_focus(text: str, edition: str = "basic") -> str:
    masked = mask(text, edition)
    language = detect_language(text)
    prose = _tidy(_BULLET.sub(r"\1- ", masked.text))
    body = prose.strip()
    parts = [s for s in sentences(body) if s]
    if language in ("zh", "ja"):
        parts = [clause for sentence in parts for clause in _clauses(sentence)]
    if (
        language in _HEADINGS
        and "\n" not in body
        and len(parts) >= 3
        and not _STRUCTURE.search(body)
    ):
        lead, rest = parts[0], parts[1:]
        items = "\n".join(f"- {item}" for item in rest)
        prose = f"{lead}\n\n{_HEADINGS[language]}\n{items}"
        prose = _keep_edges(masked.text, prose)
    return _finish(masked, prose, text, edition)


def _clauses(sentence: str) -> list[str]:
    """A long CJK sentence of four or more clauses, as its clauses.

    A clause under six characters ("收到问题后") stays with the one after it.
    """
    pieces = [p for p in re.split(r"[，；]", sentence) if p.strip()]
    if len(sentence) < 30 or len(pieces) < 4:
        return [sentence]
    clauses: list[str] = []
    carry = ""
    for piece in pieces:
        piece = carry + piece
        if len(piece) < 6:
            carry = piece + "，"
            continue
        clauses.append(piece)
        carry = ""
    if carry:
        clauses.append(carry.rstrip("，"))
    return clauses


def choose_auto(analysis: PromptAnalysis) -> str:
    kinds = {issue.type for issue in analysis.issues}
    if "missing_structure" in kinds:
        return "structure_focus"
    if kinds & {"redundancy", "too_long"} or analysis.metrics.get("filler_phrases", 0):
        return "efficiency_focus"
    return "clarity_focus"


REWRITES: dict[str, Rewrite] = {
    "clarity_focus": clarity_focus,
    "efficiency_focus": efficiency_focus,
    "structure_focus": structure_focus,
}


def invariant_violation(original: str, candidate: str, edition: str = "basic") -> str | None:
    """Why ``candidate`` may not replace ``original``, or None when it may."""
    if not candidate.strip():
        return "the candidate is empty"
    if reference_multiset(original, edition) != reference_multiset(candidate, edition):
        return "a variable reference was lost, changed or invented"
    if Counter(mask(original, edition).pieces) != Counter(mask(candidate, edition).pieces):
        return "a code block, JSON block or inline code changed"
    before, after = detect_language(original), detect_language(candidate)
    if before != after and before != "none":
        return f"the language changed from {before} to {after}"
    return None


def _drop(prose: str, patterns: dict[str, str], language: str) -> str:
    prose = _drop_patterns(prose, patterns, language)
    # "Answer briefly, maybe." must not become "Answer briefly, ."
    return re.sub(r"[,，、][ \t]*(?=[.!?。！？])", "", prose)


def _drop_patterns(prose: str, patterns: dict[str, str], language: str) -> str:
    for lang in ("en", "zh", "ja") if language == "mixed" else (language,):
        pattern = patterns.get(lang)
        if not pattern:
            continue
        if lang == "en":
            # A dropped sentence opener hands its capital letter to the next word.
            prose = re.sub(
                rf"(^|[.!?][ \t]+|\n[ \t]*(?:[-*][ \t]+)?)(?:{pattern})([a-z]?)",
                lambda m: m.group(1) + m.group(2).upper(),
                prose,
                flags=re.IGNORECASE,
            )
        prose = re.sub(pattern, "", prose, flags=re.IGNORECASE)
    return prose


def _dedupe_lines(prose: str) -> str:
    seen: set[str] = set()
    kept = []
    for line in prose.split("\n"):
        key = line.strip().lower()
        # Lines holding a masked reference or block stay: dropping one would lose it.
        if key and MASK not in line and len(units(key)) >= 3:
            if key in seen:
                continue
            seen.add(key)
        kept.append(line)
    return "\n".join(kept)


def _tidy(prose: str) -> str:
    prose = re.sub(r"(?<=\S)[ \t]{2,}", " ", prose)
    prose = re.sub(r"[ \t]+(?=\n)", "", prose)
    return re.sub(r"\n{3,}", "\n\n", prose)


def _keep_edges(original: str, prose: str) -> str:
    """Keep the original's leading and trailing whitespace around a rebuilt body,
    tidied as _tidy tidies everything else (so a second pass changes nothing)."""
    lead = _tidy(original[: len(original) - len(original.lstrip())])
    trail = _tidy(original[len(original.rstrip()) :])
    return lead + prose.strip() + trail


def _finish(masked: Masked, prose: str, original: str, edition: str) -> str:
    """The rewritten text, or the original when the rules would break an invariant.

    A strategy never hands out a candidate that loses a reference or a block,
    changes the language, or is empty: when its rules would, it changes nothing.
    """
    result = masked.restore(prose)
    return original if invariant_violation(original, result, edition) else result
