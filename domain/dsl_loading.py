"""Reading a Dify app DSL safely, checking that it is one, and writing it back.

Input is hostile until proven otherwise: a size limit comes first, then a
strict UTF-8 decode (a BOM is fine), then a scan of the YAML event stream that
bounds nesting depth and alias expansion (a "billion laughs" document is
refused before anything is built), and only then ``safe_load``. Dify's
export-API wrapper ``{"data": "<yaml>"}`` is unwrapped. Every refusal is a
``DSLFormatError`` that names the source and the place in the document.

Output follows Dify's own export: ``yaml.dump(document, allow_unicode=True)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from autoopt.domain.errors import DSLFormatError

DEFAULT_MAX_BYTES = 10_000_000
MAX_DEPTH = 100
MAX_EXPANDED_NODES = 2_000_000
APP_MODES = ("workflow", "advanced-chat", "chat", "agent-chat", "completion")
GRAPH_MODES = ("workflow", "advanced-chat")

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Dumper(yaml.SafeDumper):
    """The pure-Python dumper: it folds long strings exactly as Dify's own export
    does (the C one does not), so an untouched file is written back unchanged."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # Unicode line separators written raw would come back as line breaks;
    # double quotes make the emitter escape them.
    style = '"' if any(ch in value for ch in "\x85\u2028\u2029") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


@dataclass(frozen=True)
class DifyApp:
    """A validated Dify app document and what identifies it."""

    source: str
    document: dict[str, Any]
    mode: str
    name: str
    version: str

    @property
    def workflow_id(self) -> str:
        """The app's name: stable across re-exports, so prompt ids keep their history."""
        return " ".join(self.name.split()) or "app"


def load_dsl(data: bytes | str, source: str, max_bytes: int = DEFAULT_MAX_BYTES) -> DifyApp:
    text = _decode(data, source, max_bytes)
    document = _parse(text, source, max_bytes)
    if (
        isinstance(document, dict)
        and "app" not in document
        and isinstance(document.get("data"), str)
    ):
        # Dify's export API answers {"data": "<the YAML>"}.
        document = _parse(document["data"], source, max_bytes)
    return validate_app(document, source)


def validate_app(document: Any, source: str) -> DifyApp:
    where = _Where(source)
    if not isinstance(document, dict):
        raise where.error("", f"expected a mapping at the top, found {describe_kind(document)}")
    app = document.get("app")
    if not isinstance(app, dict):
        raise where.error(
            "app", "missing" if app is None else f"expected a mapping, found {describe_kind(app)}"
        )
    mode = app.get("mode")
    if mode not in APP_MODES:
        raise where.error("app.mode", f"expected one of {', '.join(APP_MODES)}, found {mode!r}")
    name = app.get("name", "")
    if not isinstance(name, str):
        raise where.error("app.name", f"expected a string, found {describe_kind(name)}")
    version = document.get("version", "0.1.0")
    if version is None:
        version = "0.1.0"
    if not isinstance(version, str | int | float):
        raise where.error("version", f"expected a version string, found {describe_kind(version)}")
    if mode in GRAPH_MODES:
        _validate_graph(document, where)
    else:
        config = document.get("model_config")
        if not isinstance(config, dict):
            found = (
                "missing"
                if config is None
                else f"expected a mapping, found {describe_kind(config)}"
            )
            raise where.error("model_config", found)
    return DifyApp(source, document, str(mode), name, str(version))


def dump_dsl(document: dict[str, Any]) -> str:
    """The document as Dify exports it."""
    return yaml.dump(document, Dumper=_Dumper, allow_unicode=True)


def _validate_graph(document: dict[str, Any], where: _Where) -> None:
    workflow = document.get("workflow")
    if not isinstance(workflow, dict):
        raise where.error("workflow", "missing" if workflow is None else "expected a mapping")
    graph = workflow.get("graph")
    if not isinstance(graph, dict):
        raise where.error("workflow.graph", "missing" if graph is None else "expected a mapping")
    nodes = graph.get("nodes")
    if not isinstance(nodes, list):
        found = "missing" if nodes is None else f"expected a list, found {describe_kind(nodes)}"
        raise where.error("workflow.graph.nodes", found)
    for i, node in enumerate(nodes):
        path = f"workflow.graph.nodes[{i}]"
        if not isinstance(node, dict):
            raise where.error(path, f"expected a mapping, found {describe_kind(node)}")
        if node.get("type") == "custom-note":
            continue
        node_id = node.get("id")
        if isinstance(node_id, bool) or not isinstance(node_id, str | int):
            raise where.error(f"{path}.id", "expected a node id")
        if not isinstance(node.get("data"), dict):
            raise where.error(f"{path}.data", "expected a mapping with the node's settings")


class _Where:
    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, path: str, problem: str) -> DSLFormatError:
        return DSLFormatError(
            f"{self.source}: {path}: {problem}" if path else f"{self.source}: {problem}"
        )


def _decode(data: bytes | str, source: str, max_bytes: int) -> str:
    if isinstance(data, str):
        try:
            size = len(data.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise DSLFormatError(
                f"{source}: not valid Unicode text (a lone surrogate at offset {exc.start})"
            ) from exc
    else:
        size = len(data)
    if size > max_bytes:
        raise DSLFormatError(f"{source}: {size} bytes is more than the limit of {max_bytes}")
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DSLFormatError(f"{source}: UTF-16 text; export the app as UTF-8")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DSLFormatError(
            f"{source}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from exc


def _parse(text: str, source: str, max_bytes: int) -> Any:
    if not text.strip():
        raise DSLFormatError(f"{source}: the file is empty")
    try:
        aliases = _check_shape(text, source, max_bytes)
        # A safe loader (libyaml's when present): plain data types only.
        document = yaml.load(text, Loader=_Loader)
    except yaml.reader.ReaderError as exc:
        raise DSLFormatError(
            f"{source}: not valid YAML at character {exc.position}: {exc.reason}"
        ) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise DSLFormatError(f"{source}: not valid YAML{where}: {problem}") from exc
    # An alias shares one object between two places; a patch to one must not
    # reach the other, so every place gets its own copy.
    return _unshared(document) if aliases else document


def _unshared(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _unshared(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_unshared(item) for item in value]
    return value


def _check_shape(text: str, source: str, max_bytes: int) -> int:
    """Bound nesting and alias expansion from the event stream, before building anything.

    Aliases are bounded three ways: in nodes (a "billion laughs" of tiny lists),
    in characters of text (one long string aliased thousands of times is a
    small file whose written-back output would be gigabytes; the expanded text
    may not exceed the file size limit) and in shape (an alias inside the node
    it names builds a cycle, which no Dify export has and which copying or
    writing the document would follow forever). Returns the number of aliases.
    """
    depth = 0
    aliases = 0
    expanded = 0
    characters = 0
    # Each open collection: its anchor, and the node and character counts when it opened.
    open_anchors: list[tuple[str | None, int, int]] = []
    anchor_sizes: dict[str, tuple[int, int]] = {}
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent):
            aliases += 1
            if any(anchor == event.anchor for anchor, _, _ in open_anchors):
                raise DSLFormatError(
                    f"{source}: the alias *{event.anchor} is inside the node it names "
                    f"(a cycle){_line_of(event)}"
                )
            nodes, chars = anchor_sizes.get(event.anchor or "", (1, 0))
            expanded += nodes
            characters += chars
        elif isinstance(event, yaml.NodeEvent):
            expanded += 1
            anchor = getattr(event, "anchor", None)
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise DSLFormatError(f"{source}: nested more than {MAX_DEPTH} levels deep")
                open_anchors.append((anchor, expanded, characters))
            elif isinstance(event, yaml.ScalarEvent):
                characters += len(event.value)
                if anchor:
                    anchor_sizes[anchor] = (1, len(event.value))
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
            anchor, started, started_chars = open_anchors.pop()
            if anchor:
                anchor_sizes[anchor] = (expanded - started + 1, characters - started_chars)
        if expanded > MAX_EXPANDED_NODES:
            raise DSLFormatError(
                f"{source}: aliases expand to more than {MAX_EXPANDED_NODES:,} nodes"
            )
        if characters > max_bytes:
            raise DSLFormatError(
                f"{source}: aliases expand to more than the limit of {max_bytes:,} "
                "characters of text"
            )
    return aliases


def _line_of(event: yaml.Event) -> str:
    mark = event.start_mark
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""


def describe_kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
    }.get(type(value), f"a value of type {type(value).__name__}")
