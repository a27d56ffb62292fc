"""The reference parser finds exactly Dify's variable references: no more, no fewer.

What this proves:

* every kind is recognised with its selector and position: numeric and named
  node ids, nested selectors, ``sys`` / ``conversation`` / ``env`` roots, the
  bare ``context`` / ``histories`` / ``query``, legacy ``{{var}}`` (basic
  edition only) and jinja2 expressions (jinja2 edition only);
* literal braces (JSON, code, half-written references, comments) are text;
* properties (hypothesis): in text assembled from references, literal-brace
  snippets, CJK and ASCII text, code fences and newlines, ``find_references``
  returns exactly the inserted references, in order, at their offsets; and
  ``reference_multiset`` does not change when only the text around the
  references changes.

How generated pieces are kept from combining into new tokens
-------------------------------------------------------------
Adjacent pieces could form a token neither piece holds (``"{" + "{x}}"`` is
``{{x}}``). Every reference pattern needs ``{{`` and ``}}`` written
contiguously, so in the main property the pieces are joined by one space:
a brace of one piece can never meet a brace of its neighbour. A space alone is
not enough for jinja2, whose ``{{ name ... }}`` may contain spaces, so no
literal snippet holds an unclosed ``{{`` that a following piece could complete:
each ``{{`` in a snippet is either followed by ``#`` (which can start no jinja2
name: ``{{#unterminated``, ``{{#start-node.text#}}``) or closed at once with no
name inside (``{{ }}``). Jinja2-looking snippets such as ``{{ var }}`` are
fillers only for basic text, where a reference is ``{{name}}`` with no spaces.
A second property joins pieces with nothing at all, and then draws the filler
only from brace-free text.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoopt.domain.references import (
    ReferenceKind,
    VariableReference,
    find_references,
    reference_multiset,
)

# --- unit cases --------------------------------------------------------------------------

KINDS = [
    ("{{#1711528915811.text#}}", "node", ("1711528915811", "text")),
    ("{{#llm.text#}}", "node", ("llm", "text")),
    ("{{#node.a.b#}}", "node", ("node", "a", "b")),
    ("{{#start_1.files#}}", "node", ("start_1", "files")),
    ("{{#sys.query#}}", "sys", ("sys", "query")),
    ("{{#sys.files#}}", "sys", ("sys", "files")),
    ("{{#conversation.x#}}", "conversation", ("conversation", "x")),
    ("{{#env.KEY#}}", "env", ("env", "KEY")),
    ("{{#context#}}", "context", ("context",)),
    ("{{#histories#}}", "histories", ("histories",)),
    ("{{#query#}}", "query", ("query",)),
]


@pytest.mark.parametrize(("raw", "kind", "selector"), KINDS, ids=[k[0] for k in KINDS])
@pytest.mark.parametrize("edition", ["basic", "jinja2"])
def test_each_dify_kind(raw: str, kind: str, selector: tuple[str, ...], edition: str) -> None:
    text = f"前文 {raw} 後文"
    assert find_references(text, edition) == [VariableReference(raw, kind, selector, 3)]  # type: ignore[arg-type]


def test_node_id_is_given_only_for_node_references() -> None:
    refs = find_references("{{#1711528915811.text#}} {{#sys.query#}} {{#context#}} {{v}}")
    assert [r.node_id for r in refs] == ["1711528915811", None, None, None]


@pytest.mark.parametrize(
    ("text", "selector"),
    [("{{var}}", ("var",)), ("{{user_name}}", ("user_name",)), ("{{_x1}}", ("_x1",))],
)
def test_legacy_references_in_basic_text(text: str, selector: tuple[str, ...]) -> None:
    assert find_references(f"Hi {text}!") == [VariableReference(text, "legacy", selector, 3)]


@pytest.mark.parametrize(
    ("text", "selector"),
    [
        ("{{ var }}", ("var",)),
        ("{{var}}", ("var",)),
        ("{{ a.b }}", ("a", "b")),
        ("{{ x | upper }}", ("x",)),
        ("{{- name -}}", ("name",)),
        ("{{ items[0] }}", ("items",)),
        ("{{ user.name | default('匿名') }}", ("user", "name")),
    ],
    ids=["spaced", "tight", "dotted", "filter", "whitespace-control", "subscript", "cjk-arg"],
)
def test_jinja2_expressions_in_jinja2_text(text: str, selector: tuple[str, ...]) -> None:
    assert find_references(f"说：{text}。", "jinja2") == [
        VariableReference(text, "jinja2", selector, 2)
    ]


@pytest.mark.parametrize("text", ["{{ var }}", "{{ a.b }}", "{{ x | upper }}"])
def test_jinja2_expressions_are_not_references_in_basic_text(text: str) -> None:
    assert find_references(text, "basic") == []


def test_jinja2_statements_and_comments_are_not_references() -> None:
    text = "{% if x %}yes{% endif %} {# note #}"
    assert find_references(text, "jinja2") == []


LITERALS = [
    '{"a": {"b": 1}}',
    "{{#unterminated",
    "{{#sys.query",
    "{{ }}",
    "{{}}",
    "{#comment#}",
    "if (x) { y(); }",
    "{{#a#}}",
    "{{#sys#}}",
    "{{# sys.query #}}",
    "{{#.x#}}",
    "{{#a.1b#}}",
    "{{#" + "n" * 51 + ".x#}}",
    "{{#a.b.c.d.e.f.g.h.i.j.k.l#}}",
    "{{#start-node.text#}}",
    "{{1abc}}",
    "{{ 'just a string' }}",
    "{ {x} }",
    "{x}",
    '```json\n{"k": [1, 2], "m": {"n": null}}\n```',
]


@pytest.mark.parametrize("text", LITERALS)
def test_literal_braces_are_not_references_in_basic_text(text: str) -> None:
    assert find_references(text, "basic") == []


@pytest.mark.parametrize(
    "text",
    [t for t in LITERALS if t not in ("{{#a.1b#}}",)],
)
def test_literal_braces_are_not_references_in_jinja2_text(text: str) -> None:
    assert find_references(text, "jinja2") == []


def test_positions_and_order_follow_the_text() -> None:
    text = "A {{#sys.query#}} 中文 {{var}}\n{{#context#}}{{#1711528915811.text#}} {{var}}"
    refs = find_references(text)
    assert [(r.raw, r.kind, r.start) for r in refs] == [
        ("{{#sys.query#}}", "sys", 2),
        ("{{var}}", "legacy", 21),
        ("{{#context#}}", "context", 29),
        ("{{#1711528915811.text#}}", "node", 42),
        ("{{var}}", "legacy", 67),
    ]
    for ref in refs:
        assert text[ref.start : ref.start + len(ref.raw)] == ref.raw


def test_offsets_count_characters_not_bytes() -> None:
    assert [r.start for r in find_references("中文提示词{{#sys.query#}}")] == [5]


def test_a_reference_inside_extra_braces_is_still_found() -> None:
    assert [(r.raw, r.start) for r in find_references("{{{var}}}")] == [("{{var}}", 1)]
    assert [(r.raw, r.start) for r in find_references("{{{#sys.query#}}}")] == [
        ("{{#sys.query#}}", 1)
    ]


def test_the_multiset_counts_repeats() -> None:
    text = "{{#sys.query#}} and {{#sys.query#}} and {{x}}"
    assert reference_multiset(text) == Counter({"{{#sys.query#}}": 2, "{{x}}": 1})
    assert reference_multiset("no references {here}") == Counter()


# --- property tests ----------------------------------------------------------------------


@dataclass(frozen=True)
class Ref:
    raw: str
    kind: ReferenceKind
    selector: tuple[str, ...]


DIFY_REFS = [Ref(raw, kind, selector) for raw, kind, selector in KINDS]  # type: ignore[arg-type]
LEGACY_REFS = [Ref("{{var}}", "legacy", ("var",)), Ref("{{user_name}}", "legacy", ("user_name",))]
JINJA2_REFS = [
    Ref("{{ var }}", "jinja2", ("var",)),
    Ref("{{ a.b }}", "jinja2", ("a", "b")),
    Ref("{{ x | upper }}", "jinja2", ("x",)),
    Ref("{{var}}", "jinja2", ("var",)),
    Ref("{{- name -}}", "jinja2", ("name",)),
]
REFS_BY_EDITION = {"basic": DIFY_REFS + LEGACY_REFS, "jinja2": DIFY_REFS + JINJA2_REFS}

BRACE_FREE = [
    "中文提示词",
    "日本語のテキスト、",
    "请用简洁的语言回答。",
    "hello",
    "world",
    "Answer in JSON",
    "\n",
    "\n\n",
    "。",
    "#",
    ".",
    "-",
    "",
]
WITH_BRACES = [
    '{"a": {"b": 1}}',
    "{{#unterminated",
    "{{ }}",
    "{#comment#}",
    "if (x) { y(); }",
    "{",
    "}",
    "{x}",
    '```json\n{"k": [1, 2], "m": {"n": null}}\n```',
    "```\n{}\n```",
    "{{#start-node.text#}}",
    "{{#a.b.c.d.e.f.g.h.i.j.k.l#}}",
]
# Jinja2 expressions are text in a basic prompt (and references in a jinja2 one).
LITERAL_IN_BASIC = ["{{ var }}", "{{ a.b }}", "{{ x | upper }}"]
FILLERS_BY_EDITION = {
    "basic": BRACE_FREE + WITH_BRACES + LITERAL_IN_BASIC,
    "jinja2": BRACE_FREE + WITH_BRACES,
}


@st.composite
def assembled(
    draw: st.DrawFn, edition: str, fillers: list[str], separator: str
) -> tuple[str, list[VariableReference]]:
    """Text built from pieces, and the references inserted in it with their offsets."""
    pieces = draw(
        st.lists(
            st.one_of(
                st.sampled_from(REFS_BY_EDITION[edition]),
                st.sampled_from(fillers),
            ),
            max_size=30,
        )
    )
    text = ""
    expected: list[VariableReference] = []
    for number, piece in enumerate(pieces):
        if number:
            text += separator
        if isinstance(piece, Ref):
            expected.append(VariableReference(piece.raw, piece.kind, piece.selector, len(text)))
            text += piece.raw
        else:
            text += piece
    return text, expected


@settings(max_examples=200, deadline=None)
@given(
    edition=st.sampled_from(["basic", "jinja2"]),
    data=st.data(),
)
def test_space_separated_pieces_give_back_exactly_the_inserted_references(
    edition: str, data: st.DataObject
) -> None:
    text, expected = data.draw(assembled(edition, FILLERS_BY_EDITION[edition], " "))
    assert find_references(text, edition) == expected


@settings(max_examples=200, deadline=None)
@given(
    edition=st.sampled_from(["basic", "jinja2"]),
    data=st.data(),
)
def test_touching_pieces_give_back_exactly_the_inserted_references(
    edition: str, data: st.DataObject
) -> None:
    text, expected = data.draw(assembled(edition, BRACE_FREE, ""))
    assert find_references(text, edition) == expected


@settings(max_examples=200, deadline=None)
@given(
    edition=st.sampled_from(["basic", "jinja2"]),
    data=st.data(),
)
def test_the_multiset_ignores_the_text_around_the_references(
    edition: str, data: st.DataObject
) -> None:
    refs = data.draw(st.lists(st.sampled_from(REFS_BY_EDITION[edition]), max_size=12))
    fillers = st.lists(st.sampled_from(FILLERS_BY_EDITION[edition]), max_size=3).map(" ".join)
    before = data.draw(st.lists(fillers, min_size=len(refs) + 1, max_size=len(refs) + 1))
    after = data.draw(st.lists(fillers, min_size=len(refs) + 1, max_size=len(refs) + 1))

    def weave(around: list[str]) -> str:
        parts = [around[0]]
        for ref, filler in zip(refs, around[1:], strict=True):
            parts += [ref.raw, filler]
        return " ".join(parts)

    expected = Counter(ref.raw for ref in refs)
    assert reference_multiset(weave(before), edition) == expected
    assert reference_multiset(weave(after), edition) == expected


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(alphabet=st.sampled_from(list("{}#. _-|axq1中\n")), max_size=60),
    edition=st.sampled_from(["basic", "jinja2"]),
)
def test_any_text_gives_ordered_non_overlapping_references_that_are_in_the_text(
    text: str, edition: str
) -> None:
    refs = find_references(text, edition)
    end = 0
    for ref in refs:
        assert ref.start >= end
        assert text[ref.start : ref.start + len(ref.raw)] == ref.raw
        assert ref.raw.startswith("{{") and ref.raw.endswith("}}")
        end = ref.start + len(ref.raw)
    assert reference_multiset(text, edition) == Counter(r.raw for r in refs)
