"""FolderCatalog over real folders: which files are apps, under which id, and what is refused.

Proves: every Dify app file directly in the folder (``.yml``, ``.yaml``, ``.json``, any case) is
an entry keyed by its app name (whitespace-normalized) with the file's sha256 and path;
``*.optimized.*`` outputs, other suffixes, sub-folders and their files are not; a file that is not
a readable Dify app, or is over the size limit, is a problem naming it; a second file with an app
name already taken is a problem naming the first, which stays the entry; ``load`` gives the app
and the file's text; an unknown id is ``NotFoundError``; a path that is not a folder is
``DSLFormatError``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from autoopt.domain.dsl import extract_prompts
from autoopt.domain.errors import DSLFormatError, NotFoundError
from autoopt.infrastructure.catalog import FolderCatalog
from tests.conftest import REPO_ROOT

MAX_BYTES = 200_000
SUPPORT_BOT = (REPO_ROOT / "examples" / "support_bot.yml").read_text(encoding="utf-8")
FAQ_WORKFLOW = """\
app:
  mode: workflow
  name: FAQ Flow
kind: app
version: 0.1.5
workflow:
  graph:
    edges: []
    nodes:
    - id: '1'
      type: custom
      data: {type: start, title: Start}
    - id: '2'
      type: custom
      data:
        type: llm
        title: Answer
        prompt_template:
        - {role: system, text: Answer the question from the FAQ.}
"""
CHAT_JSON = json.dumps(
    {
        "app": {"mode": "chat", "name": "Chat Helper"},
        "model_config": {"pre_prompt": "You are a helpful assistant. Answer briefly."},
        "version": "0.1.5",
    },
    ensure_ascii=False,
)
UPPER_CASE_SUFFIX = """\
app: {mode: completion, name: Shouting Suffix}
model_config:
  pre_prompt: Summarize {{text}} in one sentence.
"""


def write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    apps = tmp_path / "apps"
    apps.mkdir()
    write(apps, "a_support.yml", SUPPORT_BOT)
    write(apps, "b_faq.yaml", FAQ_WORKFLOW)
    write(apps, "c_chat.json", CHAT_JSON)
    write(apps, "d_loud.YML", UPPER_CASE_SUFFIX)
    return apps


def by_id(catalog: FolderCatalog) -> dict[str, tuple[str, str]]:
    return {e.workflow_id: (e.source, e.sha256) for e in catalog.entries()}


def test_every_app_file_is_an_entry_keyed_by_app_name_with_its_sha(folder: Path) -> None:
    catalog = FolderCatalog(folder, MAX_BYTES)

    assert by_id(catalog) == {
        "Support Bot": (str(folder / "a_support.yml"), sha256(folder / "a_support.yml")),
        "FAQ Flow": (str(folder / "b_faq.yaml"), sha256(folder / "b_faq.yaml")),
        "Chat Helper": (str(folder / "c_chat.json"), sha256(folder / "c_chat.json")),
        "Shouting Suffix": (str(folder / "d_loud.YML"), sha256(folder / "d_loud.YML")),
    }
    assert catalog.problems == []
    # In file-name order.
    assert [e.workflow_id for e in catalog.entries()] == [
        "Support Bot",
        "FAQ Flow",
        "Chat Helper",
        "Shouting Suffix",
    ]


def test_the_sha_is_of_the_bytes_on_disk(folder: Path) -> None:
    # A BOM and CRLF line ends are part of the file: the sha is of the raw bytes.
    raw = b"\xef\xbb\xbf" + FAQ_WORKFLOW.replace("FAQ Flow", "Raw Bytes").replace(
        "\n", "\r\n"
    ).encode("utf-8")
    path = write(folder, "e_raw.yml", raw)
    catalog = FolderCatalog(folder, MAX_BYTES)
    assert by_id(catalog)["Raw Bytes"] == (str(path), hashlib.sha256(raw).hexdigest())


def test_the_app_name_is_normalized_into_the_workflow_id(folder: Path) -> None:
    write(folder, "e_spaced.yml", FAQ_WORKFLOW.replace("name: FAQ Flow", "name: '  Spaced   Out '"))
    catalog = FolderCatalog(folder, MAX_BYTES)
    assert "Spaced Out" in by_id(catalog)
    app, _ = catalog.load("Spaced Out")
    assert app.name == "  Spaced   Out "


def test_optimized_outputs_other_files_and_sub_folders_are_not_scanned(folder: Path) -> None:
    write(folder, "a_support.optimized.yml", SUPPORT_BOT.replace("Support Bot", "Optimized Copy"))
    write(folder, "b_faq.optimized.json", CHAT_JSON.replace("Chat Helper", "Optimized JSON"))
    write(folder, "notes.txt", FAQ_WORKFLOW.replace("FAQ Flow", "Text File"))
    write(folder, "backup.yml.bak", FAQ_WORKFLOW.replace("FAQ Flow", "Backup"))
    (folder / "folder.yml").mkdir()
    nested = folder / "nested"
    nested.mkdir()
    write(nested, "inner.yml", FAQ_WORKFLOW.replace("FAQ Flow", "Nested App"))

    catalog = FolderCatalog(folder, MAX_BYTES)

    assert set(by_id(catalog)) == {"Support Bot", "FAQ Flow", "Chat Helper", "Shouting Suffix"}
    assert catalog.problems == []


def test_a_file_that_is_not_a_dify_app_is_a_problem_and_the_rest_still_load(folder: Path) -> None:
    bad = {
        "broken.yml": "app: [unclosed\n",
        "not_an_app.json": json.dumps({"hello": "world"}),
        "empty.yaml": "",
        "latin1.yml": "app: {mode: chat, name: Caf\xe9}\n".encode("latin-1"),
        "wrong_mode.yml": "app: {mode: spreadsheet, name: Sheet}\n",
    }
    for name, content in bad.items():
        write(folder, name, content)

    catalog = FolderCatalog(folder, MAX_BYTES)

    assert {p.path.name for p in catalog.problems} == set(bad)
    for problem in catalog.problems:
        assert problem.path == folder / problem.path.name
        assert str(problem.path) in problem.message
    assert set(by_id(catalog)) == {"Support Bot", "FAQ Flow", "Chat Helper", "Shouting Suffix"}


def test_a_file_over_the_size_limit_is_a_problem(tmp_path: Path) -> None:
    write(tmp_path, "small.yml", FAQ_WORKFLOW)
    big = write(tmp_path, "big.yml", FAQ_WORKFLOW.replace("FAQ Flow", "Big") + "#" * 5_000)
    catalog = FolderCatalog(tmp_path, max_bytes=2_000)
    assert set(by_id(catalog)) == {"FAQ Flow"}
    [problem] = catalog.problems
    assert problem.path == big and "limit" in problem.message


def test_a_second_file_with_a_taken_app_name_is_a_problem_and_the_first_stays(
    folder: Path,
) -> None:
    # Same name after whitespace normalization, in a file that sorts after the first.
    duplicate = write(
        folder, "z_copy.yml", SUPPORT_BOT.replace("name: Support Bot", "name: Support   Bot")
    )
    original = folder / "a_support.yml"

    catalog = FolderCatalog(folder, MAX_BYTES)

    assert by_id(catalog)["Support Bot"] == (str(original), sha256(original))
    assert len(catalog.entries()) == 4
    [problem] = catalog.problems
    assert problem.path == duplicate
    assert "Support Bot" in problem.message and str(original) in problem.message
    app, text = catalog.load("Support Bot")
    assert app.source == str(original)
    assert text == SUPPORT_BOT


def test_load_gives_the_app_and_its_text(folder: Path) -> None:
    catalog = FolderCatalog(folder, MAX_BYTES)

    app, text = catalog.load("Support Bot")
    assert text == (folder / "a_support.yml").read_text(encoding="utf-8")
    assert (app.workflow_id, app.mode, app.source) == (
        "Support Bot",
        "advanced-chat",
        str(folder / "a_support.yml"),
    )
    assert len(extract_prompts(app)) == 9

    chat, chat_text = catalog.load("Chat Helper")
    assert chat_text == CHAT_JSON
    assert chat.mode == "chat"
    assert [p.text for p in extract_prompts(chat)] == [
        "You are a helpful assistant. Answer briefly."
    ]


def test_load_strips_a_byte_order_mark_from_the_text(folder: Path) -> None:
    write(folder, "e_bom.yml", b"\xef\xbb\xbf" + FAQ_WORKFLOW.replace("FAQ Flow", "BOM").encode())
    _, text = FolderCatalog(folder, MAX_BYTES).load("BOM")
    assert text == FAQ_WORKFLOW.replace("FAQ Flow", "BOM")


def test_an_unknown_workflow_id_is_not_found(folder: Path) -> None:
    catalog = FolderCatalog(folder, MAX_BYTES)
    with pytest.raises(NotFoundError, match="No Such App"):
        catalog.load("No Such App")
    with pytest.raises(NotFoundError):
        catalog.path_of("support bot")  # ids are exact: case matters


def test_an_empty_folder_has_no_entries(tmp_path: Path) -> None:
    catalog = FolderCatalog(tmp_path, MAX_BYTES)
    assert catalog.entries() == [] and catalog.problems == []


def test_a_file_is_not_a_folder(folder: Path) -> None:
    with pytest.raises(DSLFormatError, match="not a folder"):
        FolderCatalog(folder / "a_support.yml", MAX_BYTES)


def test_a_missing_path_is_not_a_folder(tmp_path: Path) -> None:
    with pytest.raises(DSLFormatError, match="not a folder"):
        FolderCatalog(tmp_path / "missing", MAX_BYTES)


def test_entries_cannot_be_changed_from_outside(folder: Path) -> None:
    catalog = FolderCatalog(folder, MAX_BYTES)
    catalog.entries().clear()
    assert len(catalog.entries()) == 4
