"""The canonical store of prompt versions: one JSON file per version.

Layout::

    {storage_dir}/index.json                 {prompt_id: {"latest": n, "total": k}}
    {storage_dir}/{prompt dir}/prompt.json   {"prompt_id": ...}: maps the folder back to its id
    {storage_dir}/{prompt dir}/{n}.json      version n, n = 1, 2, 3 ...
    {storage_dir}/{prompt dir}/deleted.json  numbers whose files were removed on purpose
    {storage_dir}/{prompt dir}/.lock         the prompt's lock file

With sharding the prompt folders sit under ``{h[0:2]}/{h[2:4]}/`` of the id's
hash. Version files are written durably (fsync of file and folder) under the
prompt's lock. The index is a cache of what the files say: it is written
atomically but not fsynced, and every answer it gives is checked against the
files (version ``latest`` exists, ``latest + 1`` does not) before it is used,
so a missing, stale or corrupt index costs a rebuild, never a wrong answer.
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
from autoopt.infrastructure.storage.locks import LockTable
from autoopt.infrastructure.storage.lru import LRUCache
from autoopt.infrastructure.storage.naming import prompt_dir_name, shard_parts

logger = logging.getLogger(__name__)

INDEX_FILE = "index.json"
META_FILE = "prompt.json"
DELETED_FILE = "deleted.json"
LOCK_FILE = ".lock"
_VERSION_FILE = re.compile(r"^([1-9][0-9]*)\.json$")

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
        self._index: dict[str, dict[str, int]] = {}
        self._index_stamp: tuple[int, int, int] | None = None
        try:
            self.storage_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"{self.storage_dir}: cannot create ({exc.strerror})") from exc
        self.cleanup_temp_files()
        if use_index and not self._index_path.exists():
            self.rebuild_index()

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
            folder = self._prompt_dir(prompt_id)
            target = folder / f"{number}.json"
            latest = self.latest_version_number(prompt_id)
            if number <= latest or target.exists():
                raise ConcurrencyError(
                    f"prompt {prompt_id!r} already has version {latest}; cannot save {number}"
                )
            data = encode_version(version)
            try:
                write_atomic(target, data, durable=True)
            except OSError as exc:
                raise StorageError(f"{target}: cannot write ({exc.strerror})") from exc
            self._cache.put((prompt_id, number), version)
            self._update_index(prompt_id, latest=number, total_delta=1)
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
        """The highest version, from the index when the files confirm it, else by listing."""
        folder = self._prompt_dir(prompt_id)
        if self.use_index:
            entry = self._load_index().get(prompt_id)
            if entry is not None:
                latest = entry["latest"]
                if (folder / f"{latest}.json").exists() and not (
                    folder / f"{latest + 1}.json"
                ).exists():
                    return latest
            elif not folder.exists():
                return 0
        versions = self._scan_versions(folder)
        if self.use_index:
            self._set_index_entry(prompt_id, versions)
        return versions[-1] if versions else 0

    def list_versions(self, prompt_id: str) -> list[int]:
        return self._scan_versions(self._prompt_dir(prompt_id))

    def delete_version(self, prompt_id: str, version: int) -> None:
        """Remove a version's file; its number is remembered in ``deleted.json``.

        The record is written before the file goes, so a crash in between
        leaves a file marked deleted (harmless), never a file gone unrecorded,
        and ``fsck`` can tell a removed version from a lost one.
        """
        with self.locked(prompt_id):
            folder = self._prompt_dir(prompt_id)
            path = folder / f"{version}.json"
            if not path.exists():
                raise NotFoundError(f"prompt {prompt_id!r} has no version {version}")
            deleted = sorted({*self.deleted_versions(prompt_id), version})
            try:
                write_atomic(folder / DELETED_FILE, json.dumps(deleted).encode(), durable=True)
                path.unlink()
            except OSError as exc:
                raise StorageError(f"{path}: cannot delete ({exc.strerror})") from exc
            fsync_dir(folder)
            self._cache.discard((prompt_id, version))
            if self.use_index:
                self._set_index_entry(prompt_id, self._scan_versions(folder))

    def deleted_versions(self, prompt_id: str) -> list[int]:
        path = self._prompt_dir(prompt_id) / DELETED_FILE
        try:
            numbers = json.loads(path.read_bytes())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise StorageError(f"{path}: unreadable record of deleted versions") from exc
        if not isinstance(numbers, list) or not all(isinstance(n, int) for n in numbers):
            raise StorageError(f"{path}: unreadable record of deleted versions")
        return numbers

    def list_prompts(self) -> list[str]:
        if self.use_index:
            return sorted(self._load_index())
        return sorted(prompt_id for prompt_id, _ in self._walk_prompt_dirs())

    # -- maintenance ----------------------------------------------------------------

    def rebuild_index(self) -> int:
        """Rebuild ``index.json`` from the files; returns the number of prompts."""
        with _LOCKS.get(self.storage_dir / ".index.lock").hold():
            index = {}
            for prompt_id, folder in self._walk_prompt_dirs():
                versions = self._scan_versions(folder)
                if versions:
                    index[prompt_id] = {"latest": versions[-1], "total": len(versions)}
            self._write_index(index, durable=True)
        return len(index)

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
            prompts += 1
            for entry in os.scandir(folder):
                if _VERSION_FILE.match(entry.name):
                    versions += 1
                    size += entry.stat().st_size
        return {
            "storage_dir": str(self.storage_dir),
            "prompts": prompts,
            "versions": versions,
            "bytes": size,
            "sharding": self.enable_sharding,
            "index": self.use_index,
            "cache_size": self._cache.capacity,
            "cache_entries": len(self._cache),
            "cache_hits": self.hits,
            "cache_misses": self.misses,
            "cache_hit_rate": round(self.get_hit_rate(), 4),
        }

    def verify(self) -> list[str]:
        """Every problem found, one line each; an empty list means all is well."""
        problems = []
        index = self._read_index_file() if self.use_index else None
        seen: set[str] = set()
        for prompt_id, folder in self._walk_prompt_dirs():
            seen.add(prompt_id)
            versions = self._scan_versions(folder)
            for number in versions:
                try:
                    self._read_version(folder / f"{number}.json", prompt_id, number)
                except StorageError as exc:
                    problems.append(str(exc))
            problems.extend(f"{p}: temp file left by a writer" for p in _temp_files(folder))
            if index is not None and versions:
                expected = {"latest": versions[-1], "total": len(versions)}
                if index.get(prompt_id) != expected:
                    problems.append(f"index.json: entry for {prompt_id!r} is not {expected}")
        if index is not None:
            problems.extend(
                f"index.json: {p!r} has no versions on disk" for p in sorted(set(index) - seen)
            )
        return problems

    # -- internals ------------------------------------------------------------------

    @property
    def _index_path(self) -> Path:
        return self.storage_dir / INDEX_FILE

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

    def _scan_versions(self, folder: Path) -> list[int]:
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            return []
        return sorted(int(m.group(1)) for m in map(_VERSION_FILE.match, names) if m)

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

    def _read_index_file(self) -> dict[str, dict[str, int]] | None:
        try:
            document = json.loads(self._index_path.read_bytes())
        except (OSError, ValueError):
            return None
        if not isinstance(document, dict) or not all(
            isinstance(v, dict)
            and isinstance(v.get("latest"), int)
            and isinstance(v.get("total"), int)
            for v in document.values()
        ):
            return None
        return document

    def _load_index(self, *, fresh: bool = False) -> dict[str, dict[str, int]]:
        """The parsed index, re-read when the file changed (or always, with ``fresh``).

        Writers pass ``fresh``: a stat stamp can repeat (coarse mtimes, reused
        inodes), and a stale copy written back would undo another writer's entry.
        """
        try:
            stat = self._index_path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        except FileNotFoundError:
            stamp = None
        if not fresh and stamp is not None and stamp == self._index_stamp:
            return self._index
        index = self._read_index_file() if stamp is not None else None
        if index is None:
            logger.warning("%s is missing or corrupt; rebuilding it", self._index_path)
            self.rebuild_index()
            index = self._read_index_file() or {}
        self._index = index
        self._index_stamp = stamp
        return index

    def _update_index(self, prompt_id: str, *, latest: int, total_delta: int) -> None:
        if not self.use_index:
            return
        with _LOCKS.get(self.storage_dir / ".index.lock").hold():
            index = dict(self._load_index(fresh=True))
            entry = index.get(prompt_id, {"latest": 0, "total": 0})
            index[prompt_id] = {
                "latest": max(entry["latest"], latest),
                "total": entry["total"] + total_delta,
            }
            self._write_index(index, durable=False)

    def _set_index_entry(self, prompt_id: str, versions: list[int]) -> None:
        with _LOCKS.get(self.storage_dir / ".index.lock").hold():
            index = dict(self._load_index(fresh=True))
            if versions:
                index[prompt_id] = {"latest": versions[-1], "total": len(versions)}
            elif index.pop(prompt_id, None) is None:
                return
            self._write_index(index, durable=False)

    def _write_index(self, index: dict[str, dict[str, int]], *, durable: bool) -> None:
        data = json.dumps(index, ensure_ascii=False, sort_keys=True).encode("utf-8")
        try:
            write_atomic(self._index_path, data, durable=durable)
            stat = self._index_path.stat()
        except OSError as exc:
            raise StorageError(f"{self._index_path}: cannot write ({exc.strerror})") from exc
        self._index = index
        self._index_stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)


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
