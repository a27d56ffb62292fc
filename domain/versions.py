"""VersionManager: numbering, history, comparison, rollback, over the storage and the log.

Every version is a file first and an event second, both under the prompt's
lock: ``VersionCreated`` (or ``VersionRolledBack``) goes to the stream
``prompt-<prompt_id>`` with ``stream_version`` equal to the version number, so
the log itself refuses two versions with one number. A crash between the two
leaves a file the log does not know; the next write to that prompt records it
first (:meth:`VersionManager.reconcile`), so nothing is lost and the numbers
stay in step. History is append-only: a rollback is a new version with the old
text.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from datetime import datetime

from autoopt.domain.errors import NotFoundError, StorageError
from autoopt.domain.events import DomainEvent, VersionCreated, VersionRolledBack
from autoopt.domain.models import PromptVersion, Scores, VersionKind
from autoopt.domain.ports import Clock, EventLog, IdFactory, VersionStorage


def prompt_stream(prompt_id: str) -> str:
    return f"prompt-{prompt_id}"


@dataclass(frozen=True)
class VersionComparison:
    prompt_id: str
    old: PromptVersion
    new: PromptVersion
    score_deltas: dict[str, float] | None
    diff: str


class VersionManager:
    def __init__(
        self, storage: VersionStorage, log: EventLog, clock: Clock, ids: IdFactory
    ) -> None:
        self._storage = storage
        self._log = log
        self._clock = clock
        self._ids = ids

    def create_version(
        self,
        prompt_id: str,
        text: str,
        *,
        kind: VersionKind,
        scores: Scores | None = None,
        strategy: str | None = None,
        parent_version: int | None = None,
        run_id: str | None = None,
        note: str = "",
        causation_id: str | None = None,
    ) -> PromptVersion:
        if kind == "rollback":
            raise ValueError("a rollback version is made by rollback()")
        with self._storage.locked(prompt_id):
            version = self._next_version(
                prompt_id, text, kind, scores, strategy, parent_version, run_id, note
            )
            self._record(version, version.created_at, causation_id)
            return version

    def rollback(self, prompt_id: str, target: int, *, reason: str = "") -> PromptVersion:
        """Make the text of version ``target`` the latest again, as a new version."""
        # Looked up before locking: the lock makes the prompt's folder, and a
        # rollback of a prompt that does not exist must leave nothing behind.
        self._storage.get_version(prompt_id, target)
        with self._storage.locked(prompt_id):
            restored = self._storage.get_version(prompt_id, target)
            version = self._next_version(
                prompt_id,
                restored.text,
                "rollback",
                restored.scores,
                restored.strategy,
                target,
                None,
                reason or f"rollback to version {target}",
            )
            self._record(version, version.created_at)
            return version

    def reconcile(self, prompt_id: str) -> list[int]:
        """Record in the log every stored version it does not know; returns their numbers.

        Only a crash between a file write and its event leaves such a version,
        and it is always the newest: one file beyond the stream's last version.
        """
        with self._storage.locked(prompt_id):
            recorded = self._log.stream_version(prompt_stream(prompt_id))
            missing = [n for n in self._storage.list_versions(prompt_id) if n > recorded]
            for number in missing:
                if number != recorded + 1:
                    raise StorageError(
                        f"prompt {prompt_id!r}: version file {number} follows log version "
                        f"{recorded}; the versions between are missing"
                    )
                version = self._storage.get_version(prompt_id, number)
                sha = self._storage.content_sha256(prompt_id, number)
                self._append(version, sha, self._clock.now())
                recorded = number
            return missing

    def get_version(self, prompt_id: str, version: int) -> PromptVersion:
        return self._storage.get_version(prompt_id, version)

    def get_latest_version(self, prompt_id: str) -> PromptVersion:
        latest = self._storage.get_latest_version(prompt_id)
        if latest is None:
            raise NotFoundError(f"no versions of prompt {prompt_id!r}")
        return latest

    def latest_or_none(self, prompt_id: str) -> PromptVersion | None:
        return self._storage.get_latest_version(prompt_id)

    def find_text(self, prompt_id: str, text: str) -> PromptVersion | None:
        """The newest stored version holding exactly ``text``, if any."""
        for number in sorted(self._storage.list_versions(prompt_id), reverse=True):
            version = self._storage.get_version(prompt_id, number)
            if version.text == text:
                return version
        return None

    def get_version_history(
        self, prompt_id: str, limit: int | None = None, offset: int = 0
    ) -> list[PromptVersion]:
        """Newest first; versions removed by cleanup are skipped."""
        numbers = sorted(self._storage.list_versions(prompt_id), reverse=True)
        window = numbers[offset : None if limit is None else offset + limit]
        return [self._storage.get_version(prompt_id, n) for n in window]

    def compare_versions(self, prompt_id: str, v1: int, v2: int) -> VersionComparison:
        old = self._storage.get_version(prompt_id, v1)
        new = self._storage.get_version(prompt_id, v2)
        deltas = None
        if old.scores is not None and new.scores is not None:
            deltas = {
                name: round(getattr(new.scores, name) - getattr(old.scores, name), 4)
                for name in ("overall", "clarity", "efficiency")
            }
        diff = "".join(
            difflib.unified_diff(
                _diff_lines(old.text),
                _diff_lines(new.text),
                fromfile=f"{prompt_id}@{v1}",
                tofile=f"{prompt_id}@{v2}",
            )
        )
        return VersionComparison(prompt_id, old, new, deltas, diff)

    def get_best_version(self, prompt_id: str) -> PromptVersion:
        """Highest overall score; the newer wins a tie; unscored versions count last."""
        history = self.get_version_history(prompt_id)
        if not history:
            raise NotFoundError(f"no versions of prompt {prompt_id!r}")
        return max(
            history,
            key=lambda v: (v.scores is not None, v.scores.overall if v.scores else 0, v.version),
        )

    def prune(self, prompt_id: str, keep: int) -> list[int]:
        """Remove the files of all but the newest ``keep`` versions; returns their numbers.

        The latest and the best version always stay, and so do the events:
        the log still tells what every removed version was.
        """
        if keep < 1:
            raise ValueError("keep at least one version")
        with self._storage.locked(prompt_id):
            numbers = sorted(self._storage.list_versions(prompt_id), reverse=True)
            if len(numbers) <= keep:
                return []
            protected = {*numbers[:keep], self.get_best_version(prompt_id).version}
            doomed = sorted(n for n in numbers if n not in protected)
            for number in doomed:
                self._storage.delete_version(prompt_id, number)
            return doomed

    def _next_version(
        self,
        prompt_id: str,
        text: str,
        kind: VersionKind,
        scores: Scores | None,
        strategy: str | None,
        parent_version: int | None,
        run_id: str | None,
        note: str,
    ) -> PromptVersion:
        self.reconcile(prompt_id)
        number = self._storage.next_version_number(prompt_id)
        recorded = self._log.stream_version(prompt_stream(prompt_id))
        if recorded >= number:
            # Files the log knows of are gone without a tombstone: damage, not
            # history. Numbering on would hide it; fsck names what is missing.
            raise StorageError(
                f"prompt {prompt_id!r}: the log has version {recorded} but the store "
                f"ends at {number - 1}; run 'autoopt fsck'"
            )
        return PromptVersion(
            prompt_id=prompt_id,
            version=number,
            text=text,
            kind=kind,
            created_at=self._clock.now(),
            scores=scores,
            strategy=strategy,
            parent_version=parent_version,
            run_id=run_id,
            note=note,
        )

    def _record(
        self, version: PromptVersion, occurred_at: datetime, causation_id: str | None = None
    ) -> None:
        """File first, then event: the caller holds the prompt's lock."""
        sha = self._storage.save_version(version)
        self._append(version, sha, occurred_at, causation_id)

    def _append(
        self,
        version: PromptVersion,
        sha: str,
        occurred_at: datetime,
        causation_id: str | None = None,
    ) -> None:
        event: DomainEvent
        if version.kind == "rollback":
            assert version.parent_version is not None
            event = VersionRolledBack(
                event_id=self._ids.new_id(),
                occurred_at=occurred_at,
                causation_id=causation_id,
                prompt_id=version.prompt_id,
                version=version.version,
                restored_version=version.parent_version,
                previous_version=version.version - 1,
                content_sha256=sha,
                reason=version.note,
            )
        else:
            event = VersionCreated(
                event_id=self._ids.new_id(),
                occurred_at=occurred_at,
                correlation_id=version.run_id,
                causation_id=causation_id,
                prompt_id=version.prompt_id,
                version=version.version,
                kind=version.kind,
                content_sha256=sha,
                scores=version.scores,
                strategy=version.strategy,
                parent_version=version.parent_version,
                run_id=version.run_id,
            )
        self._log.append(prompt_stream(version.prompt_id), [event], version.version - 1)


def _diff_lines(text: str) -> list[str]:
    """Lines for a unified diff; a last line without a newline is marked as diff(1) does."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n\\ No newline at end of file\n"
    return lines
