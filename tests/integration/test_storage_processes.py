"""``FileSystemStorage`` shared by real processes: the prompt lock and the shared index.

Every writer and reader is a separate OS process (``sys.executable -m
tests.integration.storage_worker``) with its own ``FileSystemStorage`` on one
folder under a temporary directory. Workers announce themselves with
``ready-1-<name>`` files and start only when the test creates ``go-1``, so
that they all hit the store at the same moment. A worker that crashes or
hangs fails the test with its exit code and stderr.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from autoopt.infrastructure.storage import FileSystemStorage
from tests.processes import Workers

pytestmark = pytest.mark.slow

WORKER_MODULE = "tests.integration.storage_worker"

WRITERS = 8
SAVES_PER_WRITER = 50
TOTAL_SAVES = WRITERS * SAVES_PER_WRITER
SHARED_PROMPT = "wf-1/1711528915801/prompt_template/0/text"
SHARDED_WRITERS = 4
READ_WRITERS = 4
READERS = 2

# Generous limits that only a hang reaches: the tests take seconds.
START_TIMEOUT = 60.0
RUN_TIMEOUT = 180.0
READ_FOR = RUN_TIMEOUT - 30.0  # a reader gives up, and reports, before it is killed
VERSION_FILE = re.compile(r"^([1-9][0-9]*)\.json$")


def storage_workers(folder: Path, storage_dir: Path) -> Workers:
    """Storage workers on the folder ``storage_dir``, with this suite's time limits."""
    return Workers(
        folder,
        WORKER_MODULE,
        [f"--dir={storage_dir}"],
        start_timeout=START_TIMEOUT,
        run_timeout=RUN_TIMEOUT,
    )


def prompt_folders(root: Path) -> dict[str, Path]:
    """Every prompt folder under ``root``, found by walking it, keyed by its ``prompt.json`` id."""
    found: dict[str, Path] = {}
    for folder, _dirs, files in os.walk(root):
        if "prompt.json" in files:
            document = json.loads(Path(folder, "prompt.json").read_text(encoding="utf-8"))
            assert document["prompt_id"] not in found, f"{document['prompt_id']!r}: two folders"
            found[document["prompt_id"]] = Path(folder)
    return found


def version_numbers(folder: Path) -> list[int]:
    return sorted(int(m.group(1)) for m in map(VERSION_FILE.match, os.listdir(folder)) if m)


def read_index(root: Path) -> Any:
    return json.loads((root / "index.json").read_text(encoding="utf-8"))


# -- 8 processes, one prompt -----------------------------------------------------------


@dataclass(frozen=True)
class SharedPromptRun:
    storage_dir: Path
    writers: dict[str, dict[str, Any]]
    seconds: float


@pytest.fixture(scope="module")
def shared_prompt_run(tmp_path_factory: pytest.TempPathFactory) -> SharedPromptRun:
    """8 writer processes x 50 saves of ``latest + 1`` under the lock, all to one prompt."""
    folder = tmp_path_factory.mktemp("shared-prompt")
    storage_dir = folder / "store"
    with storage_workers(folder, storage_dir) as workers:
        for i in range(WRITERS):
            workers.start(
                "save", f"writer-{i}", f"--prompt={SHARED_PROMPT}", f"--count={SAVES_PER_WRITER}"
            )
        workers.release()
        started = time.monotonic()
        results = workers.results()
        seconds = time.monotonic() - started
    return SharedPromptRun(storage_dir=storage_dir, writers=results, seconds=seconds)


def test_concurrent_saves_leave_versions_exactly_1_to_400(
    shared_prompt_run: SharedPromptRun,
) -> None:
    folders = prompt_folders(shared_prompt_run.storage_dir)
    assert list(folders) == [SHARED_PROMPT]
    assert version_numbers(folders[SHARED_PROMPT]) == list(range(1, TOTAL_SAVES + 1))
    storage = FileSystemStorage(shared_prompt_run.storage_dir)
    assert storage.list_versions(SHARED_PROMPT) == list(range(1, TOTAL_SAVES + 1))
    assert storage.latest_version_number(SHARED_PROMPT) == TOTAL_SAVES


def test_each_writer_was_given_numbers_no_other_writer_got(
    shared_prompt_run: SharedPromptRun,
) -> None:
    """Every number was told to exactly one writer, and a writer's own numbers only rise."""
    told = Counter(
        s["version"] for result in shared_prompt_run.writers.values() for s in result["saved"]
    )
    duplicated = sorted(n for n, count in told.items() if count > 1)
    assert duplicated == [], f"numbers told to two writers: {duplicated[:20]}"
    assert sorted(told) == list(range(1, TOTAL_SAVES + 1))
    for name, result in shared_prompt_run.writers.items():
        numbers = [s["version"] for s in result["saved"]]
        assert len(numbers) == SAVES_PER_WRITER, name
        assert numbers == sorted(numbers), f"{name} was told a number below an earlier one"
    pids = {result["pid"] for result in shared_prompt_run.writers.values()}
    assert len(pids) == WRITERS, "precondition: every writer is its own process"


def test_every_version_file_holds_what_its_writer_saved(
    shared_prompt_run: SharedPromptRun,
) -> None:
    """Each ``n.json`` parses, names prompt and version ``n``, and is the bytes its writer saved."""
    folder = prompt_folders(shared_prompt_run.storage_dir)[SHARED_PROMPT]
    expected = {
        s["version"]: (name, s) for name, r in shared_prompt_run.writers.items() for s in r["saved"]
    }
    for n in range(1, TOTAL_SAVES + 1):
        data = (folder / f"{n}.json").read_bytes()
        document = json.loads(data)
        name, saved = expected[n]
        assert (document["prompt_id"], document["version"]) == (SHARED_PROMPT, n), f"{n}.json"
        assert document["text"] == saved["text"], f"{n}.json is not what {name} saved"
        assert hashlib.sha256(data).hexdigest() == saved["sha256"], f"{n}.json digest"


def test_the_index_agrees_and_verify_finds_nothing(shared_prompt_run: SharedPromptRun) -> None:
    assert read_index(shared_prompt_run.storage_dir) == {
        SHARED_PROMPT: {"latest": TOTAL_SAVES, "total": TOTAL_SAVES}
    }
    storage = FileSystemStorage(shared_prompt_run.storage_dir)
    assert storage.verify() == []
    temp_files = [
        name
        for _folder, _dirs, files in os.walk(shared_prompt_run.storage_dir)
        for name in files
        if name.endswith(".tmp")
    ]
    assert temp_files == []


def test_the_writers_really_interleaved(shared_prompt_run: SharedPromptRun) -> None:
    """Without overlap the test proves nothing: serial writers leave 8 blocks of 50."""
    owner = {
        s["version"]: name for name, r in shared_prompt_run.writers.items() for s in r["saved"]
    }
    switches = sum(owner[n] != owner[n + 1] for n in range(1, TOTAL_SAVES))
    assert switches > 2 * WRITERS, f"precondition: the writers barely overlapped ({switches})"


# -- 4 processes, 4 prompts, sharded ---------------------------------------------------


def test_writers_of_different_prompts_share_one_index(tmp_path: Path) -> None:
    """4 processes, each saving 50 versions of its own prompt with sharding on, at once.

    The index is one file all four update under its own lock: it must end
    with all four prompts at their right counts, no update lost.
    """
    storage_dir = tmp_path / "store"
    prompts = [f"tenant-{i}/工作流/prompt" for i in range(SHARDED_WRITERS)]
    with storage_workers(tmp_path, storage_dir) as workers:
        for i, prompt_id in enumerate(prompts):
            workers.start(
                "save",
                f"writer-{i}",
                f"--prompt={prompt_id}",
                f"--count={SAVES_PER_WRITER}",
                "--sharding",
            )
        workers.release()
        results = workers.results()

    expected = {p: {"latest": SAVES_PER_WRITER, "total": SAVES_PER_WRITER} for p in prompts}
    assert read_index(storage_dir) == expected
    for i, prompt_id in enumerate(prompts):
        told = [s["version"] for s in results[f"writer-{i}"]["saved"]]
        assert told == list(range(1, SAVES_PER_WRITER + 1)), prompt_id
    folders = prompt_folders(storage_dir)
    assert sorted(folders) == sorted(prompts)
    for prompt_id, folder in folders.items():
        assert len(folder.relative_to(storage_dir).parts) == 3, f"{prompt_id}: not sharded"
        assert version_numbers(folder) == list(range(1, SAVES_PER_WRITER + 1)), prompt_id
    storage = FileSystemStorage(storage_dir, enable_sharding=True)
    assert storage.list_prompts() == sorted(prompts)
    assert storage.verify() == []
    assert storage.rebuild_index() == SHARDED_WRITERS
    assert read_index(storage_dir) == expected


# -- readers outside the lock ----------------------------------------------------------


@dataclass(frozen=True)
class ReadWhileWriting:
    storage_dir: Path
    writers: dict[str, dict[str, Any]]
    readers: dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def read_while_writing(tmp_path_factory: pytest.TempPathFactory) -> ReadWhileWriting:
    """4 writer processes x 50 saves to one prompt, while 2 reader processes poll the latest."""
    folder = tmp_path_factory.mktemp("read-while-writing")
    storage_dir = folder / "store"
    total = READ_WRITERS * SAVES_PER_WRITER
    with storage_workers(folder, storage_dir) as workers:
        for i in range(READ_WRITERS):
            workers.start(
                "save", f"writer-{i}", f"--prompt={SHARED_PROMPT}", f"--count={SAVES_PER_WRITER}"
            )
        for i in range(READERS):
            workers.start(
                "read",
                f"reader-{i}",
                f"--prompt={SHARED_PROMPT}",
                f"--expect={total}",
                f"--read-for={READ_FOR}",
            )
        workers.release()
        results = workers.results()
    readers = {name: r for name, r in results.items() if name.startswith("reader-")}
    writers = {name: r for name, r in results.items() if name.startswith("writer-")}
    return ReadWhileWriting(storage_dir=storage_dir, writers=writers, readers=readers)


def test_readers_see_whole_versions_and_a_latest_that_never_goes_back(
    read_while_writing: ReadWhileWriting,
) -> None:
    total = READ_WRITERS * SAVES_PER_WRITER
    for name, reader in read_while_writing.readers.items():
        assert reader["problems"] == [], f"{name} read a torn or wrong version"
        seen = reader["seen"]
        backwards = [(a, b) for a, b in pairwise(seen) if b < a]
        assert backwards == [], f"{name} saw the latest go back: {backwards[:10]}"
        assert seen[-1] == total, f"{name} stopped at {seen[-1]}"
        # Precondition: it watched the versions grow, or it read nothing concurrently.
        assert len(seen) >= 10, f"precondition: {name} saw only {len(seen)} distinct latests"


def test_readers_outside_the_lock_leave_every_version_intact_and_the_latest_right(
    read_while_writing: ReadWhileWriting,
) -> None:
    """Reads without the lock change nothing the writers wrote, and the index's latest is right.

    The index's ``total`` is deliberately not checked here: a reader's rescan
    between a writer's rename and its index update counts that version twice
    (a real bug, hit in about one run in five with these numbers), which
    ``test_filesystem_storage.test_a_read_between_a_version_write_and_its_index_update...``
    reproduces deterministically.
    """
    total = READ_WRITERS * SAVES_PER_WRITER
    storage_dir = read_while_writing.storage_dir
    assert version_numbers(prompt_folders(storage_dir)[SHARED_PROMPT]) == list(range(1, total + 1))
    assert read_index(storage_dir)[SHARED_PROMPT]["latest"] == total
    storage = FileSystemStorage(storage_dir, use_cache=False)
    assert storage.latest_version_number(SHARED_PROMPT) == total
    texts = {
        s["version"]: s["text"] for r in read_while_writing.writers.values() for s in r["saved"]
    }
    assert sorted(texts) == list(range(1, total + 1))
    for n in range(1, total + 1):
        assert storage.get_version(SHARED_PROMPT, n).text == texts[n], f"version {n}"
