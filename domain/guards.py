"""Guards on a language model's answer: what makes a rewrite unusable, whatever it scores.

An answer is refused when it is empty, a refusal ("I'm sorry, I can't ...",
"抱歉，我无法...", "申し訳ありませんが..."), loses, changes or invents a variable
reference, changes a code or JSON block, changes the language, or is shorter
than ``min_ratio`` or longer than ``max_ratio`` times the prompt.
"""

from __future__ import annotations

import re

from autoopt.domain.strategies import invariant_violation

_REFUSAL = re.compile(
    r"^\s*(?:I'?m sorry|I am sorry|sorry,|I cannot|I can'?t|I am unable|I'm unable|"
    r"As an AI|抱歉|对不起|很抱歉|我无法|我不能|申し訳|すみません|できません)",
    re.IGNORECASE,
)


def answer_violation(
    original: str,
    answer: str,
    edition: str = "basic",
    min_ratio: float = 0.3,
    max_ratio: float = 3.0,
) -> str | None:
    """Why ``answer`` may not replace ``original``, or None when it may."""
    if not answer.strip():
        return "the answer is empty"
    if _REFUSAL.search(answer) and not _REFUSAL.search(original):
        return "the answer is a refusal"
    violation = invariant_violation(original, answer, edition)
    if violation:
        return violation
    ratio = len(answer) / max(1, len(original))
    if ratio < min_ratio:
        return f"the answer is {ratio:.2f}x the prompt's length, under {min_ratio:g}x"
    if ratio > max_ratio:
        return f"the answer is {ratio:.2f}x the prompt's length, over {max_ratio:g}x"
    return None
