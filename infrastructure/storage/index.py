"""``index.json``: ``{prompt_id: {"latest": n, "total": k}}``, a cache of what the files say.

The index is where a lookup of a prompt's latest version starts, so it costs a
few ``stat`` calls instead of listing a folder. It is never the last word: the
store probes the files forward from the index's ``latest`` (see
``FileSystemStorage._head``), so an index that is missing, corrupt, or behind
the files (another process's unflushed saves, a crash, an old copy put back)
still gives the right answer, and version numbers have no gaps for the probe to
fall into (deleted versions leave a tombstone).

Writes are batched: a save updates this process's view at once and the file at
most every ``FLUSH_INTERVAL`` seconds (at once for a prompt the file does not
list yet, on delete, on ``close`` and at exit). A flush re-reads the file under
its lock and recomputes every entry it changes from the folder, so entries in
the file are exact when written, whoever else wrote in between.
"""

from __future__ import annotations

import atexit
import json
import logging
import time
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path

from autoopt.domain.errors import StorageError
from autoopt.infrastructure.storage.atomic import write_atomic
from autoopt.infrastructure.storage.locks import FileLock

logger = logging.getLogger(__name__)

Entry = dict[str, int]
FLUSH_INTERVAL = 0.5


class VersionIndex:
    def __init__(
        self,
        path: Path,
        lock: FileLock,
        count_versions: Callable[[str], tuple[int, int]],
        all_prompts: Callable[[], Iterable[tuple[str, tuple[int, int]]]],
    ) -> None:
        """``count_versions(prompt_id)`` gives (latest, total) from the folder;
        ``all_prompts()`` gives that for every prompt folder there is."""
        self.path = path
        self._lock = lock
        self._count_versions = count_versions
        self._all_prompts = all_prompts
        self._on_file: dict[str, Entry] = {}
        self._stamp: tuple[int, int, int] | None = None
        self._local: dict[str, Entry] = {}
        self._last_flush = time.monotonic()
        self._warned = False
        if not path.exists():
            self.rebuild()
        else:
            self._reload()
        atexit.register(_flush_at_exit, weakref.ref(self))

    def entry(self, prompt_id: str) -> Entry | None:
        found = self._local.get(prompt_id) or self._on_file.get(prompt_id)
        if found is None and self._reload():
            found = self._on_file.get(prompt_id)
        return found

    def note_saved(self, prompt_id: str, number: int) -> None:
        entry = self.entry(prompt_id) or {"latest": 0, "total": 0}
        # A reader may have counted this version already (it probed after the
        # file appeared); only a save past the known latest adds to the total.
        if entry["latest"] < number:
            self._local[prompt_id] = {"latest": number, "total": entry["total"] + 1}
        new_prompt = prompt_id not in self._on_file
        if new_prompt or time.monotonic() - self._last_flush >= FLUSH_INTERVAL:
            # The version file is already durable: failing the save now would leave
            # a stored version its caller believes was never written (no event).
            self.try_flush()

    def try_flush(self) -> None:
        """``flush``, but a failure (disk full, read-only store) is a warning, not an error.

        The index is a cache of what the files say, so a stale one costs a folder
        listing, never a wrong answer; the entries stay pending for the next flush.
        """
        try:
            self.flush()
        except (OSError, StorageError) as exc:  # OSError: the lock file, as at exit before
            if not self._warned:  # once: a full disk fails every later flush the same way
                logger.warning("%s is behind the version files: %s", self.path, exc)
            self._warned = True

    def note_found(self, prompt_id: str, latest: int, total: int) -> None:
        """What a look at the folder showed; a prompt with no versions has latest 0."""
        self._local[prompt_id] = {"latest": latest, "total": total}

    def flush(self) -> None:
        if not self._local:
            return
        with self._lock.hold():
            entries = self.read_file()
            if entries is None:
                self._rebuild_locked()
                return
            for prompt_id in list(self._local):
                latest, total = self._count_versions(prompt_id)
                if latest:
                    entries[prompt_id] = {"latest": latest, "total": total}
                else:
                    entries.pop(prompt_id, None)
            self._write(entries)

    def rebuild(self) -> int:
        with self._lock.hold():
            return self._rebuild_locked()

    def read_file(self) -> dict[str, Entry] | None:
        """The file's entries, or None when it is missing or not an index."""
        try:
            document = json.loads(self.path.read_bytes())
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

    def _rebuild_locked(self) -> int:
        entries = {
            prompt_id: {"latest": latest, "total": total}
            for prompt_id, (latest, total) in self._all_prompts()
            if latest
        }
        self._write(entries, durable=True)
        return len(entries)

    def _reload(self) -> bool:
        """Read the file again if it changed; True when it did."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return False
        stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if stamp == self._stamp:
            return False
        entries = self.read_file()
        if entries is None:
            logger.warning("%s is corrupt; rebuilding it from the version files", self.path)
            self.rebuild()
            return True
        self._on_file, self._stamp = entries, stamp
        return True

    def _write(self, entries: dict[str, Entry], *, durable: bool = False) -> None:
        data = json.dumps(entries, ensure_ascii=False, sort_keys=True).encode("utf-8")
        try:
            write_atomic(self.path, data, durable=durable)
            stat = self.path.stat()
        except OSError as exc:
            raise StorageError(f"{self.path}: cannot write ({exc.strerror})") from exc
        self._on_file = entries
        self._stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        self._local.clear()
        self._last_flush = time.monotonic()


def _flush_at_exit(ref: weakref.ref[VersionIndex]) -> None:
    index = ref()
    if index is None or not index.path.parent.is_dir():
        return  # the store itself is gone (a temporary folder): nothing to keep
    index.try_flush()
