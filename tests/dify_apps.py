"""Small Dify workflow apps for tests: a start node and LLM nodes, as Dify exports them."""

from __future__ import annotations

from typing import Any

MODEL = "gpt-4o-mini"


def llm_node(
    node_id: str, text: str, *, title: str = "Writer", model: str = MODEL
) -> dict[str, Any]:
    """An LLM node whose one system message is ``text``."""
    return {
        "id": node_id,
        "type": "custom",
        "data": {
            "title": title,
            "type": "llm",
            "model": {"mode": "chat", "name": model, "provider": "openai"},
            "prompt_template": [{"id": f"p-{node_id}", "role": "system", "text": text}],
        },
    }


def workflow_app(
    name: str, nodes: list[dict[str, Any]], *, start: str = "start", inputs: tuple[str, ...] = ()
) -> dict[str, Any]:
    """A workflow app: a start node ``start`` offering ``inputs``, then ``nodes``."""
    variables = [{"label": v, "type": "text-input", "variable": v} for v in inputs]
    start_node = {
        "id": start,
        "type": "custom",
        "data": {"title": "Start", "type": "start", "variables": variables},
    }
    return {
        "app": {"mode": "workflow", "name": name},
        "kind": "app",
        "version": "0.1.5",
        "workflow": {"graph": {"edges": [], "nodes": [start_node, *nodes]}},
    }
