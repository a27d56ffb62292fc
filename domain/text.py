"""Language-aware text primitives shared by the analyzer and the strategies.

Prompts mix English, Chinese and Japanese, Dify variable references, code
fences and JSON examples. Everything here treats references and code as
opaque: they are masked before prose is measured or rewritten and restored
byte for byte afterwards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from autoopt.domain.references import find_references

Language = Literal["en", "zh", "ja", "mixed", "none"]

_HAN = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# Katakana without U+30FB (・), a bullet Chinese text uses too.
_KANA = r"\u3040-\u309f\u30a0-\u30fa\u30fc-\u30ff\uff66-\uff9f"
_CJK_CHAR = re.compile(f"[{_HAN}{_KANA}]")
_KANA_CHAR = re.compile(f"[{_KANA}]")
_LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]*")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？!?])|\n+")
_FENCE = re.compile(r"```.*?(?:```|\Z)", re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]+`")
# A JSON-looking block: a line that opens with { or [ up to the line that closes
# it. "{{", "{#" and "{%" open references and templates, not JSON.
_JSON_BLOCK = re.compile(
    r"(?m)^[ \t]*(?:\{(?![{#%])|\[(?=\s*[\"{\[\]0-9-]|\s*$))"
    r"[^\n]*(?:\n(?![ \t]*$)[^\n]*)*?\n?[ \t]*[\]}][ \t]*,?$"
)
MASK = "\ue000"  # a private-use character: never in real prompts
_MASK_TOKEN = re.compile(f"{MASK}\\d+{MASK}")


@dataclass(frozen=True)
class Masked:
    """Text with references, code and JSON replaced by numbered masks."""

    text: str
    pieces: tuple[str, ...]

    def restore(self, text: str) -> str:
        def put_back(match: re.Match[str]) -> str:
            return self.pieces[int(match.group(1))]

        return re.sub(f"{MASK}(\\d+){MASK}", put_back, text)


def mask(text: str, edition: str = "basic") -> Masked:
    """Hide everything that must survive untouched behind ``MASK<n>MASK`` tokens."""
    spans: list[tuple[int, int]] = []
    for pattern in (_FENCE, _JSON_BLOCK, _INLINE_CODE):
        for match in pattern.finditer(text):
            if not _inside(match.start(), match.end(), spans):
                spans.append((match.start(), match.end()))
    for reference in find_references(text, edition):
        end = reference.start + len(reference.raw)
        if not _inside(reference.start, end, spans):
            spans.append((reference.start, end))
    spans.sort()
    out: list[str] = []
    pieces: list[str] = []
    cursor = 0
    for start, end in spans:
        if start < cursor:
            continue
        out.append(text[cursor:start])
        out.append(f"{MASK}{len(pieces)}{MASK}")
        pieces.append(text[start:end])
        cursor = end
    out.append(text[cursor:])
    return Masked("".join(out), tuple(pieces))


def protected_pieces(text: str, edition: str = "basic") -> list[str]:
    """References, code and JSON blocks, in order: what no strategy may change."""
    return list(mask(text, edition).pieces)


def detect_language(text: str) -> Language:
    """en, zh, ja, mixed, or none (only references, code and symbols).

    A CJK character weighs as two thirds of an English word (Chinese spends
    about 1.5 characters on what English says in a word): at least 70% CJK
    is zh (ja when there is kana), at most 30% is en, anything between mixed.
    """
    prose = mask(text).text
    cjk = len(_CJK_CHAR.findall(prose))
    words = len(_LATIN_WORD.findall(prose))
    if cjk == 0 and words == 0:
        return "none"
    share = cjk / (cjk + 1.5 * words)
    if share >= 0.7:
        return "ja" if _KANA_CHAR.search(prose) else "zh"
    if share <= 0.3:
        return "en"
    return "mixed"


def plain(masked_text: str) -> str:
    """Masked prose with each mask reduced to one bare MASK: no digits to count."""
    return _MASK_TOKEN.sub(MASK, masked_text)


def has_prose(text: str, edition: str = "basic") -> bool:
    """Whether there is any wording outside references, code and JSON to work on."""
    return bool(units(mask(text, edition).text.replace(MASK, " ")))


def estimate_tokens(text: str) -> int:
    """Roughly what a BPE tokenizer would count: ~1 per CJK character, ~1.3 per word."""
    cjk = len(_CJK_CHAR.findall(text))
    words = len(_LATIN_WORD.findall(text))
    numbers = len(_NUMBER.findall(text))
    symbols = sum(1 for ch in text if not ch.isalnum() and not ch.isspace() and ch != MASK)
    return int(cjk * 1.0 + words * 1.3 + numbers + symbols * 0.5 + 0.5)


def sentences(text: str) -> list[str]:
    """Sentences, split at . ! ? and 。！？ and line breaks; blanks dropped."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def units(text: str) -> list[str]:
    """Countable content units: lower-cased words and single CJK characters."""
    found = [w.lower() for w in _LATIN_WORD.findall(text)]
    found.extend(_CJK_CHAR.findall(text))
    return found


def _inside(start: int, end: int, spans: list[tuple[int, int]]) -> bool:
    return any(s < end and start < e for s, e in spans)
