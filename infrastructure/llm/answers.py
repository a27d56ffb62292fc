"""What a request sends and what an answer means, shared by the live and the replay client.

Kept apart from ``client`` so that replaying a run never imports the ``openai`` SDK.
"""

from __future__ import annotations

import json
import re
from typing import Any

from autoopt.domain.errors import LLMResponseError
from autoopt.infrastructure.settings import LLMSettings

_FENCED_JSON = re.compile(r"^\s*```(?:json)?\s*\n(.*?)\n```\s*$", re.DOTALL)


def request_parameters(settings: LLMSettings) -> dict[str, Any]:
    """The sampling parameters sent with every request (and hashed into its key)."""
    parameters: dict[str, Any] = {"temperature": settings.temperature}
    if settings.max_tokens is not None:
        parameters["max_tokens"] = settings.max_tokens
    return parameters


def prompt_from_answer(content: str) -> str:
    """The rewritten prompt from an answer: the JSON field, or the plain text."""
    body = content.strip()
    fenced = _FENCED_JSON.match(body)
    if fenced:
        body = fenced.group(1).strip()
    if body.startswith("{"):
        try:
            document = json.loads(body)
        except ValueError as exc:
            raise LLMResponseError("the answer looks like JSON but does not parse") from exc
        value = document.get("optimized_prompt") if isinstance(document, dict) else None
        if not isinstance(value, str):
            raise LLMResponseError("the answer's JSON has no optimized_prompt text")
        return value
    return content
