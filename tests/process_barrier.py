"""The worker's side of the real-process tests: the file barrier, and the worker's command line.

A worker runs from the repository root as ``python -m tests.integration.<worker>
MODE ...``. It announces that it is ready for a round by creating
``ready-<round>-<name>`` in the sync folder, and waits for the test process to
create ``go-<round>`` before it goes on, so that all workers start at the same
moment. Its result goes to stdout as one JSON document. The test process's
side is ``tests.processes``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

POLL_SECONDS = 0.001


class Barrier:
    """The worker's side of the file barrier the test process controls."""

    def __init__(self, folder: Path, name: str, timeout: float) -> None:
        self.folder = folder
        self.name = name
        self.timeout = timeout

    def arrive_and_wait(self, round_: int) -> None:
        (self.folder / f"ready-{round_}-{self.name}").touch()
        go = self.folder / f"go-{round_}"
        deadline = time.monotonic() + self.timeout
        while not go.exists():
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"{self.name}: no go signal for round {round_} after {self.timeout} s"
                )
            time.sleep(POLL_SECONDS)


Mode = Callable[[argparse.Namespace, Barrier], dict[str, Any]]


def worker_parser(prog: str, modes: Mapping[str, Mode]) -> argparse.ArgumentParser:
    """A parser with the arguments every worker takes: the mode, the barrier, the name, the wait."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("mode", choices=sorted(modes))
    parser.add_argument("--sync", required=True, type=Path, help="barrier folder")
    parser.add_argument("--name", required=True)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds for any wait")
    return parser


def run_mode(args: argparse.Namespace, modes: Mapping[str, Mode]) -> int:
    """Run the chosen mode behind the barrier and write its result to stdout as JSON."""
    barrier = Barrier(args.sync, args.name, args.timeout)
    result = modes[args.mode](args, barrier)
    json.dump(result, sys.stdout)
    return 0
