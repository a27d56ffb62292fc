"""How a run's figures read in a report, the same in the text audit and the HTML page."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


def cost_text(cost: float | None) -> str:
    # An unknown price is not a zero cost.
    return "cost unknown" if cost is None else f"${cost:.6f}"


def llm_call_text(
    call: Mapping[str, Any],
    *,
    quoted_error: str | None = None,
    clip: Callable[[str], str] = str,
) -> str:
    """One LLM call as a line: model, tokens, cost, cached, and its error.

    ``quoted_error`` is a message shown beside the call already (a fallback
    error): when it ends with the call's error, the line only says "failed".
    """
    parts = [
        str(call["model"]),
        f"{call['prompt_tokens']} + {call['completion_tokens']} tokens",
        cost_text(call["cost_usd"]),
    ]
    if call["cached"]:
        parts.append("cached")
    if call["error"]:
        if quoted_error and quoted_error.endswith(call["error"]):
            parts.append("failed")
        else:
            parts.append(f"error: {clip(call['error'])}")
    return ", ".join(parts)
