"""The real Dify exports of the corpus load, yield exactly their prompts and patch cleanly.

What this proves, file by file (ids are the corpus file names):

* ``load_dsl`` reads the file to the same document a plain ``yaml.safe_load`` gives, and
  ``extract_prompts`` runs on it;
* the extractor finds exactly the (document path, text) pairs that an independent walker, written
  here straight from DESIGN section 5 and sharing no code with the project, finds; prompt ids are
  unique and every ``node_id`` + ``field_path`` names the same string as ``document_path``;
* ``dump_dsl`` followed by ``load_dsl`` gives back an equal document;
* appending a marker to every non-empty prompt (by id, and to a few by path), dumping and
  re-loading changes exactly the patched strings, each to ``old + marker``, with every string's
  variable references unchanged; nothing else in the document moves.

The corpus lives outside the repository (``AUTOOPT_CORPUS_DIR``); without it these tests skip.
"""

from __future__ import annotations

import os
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from autoopt.domain.dsl import extract_prompts
from autoopt.domain.dsl_loading import DifyApp, dump_dsl, load_dsl
from autoopt.domain.models import Prompt, PromptPatch
from autoopt.domain.patching import apply_patches
from autoopt.domain.references import reference_multiset
from tests.dsl_diff import differing_paths

MARKER = " ⟦MARK⟧"
MIN_CORPUS_FILES = 70
MIN_CORPUS_PROMPTS = 300
BY_PATH_SAMPLE = 3

DocPath = tuple[str | int, ...]


def _corpus_file_names() -> list[str]:
    """Collection-time list of the corpus files (the ``corpus_dir`` fixture decides skipping)."""
    default = Path(__file__).resolve().parents[2].parent / "shared/fixtures/dify"
    folder = Path(os.environ.get("AUTOOPT_CORPUS_DIR", default))
    names = sorted(p.name for p in folder.glob("*.yml")) if folder.is_dir() else []
    return names or ["no-corpus-files"]


@pytest.fixture(params=_corpus_file_names())
def corpus_file(request: pytest.FixtureRequest, corpus_dir: Path) -> Path:
    path = corpus_dir / request.param
    if not path.is_file():
        pytest.fail(f"no corpus file {request.param!r} in {corpus_dir}")
    return path


@cache
def _load(path: Path) -> DifyApp:
    """Loaded once per session: every test here only reads ``app.document`` (patching copies it,
    and a patcher that wrote through would show up as an empty diff in the marker tests)."""
    return load_dsl(path.read_bytes(), str(path))


# --- an independent reading of DESIGN section 5 ----------------------------------------------


def _plain_yaml(path: Path) -> Any:
    """The file as PyYAML reads it, unwrapping Dify's export-API ``{"data": "<yaml>"}``."""
    document = yaml.safe_load(path.read_bytes().decode("utf-8-sig"))
    if (
        isinstance(document, dict)
        and "app" not in document
        and isinstance(document.get("data"), str)
    ):
        document = yaml.safe_load(document["data"])
    return document


def _message_text(path: DocPath, message: dict[str, Any]) -> tuple[DocPath, str] | None:
    key = "jinja2_text" if message.get("edition_type") == "jinja2" else "text"
    text = message.get(key)
    return None if text is None else ((*path, key), text)


def _if_text(data: dict[str, Any], path: DocPath) -> list[tuple[DocPath, str]]:
    value: Any = data
    for part in path:
        in_dict = isinstance(value, dict) and isinstance(part, str) and part in value
        in_list = isinstance(value, list) and isinstance(part, int) and part < len(value)
        if not (in_dict or in_list):
            return []
        value = value[part]
    return [] if value is None else [(path, value)]


def _node_texts(data: dict[str, Any]) -> list[tuple[DocPath, str]]:
    kind = data.get("type")
    found: list[tuple[DocPath, str]] = []
    if kind == "llm":
        template = data.get("prompt_template")
        messages = (
            [(("prompt_template", i), m) for i, m in enumerate(template)]
            if isinstance(template, list)
            else [(("prompt_template",), template)]
        )
        for path, message in messages:
            item = _message_text(path, message)
            if item is not None:
                found.append(item)
        if isinstance(data.get("memory"), dict):
            found += _if_text(data, ("memory", "query_prompt_template"))
    elif kind == "question-classifier":
        found += _if_text(data, ("instruction",) if "instruction" in data else ("instructions",))
        for i, _ in enumerate(data.get("classes") or []):
            found += _if_text(data, ("classes", i, "name"))
    elif kind == "parameter-extractor":
        found += _if_text(data, ("instruction",))
        for i, _ in enumerate(data.get("parameters") or []):
            found += _if_text(data, ("parameters", i, "description"))
    elif kind == "agent":
        parameters = data.get("agent_parameters") or {}
        for name in ("instruction", "query"):
            setting = parameters.get(name)
            if isinstance(setting, dict) and isinstance(setting.get("value"), str):
                found.append((("agent_parameters", name, "value"), setting["value"]))
    return found


def _walk_prompts(document: dict[str, Any]) -> list[tuple[DocPath, str]]:
    """Every prompt-bearing string of the document: (path from the root, text)."""
    found: list[tuple[DocPath, str]] = []
    if document["app"]["mode"] in ("workflow", "advanced-chat"):
        for index, node in enumerate(document["workflow"]["graph"]["nodes"]):
            if node.get("type") == "custom-note":
                continue
            base: DocPath = ("workflow", "graph", "nodes", index, "data")
            found += [((*base, *path), text) for path, text in _node_texts(node["data"])]
        return found
    config = {"model_config": document["model_config"]}
    found += _if_text(config, ("model_config", "pre_prompt"))
    chat = config["model_config"].get("chat_prompt_config") or {}
    for i, _ in enumerate(chat.get("prompt") or []):
        found += _if_text(config, ("model_config", "chat_prompt_config", "prompt", i, "text"))
    found += _if_text(config, ("model_config", "completion_prompt_config", "prompt", "text"))
    return found


def _pointer(path: DocPath) -> str:
    return "".join(f"/{part}" for part in path)


def _get(document: Any, path: DocPath) -> Any:
    for part in path:
        document = document[part]
    return document


def _parts(pointer: str) -> DocPath:
    return tuple(int(p) if p.isdigit() else p for p in pointer[1:].split("/"))


def _assert_only_marked(original: dict[str, Any], reloaded: dict[str, Any], marked: list[Prompt]):
    changed = sorted(differing_paths(original, reloaded))
    assert changed == sorted(p.document_path for p in marked)
    for prompt in marked:
        new = _get(reloaded, _parts(prompt.document_path))
        assert new == prompt.text + MARKER, prompt.prompt_id
        assert reference_multiset(new, prompt.edition) == reference_multiset(
            prompt.text, prompt.edition
        ), prompt.prompt_id


# --- the tests ---------------------------------------------------------------------------------


def test_corpus_file_loads_to_the_plain_yaml_document_and_extracts(corpus_file: Path) -> None:
    app = _load(corpus_file)

    assert app.mode in ("workflow", "advanced-chat", "chat", "agent-chat", "completion")
    assert app.document == _plain_yaml(corpus_file)
    assert all(isinstance(p, Prompt) for p in extract_prompts(app))


def test_extractor_finds_exactly_what_an_independent_walk_finds(corpus_file: Path) -> None:
    app = _load(corpus_file)
    prompts = extract_prompts(app)

    expected = Counter((_pointer(path), text) for path, text in _walk_prompts(app.document))
    assert Counter((p.document_path, p.text) for p in prompts) == expected

    ids = [p.prompt_id for p in prompts]
    assert len(ids) == len(set(ids)), [i for i, n in Counter(ids).items() if n > 1]


def test_node_id_and_field_path_name_the_same_string_as_document_path(corpus_file: Path) -> None:
    app = _load(corpus_file)
    nodes = app.document.get("workflow", {}).get("graph", {}).get("nodes", [])
    for prompt in extract_prompts(app):
        assert prompt.workflow_id == app.workflow_id
        assert prompt.prompt_id.startswith(f"{app.workflow_id}/")
        assert prompt.prompt_id.endswith(prompt.field_path)
        if prompt.node_id is None:
            assert prompt.document_path == prompt.field_path
            continue
        index = next(i for i, n in enumerate(nodes) if str(n.get("id")) == prompt.node_id)
        assert prompt.document_path == f"/workflow/graph/nodes/{index}/data{prompt.field_path}"
        assert prompt.node_type == nodes[index]["data"]["type"]


def test_dump_then_load_gives_an_equal_document(corpus_file: Path) -> None:
    app = _load(corpus_file)

    reloaded = load_dsl(dump_dsl(app.document), f"{corpus_file.name} (dumped)").document

    assert differing_paths(app.document, reloaded) == []
    assert reloaded == app.document


def test_marker_appended_by_id_changes_exactly_the_patched_strings(corpus_file: Path) -> None:
    app = _load(corpus_file)
    marked = [p for p in extract_prompts(app) if p.text]
    patches = [
        PromptPatch(
            workflow_id=app.workflow_id,
            node_id=p.node_id,
            selector_value=p.field_path,
            strategy="append",
            content=MARKER,
        )
        for p in marked
    ]

    outcome = apply_patches(app, patches)

    assert [r.status for r in outcome.results] == ["applied"] * len(marked)
    assert [r.document_path for r in outcome.results] == [p.document_path for p in marked]
    reloaded = load_dsl(dump_dsl(outcome.document), f"{corpus_file.name} (patched)").document
    _assert_only_marked(app.document, reloaded, marked)


def test_marker_appended_by_path_changes_exactly_the_patched_strings(corpus_file: Path) -> None:
    app = _load(corpus_file)
    non_empty = [p for p in extract_prompts(app) if p.text]
    marked = non_empty[:BY_PATH_SAMPLE] + non_empty[BY_PATH_SAMPLE:][-1:]
    patches = [
        PromptPatch(
            workflow_id=app.workflow_id,
            selector_type="by_path",
            selector_value=p.document_path,
            strategy="append",
            content=MARKER,
        )
        for p in marked
    ]

    outcome = apply_patches(app, patches)

    assert [r.status for r in outcome.results] == ["applied"] * len(marked)
    reloaded = load_dsl(dump_dsl(outcome.document), f"{corpus_file.name} (patched)").document
    _assert_only_marked(app.document, reloaded, marked)


def test_corpus_is_large_enough_and_yields_enough_prompts(corpus_dir: Path) -> None:
    files = sorted(corpus_dir.glob("*.yml"))
    counts = {path.name: len(extract_prompts(_load(path))) for path in files}
    total = sum(counts.values())
    print(f"\n{len(files)} corpus files, {total} prompts")

    assert len(files) >= MIN_CORPUS_FILES
    assert total >= MIN_CORPUS_PROMPTS
