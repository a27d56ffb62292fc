"""Loading a Dify DSL refuses hostile or malformed input with a precise ``DSLFormatError``.

What this proves:

* every bad input (not YAML, wrong top-level kind, empty, binary, wrong encoding,
  alias bombs, absurd nesting, oversized input, each structural mistake the
  validator and the prompt extractor check) raises exactly ``DSLFormatError``,
  whose message starts with the source name (``app.yml: ``) and, where it
  applies, the document path (``app.yml: workflow.graph.nodes[3].data: ...``);
* each refusal is quick: nothing hangs on an alias bomb, a deep document or a
  50 MB input (a generous 5 s guard around every call, not a benchmark);
* the good cases: a UTF-8 BOM, the export API's ``{"data": "<yaml>"}`` wrapper,
  a missing ``version`` (meaning ``0.1.0``), and ``str`` input like ``bytes``.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from autoopt.domain.dsl import extract_prompts
from autoopt.domain.dsl_loading import (
    DEFAULT_MAX_BYTES,
    MAX_DEPTH,
    MAX_EXPANDED_NODES,
    DifyApp,
    dump_dsl,
    load_dsl,
)
from autoopt.domain.errors import DSLFormatError

SOURCE = "app.yml"
HANG_GUARD_SECONDS = 5.0
MODES = "workflow, advanced-chat, chat, agent-chat, completion"

CHAT_APP = """\
app:
  mode: chat
  name: 客服助手
model_config:
  pre_prompt: 你是一个客服助手。请回答 {{query}}。
"""

GRAPH_APP = """\
version: 0.1.5
kind: app
app:
  mode: workflow
  name: Demo
workflow:
  graph:
    edges: []
    nodes:
    - id: '1711528915811'
      type: custom
      data:
        type: start
        title: 开始
    - id: llm
      type: custom
      data:
        type: llm
        title: LLM
        prompt_template:
        - role: system
          text: 日本語のテキスト、{{#1711528915811.text#}}
"""


def graph_with_node_3(node: str) -> str:
    """A workflow app whose fourth node (index 3) is ``node``, given as indented YAML.

    Nodes 0-2 are fine: a start node, a note (which has no id and no data and
    is skipped), and an answer node; so a reported index of 3 proves the path.
    """
    return f"""\
app:
  mode: workflow
  name: Demo
workflow:
  graph:
    nodes:
    - id: '1711528915811'
      type: custom
      data: {{type: start, title: Start}}
    - type: custom-note
    - id: answer
      type: custom
      data: {{type: answer, answer: '{{{{#llm.text#}}}}'}}
{node}
"""


def llm_node(prompt_template: str) -> str:
    return graph_with_node_3(
        "    - id: llm\n      type: custom\n      data:\n        type: llm\n"
        f"        prompt_template: {prompt_template}"
    )


def classifier_node(body: str) -> str:
    return graph_with_node_3(
        "    - id: classify\n      type: custom\n      data:\n"
        f"        type: question-classifier\n        instruction: 分类\n{body}"
    )


def chat_app(model_config: str) -> str:
    return f"app:\n  mode: chat\n  name: Demo\nmodel_config:\n{model_config}"


def billion_laughs(levels: int = 10, fan_out: int = 9) -> bytes:
    lines = ["a0: &a0 [" + ", ".join(['"lol"'] * fan_out) + "]"]
    for level in range(1, levels):
        refs = ", ".join([f"*a{level - 1}"] * fan_out)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return ("\n".join(lines) + "\n").encode()


def wide_alias_bomb() -> bytes:
    """One big anchored list, aliased many times: wide rather than deep."""
    big = "[" + ", ".join(["x"] * 10_000) + "]"
    aliases = ", ".join(["*big"] * 300)
    return f"big: &big {big}\nall: [{aliases}]\n".encode()


def long_string_bomb() -> bytes:
    """One 1 MB string aliased 1000 times: a small file whose written-back output is 1 GB."""
    aliases = ", ".join(["*s"] * 1000)
    return f"s: &s '{'q' * 1_000_000}'\nall: [{aliases}]\n".encode()


def random_binary() -> bytes:
    noise = bytearray(random.Random(20240229).randbytes(4096))
    noise[10:10] = b"\x00\x00\xff\xfe\x00"
    return b"\x7fELF\x00" + bytes(noise)


def block_nesting(levels: int) -> bytes:
    return "".join(f"{'  ' * i}k{i}:\n" for i in range(levels)).encode() + b"  " * levels + b"x\n"


@dataclass(frozen=True)
class Bad:
    """One refused input: the message must start with ``start`` and contain ``phrase``."""

    id: str
    data: bytes | str
    start: str
    phrase: str
    extract: bool = False
    max_bytes: int = DEFAULT_MAX_BYTES


def bad(
    id: str,
    data: bytes | str,
    start: str,
    phrase: str | None = None,
    *,
    extract: bool = False,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Bad:
    return Bad(id, data, start, phrase if phrase is not None else start, extract, max_bytes)


BAD_INPUTS = [
    # --- not YAML at all ---------------------------------------------------------------
    bad(
        "unbalanced-brackets",
        b"app: [mode: chat\nmodel_config: {pre_prompt: hi\n",
        "app.yml: not valid YAML at line 2, column ",
        "did not find expected ',' or ']'",
    ),
    bad(
        "unclosed-quote",
        b'app:\n  mode: "chat\n',
        "app.yml: not valid YAML at line ",
        "found unexpected end of stream",
    ),
    bad(
        "tab-indentation",
        b"app:\n\tmode: chat\n",
        "app.yml: not valid YAML at line 2, column 1: ",
        "cannot start any token",
    ),
    bad(
        "two-documents",
        CHAT_APP + "---\n" + CHAT_APP,
        "app.yml: not valid YAML at line ",
        "another document",
    ),
    bad(
        "python-object-tag",
        b"app: !!python/object/apply:os.system ['echo pwned']\n",
        "app.yml: not valid YAML at line 1, column 6: ",
        "could not determine a constructor",
    ),
    bad(
        "unhashable-key",
        b"? [a, b]\n: c\n",
        "app.yml: not valid YAML at line ",
        "unhashable key",
    ),
    # --- the wrong kind of document ----------------------------------------------------
    bad(
        "yaml-list-at-top",
        b"- app\n- mode: chat\n",
        "app.yml: expected a mapping at the top, found a list",
    ),
    bad(
        "scalar-at-top",
        b"just some words\n",
        "app.yml: expected a mapping at the top, found a string",
    ),
    bad("null-at-top", b"~\n", "app.yml: expected a mapping at the top, found nothing"),
    bad(
        "comment-only",
        b"# exported by hand\n",
        "app.yml: expected a mapping at the top, found nothing",
    ),
    bad("empty-file", b"", "app.yml: the file is empty"),
    bad("whitespace-only", b" \n\t\n  \r\n", "app.yml: the file is empty"),
    bad("bom-then-nothing", b"\xef\xbb\xbf\n", "app.yml: the file is empty"),
    # --- bytes that are not UTF-8 text -------------------------------------------------
    bad("binary-with-nul", random_binary(), "app.yml: not UTF-8 text (byte 0x", "at offset "),
    bad(
        "latin-1-accents",
        "app:\n  name: Café crème\n  mode: chat\n".encode("latin-1"),
        "app.yml: not UTF-8 text (byte 0xe9 at offset 16)",
    ),
    bad(
        "utf-8-cut-mid-character",
        "app:\n  name: 中文".encode()[:-1],
        "app.yml: not UTF-8 text (byte 0xe6 at offset 16)",
    ),
    bad(
        "utf-16-le-with-bom",
        CHAT_APP.encode("utf-16"),
        "app.yml: UTF-16 text; export the app as UTF-8",
    ),
    bad(
        "utf-16-be-with-bom",
        b"\xfe\xff" + CHAT_APP.encode("utf-16-be"),
        "app.yml: UTF-16 text; export the app as UTF-8",
    ),
    bad("nul-in-utf-8-text", b"app:\n  mode: \x00chat\n", "app.yml: not valid YAML"),
    # --- resource exhaustion: refused from the event stream, before anything is built --
    bad(
        "billion-laughs",
        billion_laughs(),
        f"app.yml: aliases expand to more than {MAX_EXPANDED_NODES:,} nodes",
    ),
    bad(
        "wide-alias-bomb",
        wide_alias_bomb(),
        f"app.yml: aliases expand to more than {MAX_EXPANDED_NODES:,} nodes",
    ),
    bad(
        "one-long-string-aliased-many-times",
        long_string_bomb(),
        "app.yml: aliases expand to more than the limit of "
        f"{DEFAULT_MAX_BYTES:,} characters of text",
    ),
    # An alias inside the node it names is a cycle: copying or writing the document
    # would follow it forever (it once escaped as a RecursionError).
    bad(
        "alias-cycle-in-a-list",
        chat_app("  pre_prompt: hi\n  loop: &loop [1, [*loop]]\n"),
        "app.yml: the alias *loop is inside the node it names (a cycle) at line 6, column ",
    ),
    bad(
        "alias-cycle-in-a-mapping",
        chat_app("  pre_prompt: hi\n  extra: &me {self: *me}\n"),
        "app.yml: the alias *me is inside the node it names (a cycle) at line 6, column ",
    ),
    # 5,000 unclosed '[': libyaml's own flow limit (1000) or ours may fire first; both
    # are refusals that talk about nesting.
    bad("5000-open-brackets", b"[" * 5000, "app.yml: ", "nest"),
    bad(
        "deep-balanced-flow",
        b"[" * (MAX_DEPTH + 50) + b"]" * (MAX_DEPTH + 50),
        f"app.yml: nested more than {MAX_DEPTH} levels deep",
    ),
    bad(
        "deep-block-mapping",
        block_nesting(MAX_DEPTH + 20),
        f"app.yml: nested more than {MAX_DEPTH} levels deep",
    ),
    # --- the byte limit ------------------------------------------------------------------
    bad(
        "over-a-small-byte-limit",
        CHAT_APP.encode(),
        f"app.yml: {len(CHAT_APP.encode())} bytes is more than the limit of 64",
        max_bytes=64,
    ),
    bad(
        "str-limit-counts-utf-8-bytes",
        "中" * 400,  # 400 characters, 1,200 bytes
        "app.yml: 1200 bytes is more than the limit of 1000",
        max_bytes=1000,
    ),
    # --- not a Dify app ------------------------------------------------------------------
    bad("missing-app", b"version: 0.1.5\nkind: app\n", "app.yml: app: missing"),
    bad("app-not-a-mapping", b"app: chat\n", "app.yml: app: expected a mapping, found a string"),
    bad(
        "app-a-list",
        b"app: [mode, chat]\n",
        "app.yml: app: expected a mapping, found a list",
    ),
    bad(
        "app-mode-missing",
        b"app:\n  name: Demo\nmodel_config: {}\n",
        f"app.yml: app.mode: expected one of {MODES}, found None",
    ),
    bad(
        "app-mode-unknown",
        b"app:\n  mode: pipeline\nmodel_config: {}\n",
        f"app.yml: app.mode: expected one of {MODES}, found 'pipeline'",
    ),
    bad(
        "app-name-a-list",
        b"app:\n  mode: chat\n  name: [a, b]\nmodel_config: {}\n",
        "app.yml: app.name: expected a string, found a list",
    ),
    bad(
        "version-a-mapping",
        b"version: {major: 0}\napp:\n  mode: chat\nmodel_config: {}\n",
        "app.yml: version: expected a version string, found a mapping",
    ),
    bad(
        "graph-mode-without-workflow",
        b"app:\n  mode: advanced-chat\n  name: Demo\nmodel_config: {}\n",
        "app.yml: workflow: missing",
    ),
    bad(
        "workflow-a-list",
        b"app:\n  mode: workflow\nworkflow: [graph]\n",
        "app.yml: workflow: expected a mapping",
    ),
    bad(
        "workflow-graph-missing",
        b"app:\n  mode: workflow\nworkflow:\n  features: {}\n",
        "app.yml: workflow.graph: missing",
    ),
    bad(
        "nodes-missing",
        b"app:\n  mode: workflow\nworkflow:\n  graph:\n    edges: []\n",
        "app.yml: workflow.graph.nodes: missing",
    ),
    bad(
        "nodes-not-a-list",
        b"app:\n  mode: workflow\nworkflow:\n  graph:\n    nodes: {llm: {}}\n",
        "app.yml: workflow.graph.nodes: expected a list, found a mapping",
    ),
    bad(
        "node-is-a-string",
        graph_with_node_3("    - just a node name"),
        "app.yml: workflow.graph.nodes[3]: expected a mapping, found a string",
    ),
    bad(
        "node-without-data",
        graph_with_node_3("    - id: llm\n      type: custom"),
        "app.yml: workflow.graph.nodes[3].data: expected a mapping with the node's settings",
    ),
    bad(
        "node-data-a-list",
        graph_with_node_3("    - id: llm\n      type: custom\n      data: [llm]"),
        "app.yml: workflow.graph.nodes[3].data: expected a mapping with the node's settings",
    ),
    bad(
        "node-without-id",
        graph_with_node_3("    - type: custom\n      data: {type: llm, prompt_template: []}"),
        "app.yml: workflow.graph.nodes[3].id: expected a node id",
    ),
    bad(
        "chat-without-model-config",
        b"app:\n  mode: chat\n  name: Demo\n",
        "app.yml: model_config: missing",
    ),
    bad(
        "completion-model-config-a-string",
        b"app:\n  mode: completion\nmodel_config: be nice\n",
        "app.yml: model_config: expected a mapping, found a string",
    ),
    # --- the export API wrapper with bad content ------------------------------------------
    bad(
        "wrapper-with-bad-yaml",
        json.dumps({"data": "app: [mode: chat\nmodel_config: {}\n"}),
        "app.yml: not valid YAML at line 2, column 13: ",
        "did not find expected ',' or ']'",
    ),
    bad(
        "wrapper-with-a-list",
        json.dumps({"data": "- app\n- model_config\n"}),
        "app.yml: expected a mapping at the top, found a list",
    ),
    bad(
        "wrapper-with-empty-yaml",
        json.dumps({"data": "  \n"}),
        "app.yml: the file is empty",
    ),
    # --- errors met while extracting the prompts ------------------------------------------
    bad(
        "prompt-template-a-string",
        llm_node("'You are helpful.'"),
        "app.yml: workflow.graph.nodes[3].data.prompt_template: "
        "expected a list or a mapping, found a string",
        extract=True,
    ),
    bad(
        "prompt-template-missing",
        graph_with_node_3("    - id: llm\n      data: {type: llm, title: LLM}"),
        "app.yml: workflow.graph.nodes[3].data.prompt_template: "
        "expected a list or a mapping, found nothing",
        extract=True,
    ),
    bad(
        "message-text-an-int",
        llm_node("[{role: system, text: fine}, {role: user, text: 42}]"),
        "app.yml: workflow.graph.nodes[3].data.prompt_template[1].text: ",
        "expected a string, found a",
        extract=True,
    ),
    bad(
        "message-is-a-string",
        llm_node("['You are helpful.']"),
        "app.yml: workflow.graph.nodes[3].data.prompt_template[0]: "
        "expected a mapping, found a string",
        extract=True,
    ),
    bad(
        "jinja2-text-a-list",
        llm_node("[{role: system, edition_type: jinja2, text: '', jinja2_text: [a]}]"),
        "app.yml: workflow.graph.nodes[3].data.prompt_template[0].jinja2_text: "
        "expected a string, found a list",
        extract=True,
    ),
    bad(
        "completion-template-text-a-mapping",
        llm_node("{text: {zh: 你好}}"),
        "app.yml: workflow.graph.nodes[3].data.prompt_template.text: "
        "expected a string, found a mapping",
        extract=True,
    ),
    bad(
        "classes-not-a-list",
        classifier_node("        classes: 'yes, no'"),
        "app.yml: workflow.graph.nodes[3].data.classes: expected a list, found a string",
        extract=True,
    ),
    bad(
        "class-name-a-list",
        classifier_node(
            "        classes:\n        - {id: '1', name: 退款}\n        - {id: '2', name: [a]}"
        ),
        "app.yml: workflow.graph.nodes[3].data.classes[1].name: expected a string, found a list",
        extract=True,
    ),
    bad(
        "instruction-a-mapping",
        graph_with_node_3(
            "    - id: extract\n      data:\n        type: parameter-extractor\n"
            "        instruction: {text: x}"
        ),
        "app.yml: workflow.graph.nodes[3].data.instruction: expected a string, found a mapping",
        extract=True,
    ),
    bad(
        "parameter-description-a-list",
        graph_with_node_3(
            "    - id: extract\n      data:\n        type: parameter-extractor\n"
            "        parameters:\n        - {name: city, description: [city]}"
        ),
        "app.yml: workflow.graph.nodes[3].data.parameters[0].description: "
        "expected a string, found a list",
        extract=True,
    ),
    bad(
        "pre-prompt-a-list",
        chat_app("  pre_prompt: [a, b]\n"),
        "app.yml: model_config.pre_prompt: expected a string, found a list",
        extract=True,
    ),
    bad(
        "chat-prompt-message-a-string",
        chat_app("  chat_prompt_config:\n    prompt: ['hello']\n"),
        "app.yml: model_config.chat_prompt_config.prompt[0]: expected a mapping, found a string",
        extract=True,
    ),
    bad(
        "completion-prompt-config-prompt-a-string",
        chat_app("  completion_prompt_config:\n    prompt: 'Answer {{query}}'\n"),
        "app.yml: model_config.completion_prompt_config.prompt: expected a mapping, found a string",
        extract=True,
    ),
]


def _load(case: Bad) -> DifyApp:
    app = load_dsl(case.data, SOURCE, case.max_bytes)
    if case.extract:
        extract_prompts(app)
    return app


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[case.id for case in BAD_INPUTS])
def test_bad_input_is_refused_with_a_message_naming_the_source_and_place(case: Bad) -> None:
    started = time.monotonic()
    with pytest.raises(DSLFormatError) as caught:
        _load(case)
    elapsed = time.monotonic() - started

    assert type(caught.value) is DSLFormatError
    message = str(caught.value)
    assert message.startswith("app.yml: "), message
    assert message.startswith(case.start), message
    assert case.phrase in message, message
    assert "\n" not in message, message
    assert elapsed < HANG_GUARD_SECONDS, f"took {elapsed:.2f}s"


def test_the_catalogue_is_large_and_its_ids_unique() -> None:
    ids = [case.id for case in BAD_INPUTS]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 25


@pytest.mark.parametrize("as_str", [False, True], ids=["bytes", "str"])
def test_the_extraction_cases_load_fine_without_extraction(as_str: bool) -> None:
    """Extraction errors come from extract_prompts, not load_dsl: the documents are apps."""
    for case in (c for c in BAD_INPUTS if c.extract):
        data = case.data if isinstance(case.data, str) else case.data.decode()
        app = load_dsl(data if as_str else data.encode(), SOURCE)
        assert app.source == SOURCE


@pytest.mark.parametrize(
    "head",
    [b"a: ", b"\x80\x80", b"[" * 1000],
    ids=["yaml-text", "not-utf-8", "deep-nesting"],
)
def test_fifty_megabytes_are_refused_before_decoding_or_parsing(head: bytes) -> None:
    data = head + b"x" * (50_000_000 - len(head))
    assert len(data) == 50_000_000
    started = time.monotonic()
    with pytest.raises(DSLFormatError) as caught:
        load_dsl(data, SOURCE)
    elapsed = time.monotonic() - started
    # The size is the first check: neither the bad UTF-8 nor the nesting is reported.
    assert str(caught.value) == (
        f"app.yml: 50000000 bytes is more than the limit of {DEFAULT_MAX_BYTES}"
    )
    # A length check, not a parse of 50 MB.
    assert elapsed < 1.0, f"took {elapsed:.2f}s"


def test_the_byte_limit_is_inclusive() -> None:
    data = CHAT_APP.encode()
    assert load_dsl(data, SOURCE, max_bytes=len(data)).mode == "chat"
    with pytest.raises(DSLFormatError, match=r"^app\.yml: \d+ bytes is more than the limit of"):
        load_dsl(data, SOURCE, max_bytes=len(data) - 1)


def test_nesting_up_to_the_limit_is_accepted() -> None:
    text = (
        "app: {mode: chat}\nmodel_config:\n  deep: " + "[" * (MAX_DEPTH - 2) + "]" * (MAX_DEPTH - 2)
    )
    assert load_dsl(text, SOURCE).mode == "chat"


def test_modest_aliases_are_accepted() -> None:
    text = (
        "app: {mode: workflow, name: Demo}\n"
        "workflow:\n  graph:\n    nodes:\n"
        "    - {id: a, data: &shared {type: start, variables: [x, y]}}\n"
        "    - {id: b, data: *shared}\n"
    )
    app = load_dsl(text, SOURCE)
    nodes = app.document["workflow"]["graph"]["nodes"]
    assert nodes[0]["data"] == nodes[1]["data"] == {"type": "start", "variables": ["x", "y"]}


def test_aliased_text_counts_against_the_size_limit() -> None:
    """The text aliases expand to may not exceed the byte limit the file itself has."""
    text = "app: {{mode: chat, name: Demo}}\nmodel_config: {{pre_prompt: &p '{0}', a: [{1}]}}\n"
    within = text.format("x" * 400, "*p, *p")
    assert load_dsl(within, SOURCE, max_bytes=2000).document["model_config"]["a"] == ["x" * 400] * 2
    with pytest.raises(DSLFormatError, match="limit of 2,000 characters of text"):
        load_dsl(text.format("x" * 400, "*p, *p, *p, *p, *p"), SOURCE, max_bytes=2000)


# --- the good cases ----------------------------------------------------------------------


def test_a_utf8_bom_is_accepted() -> None:
    app = load_dsl(b"\xef\xbb\xbf" + CHAT_APP.encode(), SOURCE)
    assert (app.mode, app.name) == ("chat", "客服助手")
    assert app.document == load_dsl(CHAT_APP.encode(), SOURCE).document


def test_a_bom_in_str_input_is_accepted() -> None:
    assert load_dsl("\ufeff" + CHAT_APP, SOURCE).name == "客服助手"


def test_the_export_api_wrapper_is_unwrapped() -> None:
    wrapped = json.dumps({"data": GRAPH_APP}, ensure_ascii=False)
    app = load_dsl(wrapped.encode(), SOURCE)
    direct = load_dsl(GRAPH_APP.encode(), SOURCE)
    assert app.document == direct.document
    assert (app.mode, app.name, app.version) == ("workflow", "Demo", "0.1.5")
    assert [p.text for p in extract_prompts(app)] == ["日本語のテキスト、{{#1711528915811.text#}}"]


def test_a_document_with_app_and_a_data_key_is_not_unwrapped() -> None:
    text = CHAT_APP + "data: 'app: {mode: workflow}'\n"
    app = load_dsl(text, SOURCE)
    assert app.mode == "chat"
    assert app.document["data"] == "app: {mode: workflow}"


@pytest.mark.parametrize(
    ("version_line", "expected"),
    [
        ("", "0.1.0"),
        ("version: null\n", "0.1.0"),
        ("version: 0.1.5\n", "0.1.5"),
        ("version: '0.2.0'\n", "0.2.0"),
        ("version: 0.1\n", "0.1"),
    ],
    ids=["missing", "null", "three-part", "quoted", "float"],
)
def test_the_version(version_line: str, expected: str) -> None:
    assert load_dsl(version_line + CHAT_APP, SOURCE).version == expected


def test_str_input_works_like_bytes() -> None:
    from_str = load_dsl(GRAPH_APP, SOURCE)
    from_bytes = load_dsl(GRAPH_APP.encode(), SOURCE)
    assert from_str == from_bytes
    assert from_str.workflow_id == "Demo"


def test_the_workflow_id_is_the_name_with_spaces_folded() -> None:
    app = load_dsl("app:\n  mode: chat\n  name: '  My   Bot \t'\nmodel_config: {}\n", SOURCE)
    assert app.workflow_id == "My Bot"
    unnamed = load_dsl("app:\n  mode: chat\nmodel_config: {}\n", SOURCE)
    assert (unnamed.name, unnamed.workflow_id) == ("", "app")


def test_dump_round_trips_and_keeps_cjk_readable() -> None:
    app = load_dsl(GRAPH_APP, SOURCE)
    dumped = dump_dsl(app.document)
    assert "日本語のテキスト、{{#1711528915811.text#}}" in dumped
    assert "\\u" not in dumped
    assert load_dsl(dumped, SOURCE).document == app.document
    # The node id stays a string, never turned into a number.
    assert "'1711528915811'" in dumped


@pytest.mark.parametrize(
    "make",
    [billion_laughs, wide_alias_bomb, lambda: b"[" * 5000],
    ids=["billion-laughs", "wide-alias-bomb", "open-brackets"],
)
def test_the_same_refusal_through_the_export_api_wrapper(make: Callable[[], bytes]) -> None:
    text = make().decode()
    started = time.monotonic()
    with pytest.raises(DSLFormatError, match=r"^app\.yml: "):
        load_dsl(json.dumps({"data": text}), SOURCE)
    assert time.monotonic() - started < HANG_GUARD_SECONDS


# --- edge cases that once escaped as the wrong error ------------------------------------


def test_str_input_with_a_lone_surrogate_is_a_format_error() -> None:
    """A str that cannot be UTF-8 (a lone surrogate) is a format error, not a crash."""
    with pytest.raises(DSLFormatError, match=r"^app\.yml: "):
        load_dsl("app:\n  mode: chat\n  name: \ud800\nmodel_config: {}\n", SOURCE)


def test_a_control_character_error_says_where() -> None:
    """A YAML reader error (a NUL at offset 13) says where and what."""
    with pytest.raises(DSLFormatError) as caught:
        load_dsl(b"app:\n  mode: \x00chat\n", SOURCE)
    message = str(caught.value)
    assert "ReaderError" not in message, message
    assert "13" in message or "line 2" in message, message
