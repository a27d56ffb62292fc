"""``FileSystemStorage`` on real folders: layout, hostile prompt ids, index, corruption, cache.

Every test works on a real directory under ``tmp_path`` and checks what lands
on disk by walking it with ``os`` calls, not through the store's own helpers.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

import autoopt.infrastructure.storage.filesystem as filesystem_module
from autoopt.domain.errors import ConcurrencyError, NotFoundError, StorageError
from autoopt.domain.models import PromptVersion, Scores
from autoopt.infrastructure.storage import FileSystemStorage

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
PROMPT = "wf-1/1711528915801/prompt_template/0/text"
VERSION_FILE = re.compile(r"^[1-9][0-9]*\.json$")
WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {
    f"{d}{i}" for d in ("COM", "LPT") for i in range(10)
}


def pv(n: int, prompt_id: str = PROMPT, text: str | None = None) -> PromptVersion:
    return PromptVersion(
        prompt_id=prompt_id,
        version=n,
        text=f"Summarize {{{{#sys.query#}}}} (revision {n} of {prompt_id!r})"
        if text is None
        else text,
        kind="baseline" if n == 1 else "optimized",
        created_at=EPOCH + timedelta(hours=n),
        scores=Scores(overall=50 + n, clarity=60, efficiency=70),
        parent_version=n - 1 if n > 1 else None,
    )


def save_range(storage: FileSystemStorage, prompt_id: str, last: int, first: int = 1) -> None:
    for n in range(first, last + 1):
        storage.save_version(pv(n, prompt_id))


def prompt_folders(root: Path) -> dict[str, Path]:
    """Every prompt folder under ``root``, found by walking it, keyed by its ``prompt.json`` id."""
    found: dict[str, Path] = {}
    for folder, _dirs, files in os.walk(root):
        if "prompt.json" in files:
            prompt_id = json.loads(Path(folder, "prompt.json").read_text(encoding="utf-8"))[
                "prompt_id"
            ]
            assert prompt_id not in found, f"{prompt_id!r} has two folders"
            found[prompt_id] = Path(folder)
    return found


def version_files(folder: Path) -> list[str]:
    return sorted(
        (n for n in os.listdir(folder) if VERSION_FILE.match(n)), key=lambda n: int(n[:-5])
    )


def read_index(root: Path) -> object:
    return json.loads((root / "index.json").read_text(encoding="utf-8"))


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait(timeout=60)
    with pytest.raises(ProcessLookupError):
        os.kill(process.pid, 0)  # precondition: the pid is really free
    return process.pid


# -- layout ----------------------------------------------------------------------------


def test_layout_is_index_at_root_and_one_numbered_file_per_version(tmp_path: Path) -> None:
    storage = FileSystemStorage(tmp_path)
    save_range(storage, PROMPT, 3)
    storage.close()  # writes the index updates this process still holds

    assert (tmp_path / "index.json").is_file()
    assert read_index(tmp_path) == {PROMPT: {"latest": 3, "total": 3}}
    folders = prompt_folders(tmp_path)
    assert list(folders) == [PROMPT]
    folder = folders[PROMPT]
    assert folder.parent == tmp_path.resolve(), "without sharding the prompt folder is top-level"
    assert version_files(folder) == ["1.json", "2.json", "3.json"]
    for n in (1, 2, 3):
        document = json.loads((folder / f"{n}.json").read_text(encoding="utf-8"))
        assert document["prompt_id"] == PROMPT
        assert document["version"] == n
        assert document["text"] == pv(n).text


def test_sharding_puts_the_prompt_folder_two_hashed_levels_down(tmp_path: Path) -> None:
    storage = FileSystemStorage(tmp_path, enable_sharding=True)
    ids = [PROMPT, "other prompt", "第三个"]
    for prompt_id in ids:
        save_range(storage, prompt_id, 3)

    folders = prompt_folders(tmp_path)
    assert sorted(folders) == sorted(ids)
    for prompt_id, folder in folders.items():
        first, second, _name = folder.relative_to(tmp_path.resolve()).parts
        digest = hashlib.sha256(prompt_id.encode("utf-8")).hexdigest()
        assert (first, second) == (digest[0:2], digest[2:4]), prompt_id
        assert version_files(folder) == ["1.json", "2.json", "3.json"]
        assert json.loads((folder / "2.json").read_bytes())["text"] == pv(2, prompt_id).text
    top_level = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert all(re.fullmatch(r"[0-9a-f]{2}", name) for name in top_level), top_level
    storage.close()
    assert read_index(tmp_path) == {p: {"latest": 3, "total": 3} for p in ids}


# -- hostile prompt ids ----------------------------------------------------------------

HOSTILE_IDS = [
    "../x",
    "../../etc/passwd",
    "../../../../../../../../../../tmp/escaped",
    "/abs/path",
    "a/b/c",
    "..",
    ".",
    "nul\x00byte",
    "p" * 300,
    "提" * 300,
    "CON",
    "nul",
    "COM1",
    "LPT1.txt",
    "Prompt",
    "prompt",
    "PROMPT",
    "..\\..\\x",
    "C:\\Windows\\system32",
    "name. ",
    "name...",
    "name",
    "提示词",
    "مرحبا\u202eevil.exe",
    "🚀🔥",
    "///",
    '?*<>|:"',
    "line1\nline2\tcol\r",
    " ",
    "-rf",
    "~/x",
    "$HOME",
    ".hidden",
    "index.json",
    ".lock",
]


@pytest.mark.parametrize("sharding", [False, True], ids=["flat", "sharded"])
def test_hostile_prompt_ids_stay_inside_the_store_and_read_back_exactly(
    tmp_path: Path, sharding: bool
) -> None:
    # Deep enough that any ``..`` escape still lands inside tmp_path, where the walk sees it.
    storage_dir = tmp_path / "l1" / "l2" / "l3" / "l4" / "l5" / "l6" / "l7" / "l8" / "store"
    absolute_escape = Path("/abs")
    existed_before = absolute_escape.exists()
    storage = FileSystemStorage(storage_dir, enable_sharding=sharding)
    for prompt_id in HOSTILE_IDS:
        sha = storage.save_version(pv(1, prompt_id))
        assert re.fullmatch(r"[0-9a-f]{64}", sha), prompt_id
        storage.save_version(pv(2, prompt_id))

    # Nothing was created outside storage_dir.
    root = storage_dir.resolve()
    for folder, dirs, files in os.walk(tmp_path):
        for name in dirs + files:
            path = Path(folder, name).resolve()
            if path in root.parents or path == root:
                continue
            assert path.is_relative_to(root), f"{path} is outside {root}"
    if not existed_before:
        assert not absolute_escape.exists(), "an absolute id wrote to /abs"

    # One folder per id, safe names, distinct even on a case-insensitive file system.
    folders = prompt_folders(root)
    assert sorted(folders) == sorted(HOSTILE_IDS)
    names = [f.name for f in folders.values()]
    assert len({n.lower() for n in names}) == len(HOSTILE_IDS), "two ids share a folder"
    for prompt_id, folder in folders.items():
        name = folder.name
        assert re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name), (prompt_id, name)
        assert len(name) <= 100, (prompt_id, name)
        assert name.split(".")[0].upper() not in WINDOWS_RESERVED, (prompt_id, name)
        assert version_files(folder) == ["1.json", "2.json"], prompt_id
        stored = json.loads((folder / "1.json").read_text(encoding="utf-8"))
        assert stored["prompt_id"] == prompt_id
        assert stored["text"] == pv(1, prompt_id).text

    # The ids read back exactly, from the index, from the folders, and through the API.
    assert storage.list_prompts() == sorted(HOSTILE_IDS)
    assert set(read_index(root)) == set(HOSTILE_IDS)  # type: ignore[arg-type]
    bare = FileSystemStorage(
        storage_dir, use_index=False, use_cache=False, enable_sharding=sharding
    )
    assert bare.list_prompts() == sorted(HOSTILE_IDS)
    for prompt_id in HOSTILE_IDS:
        assert bare.get_version(prompt_id, 2) == pv(2, prompt_id)
        assert bare.latest_version_number(prompt_id) == 2
    assert storage.verify() == []


# -- the index -------------------------------------------------------------------------


def populate(root: Path) -> FileSystemStorage:
    storage = FileSystemStorage(root)
    save_range(storage, "alpha", 3)
    save_range(storage, "beta", 1)
    save_range(storage, "gamma", 5)
    storage.close()  # the index file now holds every entry
    return storage


EXPECTED_INDEX = {
    "alpha": {"latest": 3, "total": 3},
    "beta": {"latest": 1, "total": 1},
    "gamma": {"latest": 5, "total": 5},
}


def test_a_missing_index_is_rebuilt_when_the_store_opens(tmp_path: Path) -> None:
    populate(tmp_path)
    (tmp_path / "index.json").unlink()
    storage = FileSystemStorage(tmp_path)
    assert read_index(tmp_path) == EXPECTED_INDEX
    assert storage.latest_version_number("gamma") == 5
    assert storage.list_prompts() == ["alpha", "beta", "gamma"]
    assert storage.verify() == []


@pytest.mark.parametrize(
    "garbage",
    [
        b"this is not json {",
        b"",
        b"\xff\xfe\x00garbage",
        b"[1, 2, 3]",
        b'{"alpha": 3}',
        b'{"alpha": {"latest": "3", "total": 3}}',
        b'{"alpha": {"latest": 3}}',
    ],
    ids=["text", "empty", "binary", "list", "flat", "string-latest", "no-total"],
)
def test_a_corrupt_index_is_rebuilt_without_a_wrong_answer(tmp_path: Path, garbage: bytes) -> None:
    populate(tmp_path)
    (tmp_path / "index.json").write_bytes(garbage)
    storage = FileSystemStorage(tmp_path)
    assert storage.latest_version_number("alpha") == 3
    assert storage.latest_version_number("gamma") == 5
    assert storage.list_prompts() == ["alpha", "beta", "gamma"]
    assert read_index(tmp_path) == EXPECTED_INDEX
    assert storage.verify() == []


def test_a_stale_index_gives_the_latest_from_the_files_and_is_repaired(tmp_path: Path) -> None:
    storage = populate(tmp_path)
    old = (tmp_path / "index.json").read_bytes()
    save_range(storage, "alpha", 7, first=4)
    (tmp_path / "index.json").write_bytes(old)  # e.g. the unsynced index update was lost

    reopened = FileSystemStorage(tmp_path)
    assert read_index(tmp_path)["alpha"] == {"latest": 3, "total": 3}  # type: ignore[index]
    assert reopened.latest_version_number("alpha") == 7
    reopened.close()
    assert read_index(tmp_path)["alpha"] == {"latest": 7, "total": 7}  # type: ignore[index]
    assert reopened.get_latest_version("alpha") == pv(7, "alpha")
    with pytest.raises(ConcurrencyError):
        reopened.save_version(pv(5, "alpha", text="would overwrite history"))
    reopened.save_version(pv(8, "alpha"))
    reopened.close()
    assert read_index(tmp_path) == {**EXPECTED_INDEX, "alpha": {"latest": 8, "total": 8}}
    assert reopened.verify() == []


def test_a_stale_index_with_a_gap_below_the_real_latest_still_gives_the_latest(
    tmp_path: Path,
) -> None:
    """BUG: the index check (``latest`` exists, ``latest + 1`` does not) is fooled by a gap.

    Versions 1..4 with 3 deleted, and an index from when 2 was the latest (a
    lost unsynced index write): 2.json exists and 3.json does not, so the stale
    2 is believed, and a new "version 3" is accepted below the real latest 4.
    """
    storage = FileSystemStorage(tmp_path)
    save_range(storage, "alpha", 2)
    old = (tmp_path / "index.json").read_bytes()
    save_range(storage, "alpha", 4, first=3)
    storage.delete_version("alpha", 3)
    (tmp_path / "index.json").write_bytes(old)

    reopened = FileSystemStorage(tmp_path)
    assert reopened.list_versions("alpha") == [1, 2, 4]
    assert reopened.latest_version_number("alpha") == 4
    with pytest.raises(ConcurrencyError):
        reopened.save_version(pv(3, "alpha", text="saved below the latest"))


def test_a_stale_index_still_lists_every_prompt(tmp_path: Path) -> None:
    """BUG: ``list_prompts`` answers from the index unchecked, so a stale one hides prompts."""
    storage = populate(tmp_path)
    old = (tmp_path / "index.json").read_bytes()
    save_range(storage, "delta", 2)
    (tmp_path / "index.json").write_bytes(old)

    reopened = FileSystemStorage(tmp_path)
    assert reopened.list_prompts() == ["alpha", "beta", "delta", "gamma"]


def test_rebuild_index_returns_the_prompt_count_and_rewrites_the_index(tmp_path: Path) -> None:
    storage = populate(tmp_path)
    save_range(storage, "emptied", 2)
    storage.delete_version("emptied", 1)
    storage.delete_version("emptied", 2)
    (tmp_path / "index.json").write_text('{"ghost": {"latest": 9, "total": 9}}', encoding="utf-8")

    assert storage.rebuild_index() == 3  # "emptied" has a folder but no versions
    assert read_index(tmp_path) == EXPECTED_INDEX
    assert storage.verify() == []
    sharded = FileSystemStorage(tmp_path / "sharded", enable_sharding=True)
    for i in range(4):
        save_range(sharded, f"p{i}", i + 1)
    assert sharded.rebuild_index() == 4
    assert read_index(tmp_path / "sharded") == {
        f"p{i}": {"latest": i + 1, "total": i + 1} for i in range(4)
    }


def test_a_read_between_a_version_write_and_its_index_update_keeps_the_total_right(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader that probes after the file landed but before the writer's index update
    must not make ``total`` count the new version twice (entries are recounted
    from the folder when the index is written).

    The interleaving is forced here in one thread by hooking the module's
    ``write_atomic``; across processes a reader hits the same window
    (``save_version`` fsyncs the folder between the rename and the index update).
    """
    writer = FileSystemStorage(tmp_path)
    reader = FileSystemStorage(tmp_path)
    writer.save_version(pv(1))
    real_write_atomic = filesystem_module.write_atomic
    seen: list[int] = []

    def write_then_read(target: Path, data: bytes, *, durable: bool = True) -> None:
        real_write_atomic(target, data, durable=durable)
        if target.name == "2.json":
            seen.append(reader.latest_version_number(PROMPT))

    monkeypatch.setattr(filesystem_module, "write_atomic", write_then_read)
    writer.save_version(pv(2))
    monkeypatch.undo()

    assert seen == [2], "precondition: the reader saw the new file"
    reader.close()
    writer.close()
    assert read_index(tmp_path) == {PROMPT: {"latest": 2, "total": 2}}
    writer.save_version(pv(3))
    writer.close()
    assert read_index(tmp_path) == {PROMPT: {"latest": 3, "total": 3}}
    assert writer.verify() == []


# -- corrupt version files -------------------------------------------------------------


def corruptions(good: bytes, other_prompt: bytes, same_prompt_v1: bytes) -> dict[str, bytes]:
    return {
        "garbage": b"definitely not a version file",
        "truncated": good[: len(good) // 2],
        "empty": b"",
        "binary": b"\x00\xff\xfe\x80" * 8,
        "wrong-schema": b'{"prompt_id": "alpha", "version": 2}',
        "another-prompt": other_prompt,
        "another-version": same_prompt_v1,
    }


CORRUPTIONS = list(corruptions(b"", b"", b""))


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_a_corrupt_version_file_is_an_error_naming_it_and_verify_lists_it(
    tmp_path: Path, kind: str
) -> None:
    storage = FileSystemStorage(tmp_path)
    save_range(storage, "alpha", 3)
    save_range(storage, "beta", 2)
    assert storage.verify() == [], "precondition: a healthy store verifies clean"
    folders = prompt_folders(tmp_path)
    target = folders["alpha"] / "2.json"
    replacement = corruptions(
        good=target.read_bytes(),
        other_prompt=(folders["beta"] / "2.json").read_bytes(),
        same_prompt_v1=(folders["alpha"] / "1.json").read_bytes(),
    )[kind]
    target.write_bytes(replacement)

    for reopened in (FileSystemStorage(tmp_path), FileSystemStorage(tmp_path, use_cache=False)):
        with pytest.raises(StorageError) as caught:
            reopened.get_version("alpha", 2)
        assert str(target) in str(caught.value), str(caught.value)
        assert not isinstance(caught.value, NotFoundError)
        # Its neighbours are unaffected.
        assert reopened.get_version("alpha", 1) == pv(1, "alpha")
        assert reopened.get_version("alpha", 3) == pv(3, "alpha")
        assert reopened.get_version("beta", 2) == pv(2, "beta")

    problems = FileSystemStorage(tmp_path).verify()
    assert len(problems) == 1, problems
    assert str(target) in problems[0]


def test_a_corrupt_latest_version_is_an_error_from_get_latest_version(tmp_path: Path) -> None:
    save_range(FileSystemStorage(tmp_path), "alpha", 2)
    target = prompt_folders(tmp_path)["alpha"] / "2.json"
    target.write_bytes(b'{"prompt_id": "alpha", "version": 2, "text": ')
    with pytest.raises(StorageError, match=re.escape(str(target))):
        FileSystemStorage(tmp_path).get_latest_version("alpha")


# -- temp files ------------------------------------------------------------------------


def test_temp_files_of_dead_writers_are_removed_when_the_store_opens(tmp_path: Path) -> None:
    storage = FileSystemStorage(tmp_path)
    save_range(storage, "alpha", 2)
    folder = prompt_folders(tmp_path)["alpha"]
    pid = dead_pid()
    dead_version = folder / f".3.json.{pid}.deadbeef.tmp"
    dead_index = tmp_path / f".index.json.{pid}.0badf00d.tmp"
    dead_version.write_bytes(b'{"half a version')
    dead_index.write_bytes(b"{")
    assert len(storage.verify()) == 2, "precondition: verify reports both temp files"

    reopened = FileSystemStorage(tmp_path)
    assert not dead_version.exists()
    assert not dead_index.exists()
    assert reopened.verify() == []
    assert reopened.list_versions("alpha") == [1, 2]
    reopened.save_version(pv(3, "alpha"))
    assert reopened.get_version("alpha", 3) == pv(3, "alpha")


def test_temp_files_of_live_writers_are_kept_and_reported(tmp_path: Path) -> None:
    storage = FileSystemStorage(tmp_path)
    save_range(storage, "alpha", 2)
    storage.close()
    folder = prompt_folders(tmp_path)["alpha"]
    mine = folder / f".3.json.{os.getpid()}.c0ffee00.tmp"
    mine.write_bytes(b"in progress")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        theirs = folder / f".3.json.{sleeper.pid}.feedface.tmp"
        theirs.write_bytes(b"in progress elsewhere")
        dead = folder / f".3.json.{dead_pid()}.deadbeef.tmp"
        dead.write_bytes(b"abandoned")

        reopened = FileSystemStorage(tmp_path)
        assert mine.exists(), "a temp file of this (live) process was removed"
        assert theirs.exists(), "a temp file of a live process was removed"
        assert not dead.exists()
        assert reopened.cleanup_temp_files() == 0
        problems = reopened.verify()
        assert len(problems) == 2, problems
        assert any(str(mine) in p and "temp file" in p for p in problems), problems
        assert any(str(theirs) in p and "temp file" in p for p in problems), problems
    finally:
        sleeper.kill()
        sleeper.wait()


def test_cleanup_temp_files_counts_what_it_removed(tmp_path: Path) -> None:
    storage = FileSystemStorage(tmp_path, enable_sharding=True)
    save_range(storage, "alpha", 1)
    save_range(storage, "beta", 1)
    pid = dead_pid()
    folders = prompt_folders(tmp_path)
    for i, folder in enumerate(folders.values()):
        (folder / f".2.json.{pid}.{i:08x}.tmp").write_bytes(b"x")
    (tmp_path / f".index.json.{pid}.ffffffff.tmp").write_bytes(b"x")
    assert storage.cleanup_temp_files() == 3
    assert storage.cleanup_temp_files() == 0
    leftovers = [n for _d, _s, files in os.walk(tmp_path) for n in files if n.endswith(".tmp")]
    assert leftovers == []


# -- the cache -------------------------------------------------------------------------


def test_cache_counts_hits_and_misses_exactly_and_evicts_the_least_recent(tmp_path: Path) -> None:
    save_range(FileSystemStorage(tmp_path), PROMPT, 3)
    storage = FileSystemStorage(tmp_path, cache_size=2)  # a fresh, empty cache
    assert (storage.hits, storage.misses, storage.get_hit_rate()) == (0, 0, 0.0)
    script = [
        # (version to get, hits, misses) after the get; the cache holds at most 2
        (1, 0, 1),  # miss            cache: 1
        (1, 1, 1),  # hit             cache: 1
        (2, 1, 2),  # miss            cache: 1 2
        (3, 1, 3),  # miss, evicts 1  cache: 2 3
        (1, 1, 4),  # miss, evicts 2  cache: 3 1
        (3, 2, 4),  # hit             cache: 1 3
        (2, 2, 5),  # miss, evicts 1  cache: 3 2
        (3, 3, 5),  # hit             cache: 2 3
        (1, 3, 6),  # miss, evicts 2  cache: 3 1
        (1, 4, 6),  # hit             cache: 3 1
    ]
    for step, (n, hits, misses) in enumerate(script, start=1):
        assert storage.get_version(PROMPT, n) == pv(n)
        assert (storage.hits, storage.misses) == (hits, misses), f"step {step}: get {n}"
        assert storage.get_hit_rate() == pytest.approx(hits / (hits + misses)), f"step {step}"
    stats = storage.get_storage_stats()
    assert (stats["cache_hits"], stats["cache_misses"], stats["cache_entries"]) == (4, 6, 2)
    assert stats["cache_hit_rate"] == round(0.4, 4)


def test_a_cache_hit_protects_an_entry_from_eviction(tmp_path: Path) -> None:
    save_range(FileSystemStorage(tmp_path), PROMPT, 3)
    storage = FileSystemStorage(tmp_path, cache_size=2)
    storage.get_version(PROMPT, 1)
    storage.get_version(PROMPT, 2)
    storage.get_version(PROMPT, 1)  # 1 is now the most recent; 2 goes next
    storage.get_version(PROMPT, 3)
    assert (storage.hits, storage.misses) == (1, 3)
    storage.get_version(PROMPT, 1)
    assert (storage.hits, storage.misses) == (2, 3), "the recently used entry was evicted"
    storage.get_version(PROMPT, 2)
    assert (storage.hits, storage.misses) == (2, 4), "the least recently used entry stayed"


def test_save_version_puts_the_saved_version_in_the_cache(tmp_path: Path) -> None:
    storage = FileSystemStorage(tmp_path, cache_size=2)
    save_range(storage, PROMPT, 3)
    assert storage.get_version(PROMPT, 3) == pv(3)
    assert storage.get_version(PROMPT, 2) == pv(2)
    assert (storage.hits, storage.misses) == (2, 0)
    assert storage.get_version(PROMPT, 1) == pv(1)  # evicted by the save of 3
    assert (storage.hits, storage.misses) == (2, 1)


def test_a_deleted_version_leaves_the_cache(tmp_path: Path) -> None:
    storage = FileSystemStorage(tmp_path)
    save_range(storage, PROMPT, 2)
    storage.delete_version(PROMPT, 2)
    with pytest.raises(NotFoundError):
        storage.get_version(PROMPT, 2)
    assert storage.hits == 0


def test_cached_versions_cannot_be_mutated(tmp_path: Path) -> None:
    storage = FileSystemStorage(tmp_path)
    save_range(storage, PROMPT, 1)
    first = storage.get_version(PROMPT, 1)
    with pytest.raises((ValidationError, TypeError)):
        first.text = "changed behind the store's back"  # type: ignore[misc]
    with pytest.raises((ValidationError, TypeError)):
        first.scores.overall = 0  # type: ignore[misc, union-attr]
    second = storage.get_version(PROMPT, 1)
    assert storage.hits == 2
    assert first == second == pv(1)
    assert FileSystemStorage(tmp_path, use_cache=False).get_version(PROMPT, 1) == pv(1)


def test_without_cache_every_get_is_a_miss(tmp_path: Path) -> None:
    storage = FileSystemStorage(tmp_path, use_cache=False)
    save_range(storage, PROMPT, 2)
    for _ in range(3):
        assert storage.get_version(PROMPT, 1) == pv(1)
        assert storage.get_version(PROMPT, 2) == pv(2)
    assert (storage.hits, storage.misses, storage.get_hit_rate()) == (0, 6, 0.0)
    assert storage.get_storage_stats()["cache_entries"] == 0


# -- stats -----------------------------------------------------------------------------


@pytest.mark.parametrize("sharding", [False, True], ids=["flat", "sharded"])
def test_storage_stats_count_prompts_versions_and_bytes(tmp_path: Path, sharding: bool) -> None:
    storage = FileSystemStorage(tmp_path, enable_sharding=sharding)
    assert storage.get_storage_stats()["prompts"] == 0
    assert storage.get_storage_stats()["versions"] == 0
    assert storage.get_storage_stats()["bytes"] == 0
    save_range(storage, "alpha", 3)
    save_range(storage, "beta", 2)

    def on_disk() -> int:
        return sum(
            (folder / name).stat().st_size
            for folder in prompt_folders(tmp_path).values()
            for name in version_files(folder)
        )

    stats = storage.get_storage_stats()
    assert (stats["prompts"], stats["versions"]) == (2, 5)
    assert stats["bytes"] > 0
    assert stats["bytes"] == on_disk()
    assert stats["storage_dir"] == str(tmp_path.resolve())
    assert stats["sharding"] is sharding
    assert stats["index"] is True

    storage.delete_version("alpha", 3)
    after = storage.get_storage_stats()
    assert (after["prompts"], after["versions"]) == (2, 4)
    assert after["bytes"] == on_disk() < stats["bytes"]


def test_storage_dir_that_cannot_be_created_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    with pytest.raises(StorageError, match=re.escape(str(blocker))):
        FileSystemStorage(blocker / "store")


def test_index_survives_a_reopen_without_rescan(tmp_path: Path) -> None:
    """A second store on the same folder sees the first one's versions at once."""
    first = FileSystemStorage(tmp_path)
    second = FileSystemStorage(tmp_path)
    save_range(first, PROMPT, 2)
    assert second.latest_version_number(PROMPT) == 2
    save_range(second, PROMPT, 4, first=3)
    assert first.latest_version_number(PROMPT) == 4
    assert first.list_prompts() == second.list_prompts() == [PROMPT]
