"""A version store on a full or read-only disk: one clear error, and nothing stored is lost.

Three ways the disk says no, each through the real ``autoopt optimize`` in a
subprocess after an earlier run stored versions:

* a simulated full disk: ``tests.faults.enospc_autoopt`` makes the store's write
  seam fail with ``ENOSPC`` after N writes (always runs, at several N);
* a real full disk: a small tmpfs the test mounts on the storage folder and
  fills with a filler file (root only, like the next one);
* a real read-only disk: the same tmpfs remounted read-only.

Each must end with exit 1, one ``Error:`` line naming the store path and the
cause, and no traceback; the earlier versions keep their bytes and read back
through ``autoopt versions show``; the log keeps every earlier event;
``autoopt fsck --repair`` leaves a store that ``storage verify`` and ``fsck``
pass, without temp files; and once there is room again the same run succeeds.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.faults.workspace import Finished, Workspace

EXAMPLE = REPO_ROOT / "examples" / "support_bot.yml"
ENOSPC_PROGRAM = "tests.faults.enospc_autoopt"
FULL = os.strerror(errno.ENOSPC)  # "No space left on device"
READ_ONLY = os.strerror(errno.EROFS)  # "Read-only file system"


def app_copy(folder: Path, name: str) -> Path:
    """The example app under a new app name, so that every prompt id is new to the store."""
    document = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    document["app"]["name"] = name
    path = folder / f"{name.replace(' ', '_')}.yml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    return path


def stored_texts(workspace: Workspace, prompt_ids: list[str]) -> dict[tuple[str, int], str]:
    """Every version of these prompts as ``autoopt versions`` reads it back."""
    texts = {}
    for prompt_id in prompt_ids:
        listed = workspace.invoke("versions", "list", prompt_id, "--format", "json")
        assert listed.exit_code == 0, listed.output
        for row in json.loads(listed.stdout):
            shown = workspace.invoke("versions", "show", prompt_id, str(row["version"]))
            assert shown.exit_code == 0, shown.output
            texts[(prompt_id, row["version"])] = shown.stdout
    return texts


def first_run(workspace: Workspace, folder: Path) -> dict[str, Any]:
    """A successful run whose versions every later failure must leave alone."""
    done = workspace.run("optimize", str(app_copy(folder, "Support Bot")), "--format", "json")
    assert done.returncode == 0, done.describe()
    report = json.loads(done.stdout)
    prompt_ids = [p["prompt_id"] for p in report["prompts"]]
    return {
        "snapshot": workspace.snapshot(),
        "texts": stored_texts(workspace, prompt_ids),
        "prompt_ids": prompt_ids,
    }


def assert_one_clear_error(done: Finished, store: Path, cause: str) -> None:
    assert done.returncode == 1, done.describe()
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, done.describe()
    assert str(store) in errors[0] and cause in errors[0], done.describe()
    assert "Traceback" not in done.stderr + done.stdout, done.describe()


def assert_earlier_work_intact(workspace: Workspace, before: dict[str, Any]) -> None:
    after = workspace.snapshot()
    old_files = before["snapshot"]["files"]
    # Every file stored before keeps its bytes (index.json is a cache and may be rewritten).
    changed = {
        name
        for name, digest in old_files.items()
        if name != "index.json" and after["files"].get(name) != digest
    }
    assert not changed, f"stored files changed or vanished: {sorted(changed)}"
    for table, rows in before["snapshot"]["tables"].items():
        if table == "events":  # append-only: every earlier event is still there, unchanged
            assert set(rows) <= set(after["tables"][table])
    assert stored_texts(workspace, before["prompt_ids"]) == before["texts"]


def assert_repaired_and_clean(workspace: Workspace, before: dict[str, Any]) -> None:
    repaired = workspace.run("fsck", "--repair")
    assert repaired.returncode == 0, repaired.describe()
    for check in (("storage", "verify"), ("fsck",)):
        done = workspace.run(*check)
        assert (done.returncode, done.stdout) == (0, "ok\n"), done.describe()
    leftovers = [p for p in workspace.storage_dir.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []
    assert_earlier_work_intact(workspace, before)


def assert_next_run_succeeds(workspace: Workspace, app: Path) -> None:
    again = workspace.run("optimize", str(app), "--format", "json")
    assert again.returncode == 0, again.describe()
    prompt_ids = [p["prompt_id"] for p in json.loads(again.stdout)["prompts"]]
    assert stored_texts(workspace, prompt_ids)  # the new versions read back
    done = workspace.run("fsck")
    assert (done.returncode, done.stdout) == (0, "ok\n"), done.describe()


# -- a simulated full disk: ENOSPC at the write seam ---------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("writes_before_full", [0, 1, 3, 12, 20])
def test_enospc_at_the_write_seam(
    workspace: Workspace, tmp_path: Path, writes_before_full: int
) -> None:
    before = first_run(workspace, tmp_path)
    app = app_copy(tmp_path, "Second Bot")

    failed = workspace.run(
        "optimize",
        str(app),
        program=ENOSPC_PROGRAM,
        extra_env={"AUTOOPT_ENOSPC_AFTER": str(writes_before_full)},
    )

    assert_one_clear_error(failed, workspace.storage_dir, FULL)
    assert not app.with_name(f"{app.stem}.optimized.yml").exists()
    assert_earlier_work_intact(workspace, before)
    assert_repaired_and_clean(workspace, before)
    assert_next_run_succeeds(workspace, app)


# -- a real tmpfs, full or read-only ---------------------------------------------------------


@pytest.fixture
def small_disk(workspace: Workspace) -> Iterator[Path]:
    """A 1 MiB tmpfs mounted on the workspace's storage folder, unmounted at the end."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; the ENOSPC seam test covers a full disk")
    folder = workspace.storage_dir
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"this machine does not permit mounting a tmpfs: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)


def fill(folder: Path) -> Path:
    """Write a filler file until the file system has no byte left; returns it."""
    filler = folder / "filler.bin"
    with filler.open("wb", buffering=0) as out:
        for chunk in (64 * 1024, 4096, 1):
            try:
                while True:
                    out.write(b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    probe = folder / "probe"
    with pytest.raises(OSError) as refused:
        probe.write_bytes(b"x" * 4096)
    probe.unlink(missing_ok=True)
    assert refused.value.errno == errno.ENOSPC
    return filler


@pytest.mark.slow
def test_a_full_tmpfs_store(workspace: Workspace, tmp_path: Path, small_disk: Path) -> None:
    before = first_run(workspace, tmp_path)
    filler = fill(small_disk)
    before["snapshot"] = workspace.snapshot()
    app = app_copy(tmp_path, "Second Bot")

    failed = workspace.run("optimize", str(app))

    assert_one_clear_error(failed, small_disk, FULL)
    assert not app.with_name(f"{app.stem}.optimized.yml").exists()
    assert_earlier_work_intact(workspace, before)
    filler.unlink()
    del before["snapshot"]["files"]["filler.bin"]
    assert_repaired_and_clean(workspace, before)
    assert_next_run_succeeds(workspace, app)


def remount(folder: Path, mode: str) -> None:
    done = subprocess.run(
        ["mount", "-o", f"remount,{mode}", str(folder)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_a_read_only_tmpfs_store(workspace: Workspace, tmp_path: Path, small_disk: Path) -> None:
    before = first_run(workspace, tmp_path)
    app = app_copy(tmp_path, "Second Bot")
    remount(small_disk, "ro")
    try:
        failed = workspace.run("optimize", str(app))
        assert_one_clear_error(failed, small_disk, READ_ONLY)
        # Reading a read-only store still works, and changes nothing.
        assert_earlier_work_intact(workspace, before)
        for check in (("storage", "verify"), ("fsck",)):
            done = workspace.run(*check)
            assert (done.returncode, done.stdout) == (0, "ok\n"), done.describe()
        assert not app.with_name(f"{app.stem}.optimized.yml").exists()
    finally:
        remount(small_disk, "rw")
    assert_repaired_and_clean(workspace, before)
    assert_next_run_succeeds(workspace, app)


def test_the_filler_really_fills(tmp_path: Path) -> None:
    """Guards the helper: on a normal folder ``fill`` would never end, so it is only
    ever used on the small tmpfs; here its probe is checked against a real ENOSPC."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    folder = tmp_path / "disk"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)]).returncode:
        pytest.skip("this machine does not permit mounting a tmpfs")
    try:
        fill(folder)
        assert shutil.disk_usage(folder).free < 4096
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)
