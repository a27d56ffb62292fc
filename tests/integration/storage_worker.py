"""A worker process for ``test_storage_processes``: one real OS process per writer or reader.

Run from the repository root as ``python -m tests.integration.storage_worker MODE ...``.
Every mode opens its own ``FileSystemStorage`` on the shared folder, announces
that it is ready by creating ``ready-1-<name>`` in the sync folder, and waits
for the test to create ``go-1`` before it touches the store, so that all
workers start at the same moment. Its results go to stdout as one JSON
document. An unexpected exception ends the process with a traceback on stderr
and a non-zero exit code; a ``StorageError`` met by a reader is an observation
and is reported in the JSON instead.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from autoopt.domain.errors import StorageError
from autoopt.domain.models import PromptVersion
from autoopt.infrastructure.storage import FileSystemStorage
from tests.process_barrier import POLL_SECONDS, Barrier, run_mode, worker_parser

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def worker_version(prompt_id: str, number: int, text: str, index: int) -> PromptVersion:
    return PromptVersion(
        prompt_id=prompt_id,
        version=number,
        text=text,
        kind="optimized",
        created_at=EPOCH + timedelta(seconds=index),
        strategy="process-test",
        parent_version=number - 1 if number > 1 else None,
    )


def open_storage(args: argparse.Namespace) -> FileSystemStorage:
    storage = FileSystemStorage(args.dir, enable_sharding=args.sharding)
    storage.latest_version_number(args.prompt)  # read the index now, not after "go"
    return storage


def save(args: argparse.Namespace, barrier: Barrier) -> dict[str, Any]:
    """``count`` saves, each numbered ``latest + 1`` and saved under the prompt's lock."""
    storage = open_storage(args)
    barrier.arrive_and_wait(1)
    saved: list[dict[str, Any]] = []
    for i in range(args.count):
        text = f"{args.name} save {i}: 改进 🚀"
        with storage.locked(args.prompt):
            number = storage.latest_version_number(args.prompt) + 1
            sha = storage.save_version(worker_version(args.prompt, number, text, i))
        saved.append({"version": number, "text": text, "sha256": sha})
    return {"pid": os.getpid(), "saved": saved}


def read(args: argparse.Namespace, barrier: Barrier) -> dict[str, Any]:
    """Poll the latest version, without the lock, until ``expect`` or ``read_for`` seconds.

    Reports every distinct latest number in the order seen, and every read
    that failed or returned a version other than the one asked for.
    """
    storage = open_storage(args)
    barrier.arrive_and_wait(1)
    seen: list[int] = []
    problems: list[str] = []
    polls = 0
    latest = 0
    deadline = time.monotonic() + args.read_for
    while latest < args.expect and time.monotonic() < deadline:
        polls += 1
        try:
            latest = storage.latest_version_number(args.prompt)
            if latest:
                loaded = storage.get_version(args.prompt, latest)
                if (loaded.prompt_id, loaded.version) != (args.prompt, latest):
                    problems.append(f"asked for {latest}, got {loaded.version}")
        except StorageError as exc:
            problems.append(f"{type(exc).__name__}: {exc}")
        if not seen or seen[-1] != latest:
            seen.append(latest)
        time.sleep(POLL_SECONDS)
    return {"pid": os.getpid(), "seen": seen, "problems": problems, "polls": polls}


MODES = {"save": save, "read": read}


def main(argv: list[str]) -> int:
    parser = worker_parser("storage_worker", MODES)
    parser.add_argument("--dir", required=True, type=Path, help="the storage folder")
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--sharding", action="store_true")
    parser.add_argument("--count", type=int, default=0, help="save: versions to save")
    parser.add_argument("--expect", type=int, default=0, help="read: latest to wait for")
    parser.add_argument("--read-for", type=float, default=30.0, help="read: seconds at most")
    return run_mode(parser.parse_args(argv), MODES)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
