"""A worker process for ``test_event_log_processes``: one real OS process per writer or reader.

Run from the repository root as ``python -m tests.integration.event_log_worker MODE ...``.
Every mode opens its own engine on the database, announces that it is ready by
creating ``ready-<round>-<name>`` in the sync folder, and waits for the test to
create ``go-<round>`` before it touches the log, so that all workers start at
the same moment. Its results go to stdout as one JSON document. An unexpected
exception ends the process with a traceback on stderr and a non-zero exit code;
a ``ConcurrencyError`` in ``contend`` mode is an expected outcome and is
reported in the JSON instead.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from autoopt.domain.errors import ConcurrencyError
from autoopt.domain.events import PromptExtracted
from autoopt.infrastructure.db import open_database
from autoopt.infrastructure.event_store import SqlEventLog
from autoopt.infrastructure.settings import DatabaseSettings
from tests.factories import prompt_extracted
from tests.process_barrier import POLL_SECONDS, Barrier, run_mode, worker_parser

WRITE_PAUSE_SECONDS = 0.001


def open_log(url: str) -> SqlEventLog:
    log = SqlEventLog(open_database(DatabaseSettings(url=url)))
    log.last_position()  # connect now, so that the first append after "go" is not slower
    return log


def write(args: argparse.Namespace, barrier: Barrier) -> dict[str, Any]:
    """Append ``count`` single-event batches to one stream, each with the exact expected version."""
    log = open_log(args.db)
    barrier.arrive_and_wait(1)
    positions: list[int] = []
    event_ids: list[str] = []
    for version in range(1, args.count + 1):
        event = prompt_extracted(args.stream, version, f"{args.name} event {version}")
        positions.extend(log.append(args.stream, [event], expected_version=version - 1))
        event_ids.append(str(event.event_id))
        # A moment between appends, as a service has: without it the writer holding
        # SQLite's lock takes it again before the others wake from their busy
        # waits, and the writers run one after another instead of together.
        time.sleep(WRITE_PAUSE_SECONDS)
    return {"positions": positions, "event_ids": event_ids}


def tail(args: argparse.Namespace, barrier: Barrier) -> dict[str, Any]:
    """Poll ``read_all(after_position=last_seen)`` until position ``expect`` was seen.

    Records every event in the order it was seen, and how many polls found
    something new: the log must have grown under the reader's eyes for the
    observation to mean anything. It stops at position ``expect`` even if it
    saw fewer events (a skipped position is never read again), or after
    ``tail_for`` seconds, and reports what it saw either way.
    """
    log = open_log(args.db)
    barrier.arrive_and_wait(1)
    observed: list[list[Any]] = []
    last_seen = 0
    polls = growing_polls = 0
    deadline = time.monotonic() + args.tail_for
    while last_seen < args.expect and time.monotonic() < deadline:
        batch = list(log.read_all(after_position=last_seen))
        polls += 1
        if batch:
            growing_polls += 1
            observed.extend(
                [r.position, r.stream_id, r.stream_version, str(r.event.event_id)] for r in batch
            )
            last_seen = batch[-1].position
        else:
            time.sleep(POLL_SECONDS)
    return {"observed": observed, "polls": polls, "growing_polls": growing_polls}


def contend(args: argparse.Namespace, barrier: Barrier) -> dict[str, Any]:
    """One append per round, each released by its own ``go-<round>``; conflicts are reported."""
    log = open_log(args.db)
    rounds = json.loads(Path(args.plan).read_text(encoding="utf-8"))
    outcomes: list[dict[str, Any]] = []
    for round_, step in enumerate(rounds, start=1):
        event = PromptExtracted.model_validate(step["event"])
        barrier.arrive_and_wait(round_)
        try:
            positions = log.append(args.stream, [event], expected_version=step["expected"])
        except ConcurrencyError as exc:
            outcomes.append({"ok": False, "error_type": type(exc).__name__, "message": str(exc)})
        else:
            outcomes.append({"ok": True, "positions": positions, "event_id": str(event.event_id)})
    return {"outcomes": outcomes}


def open_and_append(args: argparse.Namespace, barrier: Barrier) -> dict[str, Any]:
    """Open (create and migrate) a database nobody has created yet, then append to a new stream."""
    barrier.arrive_and_wait(1)
    log = SqlEventLog(open_database(DatabaseSettings(url=args.db)))
    event = prompt_extracted(args.stream, 1, f"{args.name} first event")
    return {"positions": log.append(args.stream, [event], expected_version=0)}


MODES = {"write": write, "tail": tail, "contend": contend, "open-append": open_and_append}


def main(argv: list[str]) -> int:
    parser = worker_parser("event_log_worker", MODES)
    parser.add_argument("--db", required=True, help="database URL")
    parser.add_argument("--stream", default="")
    parser.add_argument("--count", type=int, default=0, help="write: events to append")
    parser.add_argument("--expect", type=int, default=0, help="tail: last position to wait for")
    parser.add_argument("--tail-for", type=float, default=30.0, help="tail: seconds at most")
    parser.add_argument("--plan", default="", help="contend: JSON file, one step per round")
    return run_mode(parser.parse_args(argv), MODES)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
