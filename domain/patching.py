"""Applying prompt patches to a Dify document: exactly the targeted strings change.

A patch replaces one string in place, so a message stays a message in its list
with its ``id``, ``role`` and ``edition_type``, and nothing else in the
document moves. The input document is never modified; a new one is returned.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any, Literal

from jinja2 import StrictUndefined, TemplateError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from autoopt.domain.dsl import APP_NODE, Path, dotted, pointer
from autoopt.domain.dsl_loading import GRAPH_MODES, DifyApp
from autoopt.domain.errors import DSLFormatError
from autoopt.domain.models import PromptPatch

_INDEX = re.compile(r"0|[1-9][0-9]*")

MAX_RENDERED_CHARS = 1_000_000


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox, plus a bound on what ``*`` and ``**`` may build."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int) and abs(right) > 64:
            raise SecurityError("exponent too large")
        if operator == "*":
            for sequence, count in ((left, right), (right, left)):
                if (
                    isinstance(sequence, str | list | tuple)
                    and isinstance(count, int)
                    and len(sequence) * count > MAX_RENDERED_CHARS
                ):
                    raise SecurityError("result too large")
        return super().call_binop(context, operator, left, right)


# Templates come from patch authors; the prompt they change is only ever data.
_TEMPLATES = _Sandbox(autoescape=False, undefined=StrictUndefined, keep_trailing_newline=True)


@dataclass(frozen=True)
class PatchResult:
    patch: PromptPatch
    status: Literal["applied", "skipped"]
    document_path: str | None
    old_text: str | None
    new_text: str | None
    reason: str = ""


@dataclass(frozen=True)
class PatchOutcome:
    document: dict[str, Any]
    results: list[PatchResult]

    @property
    def applied(self) -> list[PatchResult]:
        return [r for r in self.results if r.status == "applied"]


def apply_patches(app: DifyApp, patches: list[PromptPatch]) -> PatchOutcome:
    document = copy.deepcopy(app.document)
    results = []
    for number, patch in enumerate(patches, start=1):
        label = f"{app.source}: patch {number}"
        try:
            located = _locate(app, document, patch)
        except DSLFormatError as exc:
            raise DSLFormatError(f"{label}: {exc}") from exc
        if isinstance(located, str):
            if patch.if_missing == "error":
                raise DSLFormatError(f"{label}: {located}")
            results.append(PatchResult(patch, "skipped", None, None, None, located))
            continue
        path, parent, key = located
        old = parent[key]
        if not isinstance(old, str):
            raise DSLFormatError(f"{label}: {dotted(path)} is not a text")
        new = _render(patch, old, label)
        parent[key] = new
        results.append(PatchResult(patch, "applied", pointer(path), old, new))
    return PatchOutcome(document, results)


def parse_pointer(text: str) -> Path:
    """``/prompt_template/0/text`` -> ("prompt_template", 0, "text")."""
    if not text.startswith("/"):
        raise DSLFormatError(f"{text!r} is not a path (it must start with '/')")
    parts: list[str | int] = []
    for raw in text[1:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        parts.append(int(part) if _INDEX.fullmatch(part) else part)
    return tuple(parts)


def _locate(
    app: DifyApp, document: dict[str, Any], patch: PromptPatch
) -> tuple[Path, Any, str | int] | str:
    """Where the patch points (the path, the container, the key), or why it points nowhere."""
    if patch.workflow_id != app.workflow_id:
        return f"the patch is for workflow {patch.workflow_id!r}, the app is {app.workflow_id!r}"
    relative = parse_pointer(patch.selector_value)
    if patch.selector_type == "by_path" or patch.node_id in (None, APP_NODE):
        path = relative
    else:
        if app.mode not in GRAPH_MODES:
            return f"a {app.mode} app has no nodes (looked for node {patch.node_id!r})"
        nodes = document["workflow"]["graph"]["nodes"]
        index = next((i for i, n in enumerate(nodes) if str(n.get("id")) == patch.node_id), None)
        if index is None:
            return f"no node {patch.node_id!r}"
        path = ("workflow", "graph", "nodes", index, "data", *relative)
    parent: Any = document
    for depth, part in enumerate(path):
        last = depth == len(path) - 1
        if isinstance(parent, list) and isinstance(part, int) and 0 <= part < len(parent):
            if last:
                return path, parent, part
            parent = parent[part]
        elif isinstance(parent, dict) and str(part) in parent:
            if last:
                return path, parent, str(part)
            parent = parent[str(part)]
        else:
            return f"nothing at {dotted(path[: depth + 1])}"
    return "an empty path selects the whole document, not a text"


def _render(patch: PromptPatch, old: str, label: str) -> str:
    if patch.strategy == "replace":
        return patch.content
    if patch.strategy == "prepend":
        return patch.content + old
    if patch.strategy == "append":
        return old + patch.content
    try:
        rendered = _TEMPLATES.from_string(patch.content).render(original=old)
    except TemplateError as exc:
        raise DSLFormatError(f"{label}: the template failed: {exc}") from exc
    except Exception as exc:  # the template's own arithmetic or calls: 1/0, "a" + 1, ...
        raise DSLFormatError(f"{label}: the template failed: {type(exc).__name__}: {exc}") from exc
    if len(rendered) > MAX_RENDERED_CHARS:
        raise DSLFormatError(
            f"{label}: the template made more than {MAX_RENDERED_CHARS} characters"
        )
    return rendered
