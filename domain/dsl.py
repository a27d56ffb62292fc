"""Finding every prompt in a Dify app (DESIGN section 5).

Workflow and chatflow apps keep their nodes in ``workflow.graph.nodes``, nodes
inside iterations and loops included; each node is ``{id, type: custom,
data: {type: ...}}`` and ``data.type`` says what it is. The prompt-bearing
fields, by ``data.type``:

=====================  ==================================================================
llm                    ``prompt_template[i].text`` (chat models: a list of messages) or
                       ``prompt_template.text`` (completion models: one mapping); with
                       ``edition_type: jinja2`` the prompt is ``jinja2_text`` instead;
                       ``memory.query_prompt_template``
question-classifier    ``instruction`` (legacy exports: ``instructions``), ``classes[i].name``
parameter-extractor    ``instruction``, ``parameters[i].description``
agent                  ``agent_parameters.instruction.value``, ``agent_parameters.query.value``
=====================  ==================================================================

Chat, agent-chat and completion apps keep theirs in ``model_config``:
``pre_prompt``, ``chat_prompt_config.prompt[i].text`` and
``completion_prompt_config.prompt.text``. Notes, answers, templates, code and
HTTP nodes carry no prompt. Empty strings are listed (and never optimized).

A prompt id is ``<workflow id>/<node id>/<field path>`` (``@app`` stands for
the node of app-level prompts): stable across re-exports of the same app.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from autoopt.domain.dsl_loading import GRAPH_MODES, DifyApp, describe_kind
from autoopt.domain.errors import DSLFormatError
from autoopt.domain.models import Prompt
from autoopt.domain.references import find_references

APP_NODE = "@app"
Path = tuple[str | int, ...]
Edition = Literal["basic", "jinja2"]


class _Found:
    """A prompt-bearing string, located relative to its node's data."""

    __slots__ = ("edition", "path", "role", "text")

    def __init__(
        self, path: Path, text: str, role: str | None = None, edition: Edition = "basic"
    ) -> None:
        self.path = path
        self.text = text
        self.role = role
        self.edition = edition


def extract_prompts(app: DifyApp) -> list[Prompt]:
    return list(_iter_prompts(app))


def pointer(path: Path) -> str:
    """``("a", 0, "b/c")`` -> ``/a/0/b~1c`` (JSON pointer escaping)."""
    return "".join(f"/{str(part).replace('~', '~0').replace('/', '~1')}" for part in path)


def dotted(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _iter_prompts(app: DifyApp) -> Iterator[Prompt]:
    workflow_id = app.workflow_id
    if app.mode in GRAPH_MODES:
        nodes = app.document["workflow"]["graph"]["nodes"]
        for index, node in enumerate(nodes):
            if node.get("type") == "custom-note":
                continue
            data = node["data"]
            base: Path = ("workflow", "graph", "nodes", index, "data")
            node_id = str(node["id"])
            node_type = str(data.get("type", ""))
            title = data.get("title")
            for found in _node_fields(node_type, data, app.source, base):
                yield _prompt(
                    workflow_id,
                    node_id,
                    title if isinstance(title, str) else None,
                    node_type,
                    found,
                    base,
                )
    else:
        for found in _app_fields(app.document["model_config"], app.source):
            yield _prompt(workflow_id, None, None, "model_config", found, ())


def _prompt(
    workflow_id: str,
    node_id: str | None,
    title: str | None,
    node_type: str,
    found: _Found,
    base: Path,
) -> Prompt:
    field_path = pointer(found.path)
    return Prompt(
        prompt_id=f"{workflow_id}/{node_id or APP_NODE}{field_path}",
        workflow_id=workflow_id,
        node_id=node_id,
        node_title=title,
        node_type=node_type,
        field_path=field_path,
        document_path=pointer(base + found.path),
        role=found.role,
        edition=found.edition,
        text=found.text,
        variables=tuple(r.raw for r in find_references(found.text, found.edition)),
    )


def _node_fields(node_type: str, data: dict[str, Any], source: str, base: Path) -> Iterator[_Found]:
    read = _Reader(data, source, base)
    if node_type == "llm":
        yield from _llm_fields(read)
    elif node_type == "question-classifier":
        key = "instruction" if "instruction" in data else "instructions"
        yield from read.optional_text((key,))
        for i, _ in read.items(("classes",)):
            yield from read.optional_text(("classes", i, "name"))
    elif node_type == "parameter-extractor":
        yield from read.optional_text(("instruction",))
        for i, _ in read.items(("parameters",)):
            yield from read.optional_text(("parameters", i, "description"))
    elif node_type == "agent":
        for name in ("instruction", "query"):
            value = read.value(("agent_parameters", name, "value"))
            # Only a written text is a prompt; a variable selector (a list) is not.
            if isinstance(value, str):
                yield _Found(("agent_parameters", name, "value"), value)


def _llm_fields(read: _Reader) -> Iterator[_Found]:
    template = read.value(("prompt_template",))
    if isinstance(template, list):
        for i, message in enumerate(template):
            read.mapping(("prompt_template", i))
            yield read.message(("prompt_template", i), message)
    elif isinstance(template, dict):
        yield read.message(("prompt_template",), template)
    else:
        raise read.error(("prompt_template",), "expected a list or a mapping", template)
    memory = read.value(("memory",))
    if isinstance(memory, dict):
        yield from read.optional_text(("memory", "query_prompt_template"))


def _app_fields(config: dict[str, Any], source: str) -> Iterator[_Found]:
    read = _Reader({"model_config": config}, source, ())
    yield from read.optional_text(("model_config", "pre_prompt"))
    for i, message in read.items(("model_config", "chat_prompt_config", "prompt")):
        read.mapping(("model_config", "chat_prompt_config", "prompt", i))
        yield read.message(("model_config", "chat_prompt_config", "prompt", i), message)
    completion = read.value(("model_config", "completion_prompt_config", "prompt"))
    if isinstance(completion, dict):
        yield read.message(("model_config", "completion_prompt_config", "prompt"), completion)
    elif completion is not None:
        raise read.error(
            ("model_config", "completion_prompt_config", "prompt"), "expected a mapping", completion
        )


class _Reader:
    """Typed access to a node's data, with errors that say where."""

    def __init__(self, root: dict[str, Any], source: str, base: Path) -> None:
        self.root = root
        self.source = source
        self.base = base

    def value(self, path: Path) -> Any:
        node: Any = self.root
        for part in path:
            if isinstance(part, int):
                if not isinstance(node, list) or part >= len(node):
                    return None
                node = node[part]
            else:
                if not isinstance(node, dict):
                    return None
                node = node.get(part)
        return node

    def mapping(self, path: Path) -> dict[str, Any]:
        value = self.value(path)
        if not isinstance(value, dict):
            raise self.error(path, "expected a mapping", value)
        return value

    def items(self, path: Path) -> Iterator[tuple[int, Any]]:
        value = self.value(path)
        if value is None:
            return
        if not isinstance(value, list):
            raise self.error(path, "expected a list", value)
        yield from enumerate(value)

    def optional_text(self, path: Path) -> Iterator[_Found]:
        value = self.value(path)
        if value is None:
            return
        if not isinstance(value, str):
            raise self.error(path, "expected a string", value)
        yield _Found(path, value)

    def message(self, path: Path, message: dict[str, Any]) -> _Found:
        edition: Edition = "jinja2" if message.get("edition_type") == "jinja2" else "basic"
        key = "jinja2_text" if edition == "jinja2" else "text"
        text = message.get(key, "")
        if not isinstance(text, str):
            raise self.error((*path, key), "expected a string", text)
        role = message.get("role")
        return _Found((*path, key), text, role if isinstance(role, str) else None, edition)

    def error(self, path: Path, problem: str, found: Any) -> DSLFormatError:
        return DSLFormatError(
            f"{self.source}: {dotted(self.base + path)}: {problem}, found {describe_kind(found)}"
        )
