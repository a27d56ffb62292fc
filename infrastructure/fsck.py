"""Agreement between the version files and the event log, checked and repaired.

The same checks hold for the database store (``storage.backend: database``),
its rows standing for the files; temp files and the index exist only in the
file store, so only there does ``repair`` clean or rebuild them.

The files are canonical for content; the log is canonical for what happened.
They disagree after a crash between a file write and its event (repairable:
the event is appended from the file), after a temp file or a stale index is
left behind (repairable), or after damage: a corrupt file, or a file whose
bytes differ from the SHA-256 its event recorded (reported, never "repaired"
by guessing).

The read models are checked too: after a crash between an append and the
projection update they stand behind the log. That is repairable by applying
the missing events (``projections catch-up``, which ``repair`` runs last).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from autoopt.domain.errors import NotFoundError, StorageError
from autoopt.domain.events import VersionCreated, VersionRolledBack
from autoopt.domain.ports import EventLog
from autoopt.domain.versions import VersionManager
from autoopt.infrastructure.projections.runner import ProjectionRunner
from autoopt.infrastructure.storage import FileSystemStorage
from autoopt.infrastructure.storage.database import DatabaseStorage


@dataclass(frozen=True)
class Finding:
    subject: str
    problem: str


def check(
    storage: FileSystemStorage | DatabaseStorage, log: EventLog, projections: ProjectionRunner
) -> list[Finding]:
    findings = [Finding("storage", line) for line in storage.verify()]
    findings.extend(
        Finding(
            f"projection {status.name}",
            f"at position {status.checkpoint}, the log at {status.head}: "
            f"{status.lag} event(s) not applied",
        )
        for status in projections.status()
        if status.lag > 0
    )
    recorded: dict[str, dict[int, str]] = defaultdict(dict)
    for record in log.read_all():
        event = record.event
        if isinstance(event, VersionCreated | VersionRolledBack):
            recorded[event.prompt_id][event.version] = event.content_sha256
    for prompt_id in sorted(set(storage.list_prompts()) | set(recorded)):
        files = storage.list_versions(prompt_id)
        events = recorded.get(prompt_id, {})
        for number in files:
            if number not in events:
                findings.append(Finding(prompt_id, f"version {number} has no event in the log"))
                continue
            try:
                sha = storage.content_sha256(prompt_id, number)
            except (NotFoundError, StorageError) as exc:
                findings.append(Finding(prompt_id, str(exc)))
                continue
            if sha != events[number]:
                findings.append(
                    Finding(prompt_id, f"version {number}: file differs from the recorded SHA-256")
                )
        removed = set(storage.deleted_versions(prompt_id))
        for number in sorted(set(events) - set(files) - removed):
            findings.append(Finding(prompt_id, f"version {number} is in the log but has no file"))
    return findings


def repair(
    storage: FileSystemStorage | DatabaseStorage,
    versions: VersionManager,
    projections: ProjectionRunner,
) -> list[str]:
    """Fix what can be fixed without guessing; returns what was done."""
    done = []
    if isinstance(storage, FileSystemStorage):
        removed = storage.cleanup_temp_files()
        if removed:
            done.append(f"removed {removed} temp file(s)")
        storage.rebuild_index()
        done.append("rebuilt index.json")
    for prompt_id in storage.list_prompts():
        for number in versions.reconcile(prompt_id):
            done.append(f"{prompt_id}: recorded version {number} in the log")
    # Last, so that the events reconcile just appended reach the read models too.
    applied = max(projections.catch_up().values(), default=0)
    if applied:
        done.append(f"read models: applied {applied} event(s) they were behind")
    return done
