"""What must hold after a crash, checked through the CLI the way an operator would.

``recover`` runs ``fsck``, ``fsck --repair``, then ``fsck``, ``storage verify``
and ``projections status`` against a workspace, and asserts the promises a
crash may not break: every version the log records has its file, the only
disagreements are the kinds a crash can cause (and the repair fixes them all),
and no temp file is left. It returns the kinds of disagreement it met, so a
suite can say what its crashes actually exercised.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path

from autoopt.infrastructure.storage.atomic import TEMP_SUFFIX
from autoopt.infrastructure.storage.naming import prompt_dir_name
from tests.faults.workspace import Workspace

#: What a crash may leave, by the words of fsck's line: kind -> marker.
CRASH_DISAGREEMENTS = {
    "version file without its event": "has no event in the log",
    "stale index": "index.json",
    "read models behind the log": "event(s) not applied",
}


def recorded_versions(workspace: Workspace) -> list[tuple[str, int]]:
    """(prompt id, version) of every VersionCreated and VersionRolledBack in the log."""
    if not workspace.db_file.exists():
        return []
    connection = sqlite3.connect(f"file:{workspace.db_file}?mode=ro", uri=True)
    try:
        rows = connection.execute(
            "SELECT payload FROM events "
            "WHERE event_type IN ('VersionCreated', 'VersionRolledBack') ORDER BY position"
        ).fetchall()
    except sqlite3.OperationalError:
        return []  # killed before the schema was made: nothing recorded
    finally:
        connection.close()
    versions = []
    for (payload,) in rows:
        data = json.loads(payload)
        versions.append((data["prompt_id"], int(data["version"])))
    return versions


def missing_version_files(workspace: Workspace) -> list[tuple[str, int]]:
    """Recorded versions with no file: the one thing a crash must never cause."""
    missing = []
    for prompt_id, number in recorded_versions(workspace):
        folder = workspace.storage_dir / prompt_dir_name(prompt_id)
        if not (folder / f"{number}.json").exists():
            missing.append((prompt_id, number))
    return missing


def temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(f"*{TEMP_SUFFIX}") if p.is_file()]


def recover(workspace: Workspace, context: str) -> Counter[str]:
    """Check and repair after a crash; assert everything is clean afterwards."""
    missing = missing_version_files(workspace)
    assert missing == [], f"{context}: versions in the log without a file: {missing}"

    check = workspace.invoke("fsck")
    assert check.exception is None or isinstance(check.exception, SystemExit), (
        f"{context}: fsck crashed: {check.exception!r}\n{check.output}"
    )
    met: Counter[str] = Counter()
    if check.exit_code == 1:
        for line in check.stdout.splitlines():
            kinds = [k for k, marker in CRASH_DISAGREEMENTS.items() if marker in line]
            assert kinds, f"{context}: fsck found what a crash cannot explain: {line}"
            met[kinds[0]] += 1
        assert check.stderr.startswith("Error: "), f"{context}: {check.stderr}"
    else:
        assert check.exit_code == 0 and check.stdout == "ok\n", f"{context}: {check.output}"

    repaired = workspace.invoke("fsck", "--repair")
    assert repaired.exit_code == 0, f"{context}: fsck --repair: {repaired.output}"
    assert repaired.stdout.endswith("ok\n"), f"{context}: {repaired.output}"

    assert workspace.invoke("fsck").stdout == "ok\n", f"{context}: fsck after repair"
    assert workspace.invoke("storage", "verify").stdout == "ok\n", f"{context}: storage verify"
    status = workspace.invoke("projections", "status", "--format", "json")
    lags = {row["projection"]: row["lag"] for row in json.loads(status.stdout)}
    assert set(lags.values()) == {0}, f"{context}: projections behind after repair: {lags}"
    leftovers = temp_files(workspace.storage_dir)
    assert leftovers == [], f"{context}: temp files survived the repair: {leftovers}"
    assert missing_version_files(workspace) == [], f"{context}: repair lost a version file"
    return met
