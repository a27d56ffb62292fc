"""The canonical store of prompt versions: one JSON file per version.

Layout::

    {storage_dir}/index.json                 {prompt_id: {"latest": n, "total": k}}
    {storage_dir}/{prompt dir}/prompt.json   {"prompt_id": ...}: maps the folder back to its id
    {storage_dir}/{prompt dir}/{n}.json      version n, n = 1, 2, 3 ... without gaps
    {storage_dir}/{prompt dir}/{n}.deleted   tombstone of a version removed on purpose
    {storage_dir}/{prompt dir}/.lock         the prompt's lock file

With sharding the prompt folders sit under ``{h[0:2]}/{h[2:4]}/`` of the id's
hash. Version files are written durably (fsync of file and folder) under the
prompt's lock, and a new version must be the next number after every version
and tombstone there is. That makes the numbers a gap-free run, so the latest
version is found by starting at the index's hint and probing forward until a
number has neither file nor tombstone: a few ``stat`` calls, whatever the
number of versions, and right even when the index is stale (see ``index.py``).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from autoopt.domain.errors import ConcurrencyError, NotFoundError, StorageError
from autoopt.domain.models import PromptVersion
from autoopt.infrastructure.storage.atomic import (
    TEMP_SUFFIX,
    fsync_dir,
    process_alive,
    temp_owner,
    write_atomic,
)
from autoopt.infrastructure.storage.codec import content_sha256, decode_version, encode_version
from autoopt.infrastructure.storage.index import VersionIndex
from autoopt.infrastructure.storage.locks import LockTable
from autoopt.infrastructure.storage.lru import LRUCache
from autoopt.infrastructure.storage.naming import prompt_dir_name, shard_parts

logger = logging.getLogger(__name__)

INDEX_FILE = "index.json"
META_FILE = "prompt.json"
LOCK_FILE = ".lock"
TOMBSTONE_SUFFIX = ".deleted"
_VERSION_FILE = re.compile(r"^([1-9][0-9]*)\.json$")
_NUMBERED_FILE = re.compile(r"^([1-9][0-9]*)(\.json|\.deleted)$")

# Locks belong to the process: every store object on the same folder shares them.
_LOCKS = LockTable()


class FileSystemStorage:
    def __init__(
        self,
        storage_dir: str | os.PathLike[str],
        use_index: bool = True,
        use_cache: bool = True,
        cache_size: int = 128,
        enable_sharding: bool = False,
    ) -> None:
        self.storage_dir = Path(storage_dir).resolve()
        self.use_index = use_index
        self.enable_sharding = enable_sharding
        self._cache: LRUCache[tuple[str, int], PromptVersion] = LRUCache(
            cache_size if use_cache else 0
        )
        try:
            self.storage_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"{self.storage_dir}: cannot create ({exc.strerror})") from exc
        self.cleanup_temp_files()
        self._index = (
            VersionIndex(
                self.storage_dir / INDEX_FILE,
                _LOCKS.get(self.storage_dir / ".index.lock"),
                lambda prompt_id: _latest_and_total(self._scan(self._prompt_dir(prompt_id))[0]),
                lambda: (
                    (prompt_id, _latest_and_total(self._scan(folder)[0]))
                    for prompt_id, folder in self._walk_prompt_dirs()
                ),
            )
            if use_index
            else None
        )

    def close(self) -> None:
        """Write this process's pending index updates (also done at exit).

        Never raises: a command that already failed on a full or read-only disk
        must end with that one error, and a stale index is only a slower cache.
        """
        if self._index is not None:
            self._index.try_flush()

    # -- cache counters -------------------------------------------------------------

    @property
    def hits(self) -> int:
        return self._cache.hits

    @property
    def misses(self) -> int:
        return self._cache.misses

    def get_hit_rate(self) -> float:
        return self._cache.get_hit_rate()

    # -- versions -------------------------------------------------------------------

    @contextmanager
    def locked(self, prompt_id: str) -> Iterator[None]:
        folder = self._prompt_dir(prompt_id)
        self._ensure_prompt_dir(folder, prompt_id)
        with _LOCKS.get(folder / LOCK_FILE).hold():
            yield

    def save_version(self, version: PromptVersion) -> str:
        """Write a new version durably; returns the SHA-256 of the stored bytes."""
        prompt_id, number = version.prompt_id, version.version
        with self.locked(prompt_id):
            target = self._prompt_dir(prompt_id) / f"{number}.json"
            _latest, high = self._head(prompt_id)
            if number != high + 1:
                raise ConcurrencyError(
                    f"prompt {prompt_id!r} is at version {high}; the next version is "
                    f"{high + 1}, not {number}"
                )
            data = encode_version(version)
            try:
                write_atomic(target, data, durable=True)
            except OSError as exc:
                raise StorageError(f"{target}: cannot write ({exc.strerror})") from exc
            self._cache.put((prompt_id, number), version)
            if self._index is not None:
                self._index.note_saved(prompt_id, number)
            return content_sha256(data)

    def get_version(self, prompt_id: str, version: int) -> PromptVersion:
        cached = self._cache.get((prompt_id, version))
        if cached is not None:
            return cached
        path = self._prompt_dir(prompt_id) / f"{version}.json"
        loaded = self._read_version(path, prompt_id, version)
        self._cache.put((prompt_id, version), loaded)
        return loaded

    def content_sha256(self, prompt_id: str, version: int) -> str:
        """SHA-256 of the stored bytes, as ``VersionCreated`` records it."""
        path = self._prompt_dir(prompt_id) / f"{version}.json"
        try:
            return content_sha256(path.read_bytes())
        except FileNotFoundError:
            raise NotFoundError(f"prompt {prompt_id!r} has no version {version}") from None
        except OSError as exc:
            raise StorageError(f"{path}: cannot read ({exc.strerror})") from exc

    def get_latest_version(self, prompt_id: str) -> PromptVersion | None:
        latest = self.latest_version_number(prompt_id)
        return self.get_version(prompt_id, latest) if latest else None

    def latest_version_number(self, prompt_id: str) -> int:
        return self._head(prompt_id)[0]

    def next_version_number(self, prompt_id: str) -> int:
        """One past every version and tombstone: the only number a save accepts."""
        return self._head(prompt_id)[1] + 1

    def list_versions(self, prompt_id: str) -> list[int]:
        return self._scan(self._prompt_dir(prompt_id))[0]

    def delete_version(self, prompt_id: str, version: int) -> None:
        """Remove a version's file, leaving a tombstone ``{n}.deleted`` in its place.

        The tombstone is written first, so a crash in between leaves a file
        marked deleted (harmless), never a file gone without a trace: ``fsck``
        tells a removed version from a lost one, and the number is never reused.
        """
        with self.locked(prompt_id):
            folder = self._prompt_dir(prompt_id)
            path = folder / f"{version}.json"
            if not path.exists():
                raise NotFoundError(f"prompt {prompt_id!r} has no version {version}")
            try:
                write_atomic(folder / f"{version}{TOMBSTONE_SUFFIX}", b"", durable=True)
                path.unlink()
            except OSError as exc:
                raise StorageError(f"{path}: cannot delete ({exc.strerror})") from exc
            fsync_dir(folder)
            self._cache.discard((prompt_id, version))
            if self._index is not None:
                self._index.note_found(prompt_id, *_latest_and_total(self._scan(folder)[0]))
                self._index.flush()

    def deleted_versions(self, prompt_id: str) -> list[int]:
        return self._scan(self._prompt_dir(prompt_id))[1]

    def list_prompts(self) -> list[str]:
        """Every prompt with at least one version file, read from the folders."""
        return sorted(p for p, folder in self._walk_prompt_dirs() if self._scan(folder)[0])

    # -- maintenance ----------------------------------------------------------------

    def rebuild_index(self) -> int:
        """Rebuild ``index.json`` from the files; returns the number of prompts."""
        if self._index is None:
            return 0
        return self._index.rebuild()

    def cleanup_temp_files(self) -> int:
        """Remove temp files left by writers that died; returns how many."""
        removed = 0
        for folder in [self.storage_dir, *(f for _, f in self._walk_prompt_dirs())]:
            for path in _temp_files(folder):
                owner = temp_owner(path)
                if owner is None or not process_alive(owner):
                    path.unlink(missing_ok=True)
                    removed += 1
        if removed:
            logger.info("removed %d temp file(s) left by crashed writers", removed)
        return removed

    def get_storage_stats(self) -> dict[str, Any]:
        prompts = versions = size = 0
        for _, folder in self._walk_prompt_dirs():
            files = [e for e in os.scandir(folder) if _VERSION_FILE.match(e.name)]
            prompts += bool(files)
            versions += len(files)
            size += sum(e.stat().st_size for e in files)
        return {
            "storage_dir": str(self.storage_dir),
            "prompts": prompts,
            "versions": versions,
            "bytes": size,
            "sharding": self.enable_sharding,
            "index": self._index is not None,
            "cache_size": self._cache.capacity,
            "cache_entries": len(self._cache),
            "cache_hits": self.hits,
            "cache_misses": self.misses,
            "cache_hit_rate": round(self.get_hit_rate(), 4),
        }

    def verify(self) -> list[str]:
        """Every problem found, one line each; an empty list means all is well.

        This process's pending index updates are written first, so the index
        is compared as it stands once every writer has flushed.
        """
        problems = [f"{p}: temp file left by a writer" for p in _temp_files(self.storage_dir)]
        index = None
        if self._index is not None:
            self._index.flush()
            index = self._index.read_file()
            if index is None:
                problems.append(f"{self._index.path}: missing or not an index")
        seen: set[str] = set()
        for prompt_id, folder in self._walk_prompt_dirs():
            versions = self._scan(folder)[0]
            for number in versions:
                try:
                    self._read_version(folder / f"{number}.json", prompt_id, number)
                except StorageError as exc:
                    problems.append(str(exc))
            problems.extend(f"{p}: temp file left by a writer" for p in _temp_files(folder))
            if index is not None and versions:
                seen.add(prompt_id)
                expected = {"latest": versions[-1], "total": len(versions)}
                if index.get(prompt_id) != expected:
                    problems.append(f"index.json: entry for {prompt_id!r} is not {expected}")
        if index is not None:
            problems.extend(
                f"index.json: {p!r} has no versions on disk" for p in sorted(set(index) - seen)
            )
        return problems

    # -- internals ------------------------------------------------------------------

    def _prompt_dir(self, prompt_id: str) -> Path:
        if self.enable_sharding:
            first, second = shard_parts(prompt_id)
            return self.storage_dir / first / second / prompt_dir_name(prompt_id)
        return self.storage_dir / prompt_dir_name(prompt_id)

    def _ensure_prompt_dir(self, folder: Path, prompt_id: str) -> None:
        meta = folder / META_FILE
        if meta.exists():
            return
        try:
            folder.mkdir(parents=True, exist_ok=True)
            document = json.dumps({"prompt_id": prompt_id}, ensure_ascii=False)
            write_atomic(meta, document.encode("utf-8"), durable=True)
        except OSError as exc:
            raise StorageError(f"{folder}: cannot create ({exc.strerror})") from exc

    def _read_version(self, path: Path, prompt_id: str, number: int) -> PromptVersion:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"prompt {prompt_id!r} has no version {number}") from None
        except OSError as exc:
            raise StorageError(f"{path}: cannot read ({exc.strerror})") from exc
        version = decode_version(data, path)
        if (version.prompt_id, version.version) != (prompt_id, number):
            raise StorageError(
                f"{path}: corrupt version file (holds {version.prompt_id!r} "
                f"version {version.version})"
            )
        return version

    def _head(self, prompt_id: str) -> tuple[int, int]:
        """(latest version, highest number taken by a version or a tombstone).

        Starts at the index's hint and probes forward while a number has a
        file or a tombstone; numbers have no gaps, so the first free number
        ends the run. Without a usable hint the folder is listed.
        """
        folder = self._prompt_dir(prompt_id)
        entry = self._index.entry(prompt_id) if self._index is not None else None
        if entry is None and self._index is not None and not folder.exists():
            return 0, 0
        start = entry["latest"] if entry else 0
        if start and (folder / f"{start}.json").exists():
            latest = high = start
            total = entry["total"] if entry else 0
            while True:
                if (folder / f"{high + 1}.json").exists():
                    high = latest = high + 1
                    total += 1
                elif (folder / f"{high + 1}{TOMBSTONE_SUFFIX}").exists():
                    high += 1
                else:
                    break
            if latest != start and self._index is not None:
                self._index.note_found(prompt_id, latest, total)
            return latest, high
        versions, deleted = self._scan(folder)
        if self._index is not None:
            self._index.note_found(prompt_id, *_latest_and_total(versions))
        latest = versions[-1] if versions else 0
        return latest, max(latest, deleted[-1] if deleted else 0)

    def _scan(self, folder: Path) -> tuple[list[int], list[int]]:
        """The version numbers and the tombstone numbers in a folder, sorted."""
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            return [], []
        versions: list[int] = []
        deleted: list[int] = []
        for name in names:
            match = _NUMBERED_FILE.match(name)
            if match:
                (versions if match.group(2) == ".json" else deleted).append(int(match.group(1)))
        return sorted(versions), sorted(deleted)

    def _walk_prompt_dirs(self) -> Iterator[tuple[str, Path]]:
        depth = 2 if self.enable_sharding else 0
        folders = [self.storage_dir]
        for _ in range(depth):
            folders = [Path(e.path) for f in folders for e in _subdirs(f)]
        for parent in folders:
            for entry in _subdirs(parent):
                meta = Path(entry.path) / META_FILE
                try:
                    prompt_id = json.loads(meta.read_text(encoding="utf-8"))["prompt_id"]
                except (OSError, ValueError, KeyError, TypeError):
                    continue
                if isinstance(prompt_id, str):
                    yield prompt_id, Path(entry.path)


def _latest_and_total(versions: list[int]) -> tuple[int, int]:
    return (versions[-1] if versions else 0), len(versions)


def _subdirs(folder: Path) -> list[os.DirEntry[str]]:
    try:
        return [e for e in os.scandir(folder) if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []


def _temp_files(folder: Path) -> list[Path]:
    try:
        return [Path(e.path) for e in os.scandir(folder) if e.name.endswith(TEMP_SUFFIX)]
    except FileNotFoundError:
        return []
