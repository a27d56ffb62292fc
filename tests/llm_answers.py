"""What the fake language model answers: rewrites that keep a prompt's references.

Shared by the tests that drive ``autoopt optimize`` against
:class:`tests.llm_server.FakeLLMServer`: the rewrite is well structured, keeps
every ``{{#node.var#}}`` reference as often as it appears, and stays in the
prompt's language, so the answer guards accept it.
"""

from __future__ import annotations

import re
from typing import Any

PROMPT_BLOCK = re.compile(r"<<<PROMPT\n(.*)\nPROMPT>>>\s*\Z", re.DOTALL)
REFERENCE = re.compile(r"\{\{#[^{}#]+#\}\}")
CJK = re.compile(r"[\u4e00-\u9fff]")


# --------------------------------------------------------------------------- #
# What the fake model answers
# --------------------------------------------------------------------------- #


def prompt_in(body: dict[str, Any]) -> str:
    """The user's prompt, between the markers of the last user message."""
    user = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
    found = PROMPT_BLOCK.search(user)
    assert found, f"no <<<PROMPT ... PROMPT>>> block in {user!r}"
    return found.group(1)


def structured_rewrite(prompt: str, *, language: str | None = None) -> str:
    """A well-structured rewrite keeping every reference as often as it appears.

    A prompt without prose (only references) comes back unchanged. The language
    is the prompt's own unless ``language`` forces "en" or "zh".
    """
    references = REFERENCE.findall(prompt)
    if not REFERENCE.sub("", prompt).strip():
        return prompt
    language = language or ("zh" if CJK.search(prompt) else "en")
    if language == "zh":
        inputs = [f"- 输入{n}：{ref}" for n, ref in enumerate(references, 1)]
        lines = [
            "你是客服助手，负责回答用户关于订单、付款和退款的问题。",
            "",
            "## 输入",
            *inputs,
            "",
            "## 要求",
            "- 先确认用户的订单号。",
            "- 退款在七个工作日内原路返回。",
            "- 不要承诺政策以外的补偿。",
        ]
    else:
        inputs = [f"- Input {n}: {ref}" for n, ref in enumerate(references, 1)]
        lines = [
            "You are a support assistant.",
            "",
            "## Inputs",
            *inputs,
            "",
            "## Requirements",
            "- Use only facts from the inputs and the product manual.",
            "- If you do not know the answer, say so and suggest contacting support.",
            "- Answer in at most three sentences, in a friendly tone.",
        ]
    return "\n".join(lines)
