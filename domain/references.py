"""Variable references in Dify prompt text.

Dify writes references as ``{{#<selector>#}}`` where the selector is a node id
(``1711528915811``, ``llm``, ``start_node``) or one of the special roots
(``sys``, ``conversation``, ``env``) followed by dotted names, or a bare
``context``, ``histories`` or ``query``. Simple prompts of older apps use
``{{var}}``; jinja2 text uses ``{{ var }}`` expressions. Everything else that
has braces (JSON examples, code, ``{{#`` without its closing ``#}}``) is text.

An optimized prompt must keep the references exactly: the same multiset of
raw strings, which :func:`reference_multiset` gives for comparison.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Literal

ReferenceKind = Literal[
    "node", "sys", "conversation", "env", "context", "histories", "query", "legacy", "jinja2"
]

# Dify's own grammar (its VariablePool pattern): a node id or root of up to 50
# word characters, then one to ten dotted names; or one of the bare specials.
_DIFY = re.compile(
    r"\{\{#([a-zA-Z0-9_]{1,50}(?:\.[a-zA-Z_][a-zA-Z0-9_]{0,29}){1,10}|context|histories|query)#\}\}"
)
_LEGACY = re.compile(r"\{\{([a-zA-Z_][a-zA-Z0-9_]{0,29})\}\}")
_JINJA2 = re.compile(r"\{\{-?\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)[^{}]*?-?\}\}")
_BARE: dict[str, ReferenceKind] = {"context": "context", "histories": "histories", "query": "query"}
_ROOTS: dict[str, ReferenceKind] = {"sys": "sys", "conversation": "conversation", "env": "env"}


@dataclass(frozen=True, slots=True)
class VariableReference:
    raw: str
    kind: ReferenceKind
    selector: tuple[str, ...]
    start: int

    @property
    def node_id(self) -> str | None:
        return self.selector[0] if self.kind == "node" else None


def find_references(text: str, edition: str = "basic") -> list[VariableReference]:
    """Every reference in ``text``, in order of appearance."""
    found = [_dify_reference(m) for m in _DIFY.finditer(text)]
    taken = [(r.start, r.start + len(r.raw)) for r in found]
    if edition == "jinja2":
        extra = [
            VariableReference(m.group(0), "jinja2", tuple(m.group(1).split(".")), m.start())
            for m in _JINJA2.finditer(text)
        ]
    else:
        extra = [
            VariableReference(m.group(0), "legacy", (m.group(1),), m.start())
            for m in _LEGACY.finditer(text)
        ]
    found.extend(r for r in extra if not _overlaps(r, taken))
    return sorted(found, key=lambda r: r.start)


def reference_multiset(text: str, edition: str = "basic") -> Counter[str]:
    return Counter(r.raw for r in find_references(text, edition))


def _dify_reference(match: re.Match[str]) -> VariableReference:
    selector = tuple(match.group(1).split("."))
    special = _BARE if len(selector) == 1 else _ROOTS
    kind = special.get(selector[0], "node")
    return VariableReference(match.group(0), kind, selector, match.start())


def _overlaps(reference: VariableReference, spans: list[tuple[int, int]]) -> bool:
    end = reference.start + len(reference.raw)
    return any(start < end and reference.start < stop for start, stop in spans)
