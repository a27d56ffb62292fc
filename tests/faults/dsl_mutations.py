"""A seeded mutator that turns real Dify exports into hostile inputs.

Every case is reproducible from ``(seed, index)``: the same seed and corpus give
the same bytes. Mutations work on the raw bytes (truncate, flip, invalid UTF-8,
NUL, BOM, CRLF, UTF-16) and on the parsed tree, re-dumped (delete keys, wrong
types, unknown node types, duplicate node ids, non-mapping top level), and
splice hostile YAML into a dumped document (deep nesting, huge strings near and
over the size limit, unsafe tags, alias bombs, recursive aliases). The cases
themselves prove nothing; ``test_hostile_dsl.py`` feeds them to the CLI.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

#: Where a spliced value goes in a dumped document; unique enough never to occur.
PLACEHOLDER = "zzPLACEHOLDERzz"


@dataclass(frozen=True)
class Case:
    """One hostile input: ``name`` says the kind, the index and the corpus file it came from."""

    name: str
    kind: str
    data: bytes


@dataclass(frozen=True)
class Seed:
    """A corpus file: its bytes and its parsed document."""

    name: str
    data: bytes
    document: Any


Mutation = Callable[[random.Random, Seed, int], bytes]


# libyaml's loader and dumper when present: hundreds of cases are made per run.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def load_seeds(files: Sequence[Path]) -> list[Seed]:
    return [
        Seed(path.name, path.read_bytes(), yaml.load(path.read_bytes(), Loader=_Loader))
        for path in files
    ]


def dump(document: Any) -> bytes:
    text = yaml.dump(document, Dumper=_Dumper, allow_unicode=True, sort_keys=False)
    return text.encode("utf-8")


# --- positions in the parsed tree ---------------------------------------------------------


def positions(value: Any) -> list[tuple[Any, Any]]:
    """Every (container, key) in the tree, containers before their children."""
    found: list[tuple[Any, Any]] = []
    stack = [value]
    while stack:
        current = stack.pop()
        items = (
            list(current.items())
            if isinstance(current, dict)
            else list(enumerate(current))
            if isinstance(current, list)
            else []
        )
        for key, item in items:
            found.append((current, key))
            stack.append(item)
    return found


def _fresh(seed: Seed) -> Any:
    # A private copy: the seed's document is shared by every case.
    return copy.deepcopy(seed.document)


def _nodes(document: Any) -> list[Any]:
    try:
        nodes = document["workflow"]["graph"]["nodes"]
    except (KeyError, TypeError):
        return []
    return nodes if isinstance(nodes, list) else []


def _splice(rng: random.Random, seed: Seed, text: str) -> bytes:
    """The document with one random value replaced by raw YAML ``text`` (flow style)."""
    document = _fresh(seed)
    spots = [(c, k) for c, k in positions(document) if isinstance(c, dict)]
    container, key = rng.choice(spots)
    container[key] = PLACEHOLDER
    return dump(document).replace(PLACEHOLDER.encode(), text.encode("utf-8"), 1)


# --- byte-level mutations -----------------------------------------------------------------


def truncate(rng: random.Random, seed: Seed, max_bytes: int) -> bytes:
    return seed.data[: rng.randrange(len(seed.data))]


def flip_bytes(rng: random.Random, seed: Seed, max_bytes: int) -> bytes:
    data = bytearray(seed.data)
    for _ in range(rng.randint(1, 12)):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    return bytes(data)


def invalid_utf8(rng: random.Random, seed: Seed, max_bytes: int) -> bytes:
    at = rng.randrange(len(seed.data) + 1)
    junk = rng.choice([b"\xff", b"\xc3", b"\xe4\xb8", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"])
    return seed.data[:at] + junk + seed.data[at:]


def control_bytes(rng: random.Random, seed: Seed, max_bytes: int) -> bytes:
    at = rng.randrange(len(seed.data) + 1)
    junk = rng.choice([b"\x00", b"\x00" * 64, b"\x07", b"\x1b[31m", b"\x7f", b"\xc2\x85"])
    return seed.data[:at] + junk + seed.data[at:]


def encoding(rng: random.Random, seed: Seed, max_bytes: int) -> bytes:
    text = seed.data.decode("utf-8")
    return rng.choice(
        [
            lambda: b"\xef\xbb\xbf" + seed.data,
            lambda: b"\xef\xbb\xbf\xef\xbb\xbf" + seed.data,
            lambda: seed.data.replace(b"\n", b"\r\n"),
            lambda: seed.data.replace(b"\n", b"\r"),
            lambda: text.encode("utf-16"),
            lambda: text.encode("utf-16-le"),
            lambda: text.encode("utf-32"),
            lambda: text.encode("latin-1", errors="replace"),
            lambda: text.encode("gb18030"),
        ]
    )()


EMPTY_PIECES = [b"", b"\n", b"  ", b"\t", b"\r\n", b"# a comment\n", b"---\n", b"...\n",
                b"~", b"null", b"\x00", b"\xef\xbb\xbf", b"%YAML 1.1\n"]  # fmt: skip


def empty_ish(rng: random.Random, seed: Seed, max_bytes: int) -> bytes:
    """Nothing, or nothing but whitespace, comments, markers, a null or a BOM."""
    return b"".join(rng.choice(EMPTY_PIECES) for _ in range(rng.randint(0, 8)))


# --- tree mutations, re-dumped ------------------------------------------------------------


def delete_keys(rng: random.Random, seed: Seed, max_bytes: int) -> bytes:
    document = _fresh(seed)
    for _ in range(rng.randint(1, 3)):
        spots = [(c, k) for c, k in positions(document) if isinstance(c, dict)]
        if not spots:
            break
        container, key = rng.choice(spots)
        del container[key]
    return dump(document)


ESSENTIAL_KEYS = (
    "app", "mode", "name", "workflow", "graph", "nodes", "id", "data", "type",
    "model_config", "prompt_template", "text", "role", "pre_prompt", "instruction",
)  # fmt: skip


def delete_essential(rng: random.Random, seed: Seed, max_bytes: int) -> bytes:
    """A key the validator or the extractor relies on, rather than any key."""
    document = _fresh(seed)
    wanted = set(ESSENTIAL_KEYS)
    spots = [(c, k) for c, k in positions(document) if isinstance(c, dict) and k in wanted] or [
        (c, k) for c, k in positions(document) if isinstance(c, dict)
    ]
    container, key = rng.choice(spots)
    del container[key]
    return dump(document)


WRONG_VALUES: list[Any] = [
    None, 0, -1, 2**70, 3.5, float("nan"), float("inf"), True, False, "", "text", "{{#sys.query#}}",
    [], ["a"], [None], [[]], {}, {"k": "v"}, {"text": None}, {1: 2}, {None: "x"},
]  # fmt: skip


def wrong_types(rng: random.Random, seed: Seed, max_bytes: int) -> bytes:
    document = _fresh(seed)
    for _ in range(rng.randint(1, 3)):
        container, key = rng.choice(positions(document))
        old = container[key]
        choices = [v for v in WRONG_VALUES if type(v) is not type(old)]
        container[key] = rng.choice(choices)
    return dump(document)


def node_types(rng: random.Random, seed: Seed, max_bytes: int) -> bytes:
    """Unknown node types, types of the wrong kind, and text where a node's data was."""
    document = _fresh(seed)
    nodes = _nodes(document)
    if not nodes:
        return wrong_types(rng, seed, max_bytes)
    node = rng.choice(nodes)
    value = rng.choice(["no-such-type", "", None, 7, ["llm"], {"llm": 1}, "LLM", "custom-note"])
    if isinstance(node, dict) and isinstance(node.get("data"), dict) and rng.random() < 0.7:
        node["data"]["type"] = value
    elif isinstance(node, dict):
        node["type"] = value
    return dump(document)


def duplicate_ids(rng: random.Random, seed: Seed, max_bytes: int) -> bytes:
    document = _fresh(seed)
    nodes = [n for n in _nodes(document) if isinstance(n, dict)]
    if len(nodes) < 2:
        return wrong_types(rng, seed, max_bytes)
    first, second = rng.sample(nodes, 2)
    if rng.random() < 0.6:
        second["id"] = first.get("id")
    else:
        first["id"] = rng.choice([None, True, 1.5, ["x"], {"x": 1}, "", " ", "a/b", "../.."])
    if rng.random() < 0.3:
        nodes.append(first)  # the very same node twice
    return dump(document)


def top_level(rng: random.Random, seed: Seed, max_bytes: int) -> bytes:
    document = _fresh(seed)
    return rng.choice(
        [
            lambda: dump([document]),
            lambda: dump("a string"),
            lambda: dump(42),
            lambda: dump({"data": dump(document).decode("utf-8")}),  # the export API's wrapper
            lambda: dump({"data": dump([document]).decode("utf-8")}),
            lambda: dump({"data": "{" * 5000}),
            lambda: dump({"data": 7}),
            lambda: dump({"app": document}),
            lambda: dump({"app": document.get("app"), "version": [1, 2]}),
        ]
    )()


# --- spliced hostile YAML -----------------------------------------------------------------


def deep_nesting(rng: random.Random, seed: Seed, max_bytes: int) -> bytes:
    depth = rng.choice([50, 99, 100, 101, 1000, 10_000, 50_000])
    opening, closing = rng.choice([("[", "]"), ("{a: ", "}"), ("[{a: ", "}]")])
    return _splice(rng, seed, opening * depth + "x" + closing * depth)


def huge_string(rng: random.Random, seed: Seed, max_bytes: int) -> bytes:
    """A string that takes the file to just under, exactly at, or just over the limit."""
    target = max_bytes + rng.choice([-4000, -100, -1, 0, 1, 100, 4000, max_bytes])
    template = _splice(rng, seed, "'" + PLACEHOLDER + "'")
    room = target - (len(template) - len(PLACEHOLDER))
    if room <= 0:
        return template.replace(PLACEHOLDER.encode(), b"x", 1)
    filler = rng.choice(["x", "语", "{{#sys.query#}} ", "a\u2028", "\U0001f600"])
    unit = len(filler.encode("utf-8"))
    text = filler * (room // unit) + "y" * (room % unit)
    return template.replace(PLACEHOLDER.encode(), text.encode("utf-8"), 1)


TAGS = [
    "!!python/object/apply:os.system ['true']",
    "!!python/object:collections.OrderedDict {}",
    "!!python/name:os.system",
    "!!python/module:os",
    "!!python/tuple [1, 2]",
    "!!binary aGVsbG8=",
    "!!set {a, b}",
    "!!omap [{a: 1}, {b: 2}]",
    "!!pairs [{a: 1}, {a: 2}]",
    "!!timestamp 2001-12-14t21:59:43.10-05:00",
    "!!float .nan",
    "!!int 0x1F",
    "!custom {a: 1}",
    "!<tag:evil.example,2024:x> y",
    "!!str",
    "!!map {? [a, b] : c}",
    "{? [a, b] : c}",
    "{? {a: 1} : c}",
    "{1: a, null: b, true: c, 1.5: d}",
    "{a: 1, a: 2}",
    "<<: {}",
    "{<<: [1, 2]}",
    "{<<: *undefined}",
    "*undefined",
    "&a",
    "@reserved",
    "`backtick",
    "%YAML 1.1",
]


def tags(rng: random.Random, seed: Seed, max_bytes: int) -> bytes:
    return _splice(rng, seed, rng.choice(TAGS))


def alias_bomb(rng: random.Random, seed: Seed, max_bytes: int) -> bytes:
    """Billion laughs, a quadratic blow-up (one long string aliased many times) or a cycle."""
    kind = rng.choice(["laughs", "laughs", "quadratic", "recursive", "merge"])
    if kind == "laughs":
        fan, levels = rng.choice([(9, 9), (10, 7), (2, 30), (100, 4), (3, 14)])
        # [&l0 [lol, ...], &l1 [*l0, *l0, ...], &l2 [*l1, ...], ...]: fan ** levels leaves.
        rows = ["&l0 [" + ", ".join(["lol"] * fan) + "]"]
        rows += [f"&l{n} [" + ", ".join([f"*l{n - 1}"] * fan) + "]" for n in range(1, levels)]
        return _splice(rng, seed, "[" + ", ".join(rows) + "]")
    if kind == "quadratic":
        size = rng.choice([1000, max_bytes // 4, max_bytes // 2])
        count = max(1, (max_bytes - size) // 6 - 200)
        text = f"[&s '{'q' * size}', " + ", ".join(["*s"] * count) + "]"
        return _splice(rng, seed, text)
    if kind == "recursive":
        return _splice(
            rng, seed, rng.choice(["&r [*r]", "&r {a: *r}", "&r [[[*r]]]", "&r [1, {b: [*r]}]"])
        )
    return _splice(rng, seed, "{<<: [&m {a: 1}, *m, *m], b: &n [*m, *m]}")


MUTATIONS: dict[str, Mutation] = {
    "truncate": truncate,
    "flip-bytes": flip_bytes,
    "invalid-utf8": invalid_utf8,
    "control-bytes": control_bytes,
    "encoding": encoding,
    "empty": empty_ish,
    "delete-keys": delete_keys,
    "delete-essential": delete_essential,
    "wrong-types": wrong_types,
    "node-types": node_types,
    "duplicate-ids": duplicate_ids,
    "top-level": top_level,
    "deep-nesting": deep_nesting,
    "huge-string": huge_string,
    "tags": tags,
    "alias-bomb": alias_bomb,
}


def generate(seed: int, seeds: Sequence[Seed], count: int, max_bytes: int) -> list[Case]:
    """``count`` cases, the mutation kinds taken in turn, each from a random corpus file."""
    rng = random.Random(seed)
    kinds = list(MUTATIONS)
    cases = []
    for index in range(count):
        kind = kinds[index % len(kinds)]
        source = rng.choice(seeds)
        # One generator per case: a case's bytes do not depend on the cases before it.
        case_rng = random.Random(f"{seed}/{index}")
        data = MUTATIONS[kind](case_rng, source, max_bytes)
        cases.append(Case(f"{index:03d}-{kind}-{source.name}", kind, data))
    return cases
