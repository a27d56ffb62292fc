"""The test process's side of the real-process tests: start workers, release them, collect results.

Each worker is a separate OS process (``sys.executable -m <worker module>``, run
from the repository root) that announces itself with ``ready-<round>-<name>``
in the sync folder and waits until the test creates ``go-<round>`` (the
worker's side is ``tests.process_barrier``). A worker that crashes or hangs
fails the test with its exit code, stderr and stdout.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Worker:
    name: str
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    def describe(self) -> str:
        stderr = self.stderr.read_text(errors="replace").strip() or "(empty)"
        stdout = self.stdout.read_text(errors="replace").strip()[:2000] or "(empty)"
        return (
            f"--- worker {self.name}: exit code {self.process.poll()} ---\n"
            f"stderr:\n{stderr}\nstdout:\n{stdout}"
        )


class Workers:
    """Worker processes, the file barrier that releases them, and their results.

    ``module`` is the worker to run; ``options`` go to every worker, before the
    ones given to ``start``. A worker waits at most ``start_timeout +
    run_timeout`` seconds for a go signal. Used as a context manager: whatever
    happens, no worker outlives the test.
    """

    def __init__(
        self,
        folder: Path,
        module: str,
        options: Sequence[str],
        *,
        start_timeout: float,
        run_timeout: float,
    ) -> None:
        self.folder = folder
        self.module = module
        self.options = list(options)
        self.start_timeout = start_timeout
        self.run_timeout = run_timeout
        self.sync = folder / "sync"
        self.sync.mkdir(parents=True)
        self.started: list[Worker] = []

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.kill_all()

    def start(self, mode: str, name: str, *options: str) -> None:
        stdout, stderr = self.folder / f"{name}.out", self.folder / f"{name}.err"
        command = [
            sys.executable,
            "-m",
            self.module,
            mode,
            *self.options,
            f"--sync={self.sync}",
            f"--name={name}",
            f"--timeout={self.start_timeout + self.run_timeout}",
            *options,
        ]
        with stdout.open("wb") as out, stderr.open("wb") as err:
            process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=out, stderr=err)
        self.started.append(Worker(name, process, stdout, stderr))

    def wait_ready(self, round_: int) -> None:
        """Until every worker waits at the barrier of ``round_``; fails if one dies first."""
        deadline = time.monotonic() + self.start_timeout
        waiting = list(self.started)
        while waiting:
            waiting = [w for w in waiting if not (self.sync / f"ready-{round_}-{w.name}").exists()]
            dead = [w for w in waiting if w.process.poll() is not None]
            if dead:
                self.fail(f"worker(s) exited before reaching round {round_}", dead)
            if time.monotonic() > deadline:
                self.fail(
                    f"worker(s) not ready for round {round_} in {self.start_timeout} s", waiting
                )
            time.sleep(0.01)

    def go(self, round_: int) -> None:
        (self.sync / f"go-{round_}").touch()

    def release(self, round_: int = 1) -> None:
        """Wait until every worker is at the barrier of ``round_``, then open it."""
        self.wait_ready(round_)
        self.go(round_)

    def results(self) -> dict[str, dict[str, Any]]:
        """Each worker's JSON result, once all have exited with code 0."""
        deadline = time.monotonic() + self.run_timeout
        for worker in self.started:
            try:
                worker.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                hung = [w for w in self.started if w.process.poll() is None]
                self.fail(f"worker(s) still running after {self.run_timeout} s", hung)
        failed = [w for w in self.started if w.process.returncode != 0]
        if failed:
            self.fail("worker(s) failed", failed)
        return {w.name: json.loads(w.stdout.read_text()) for w in self.started}

    def fail(self, reason: str, culprits: list[Worker]) -> None:
        self.kill_all()
        pytest.fail(f"{reason}:\n" + "\n".join(w.describe() for w in culprits), pytrace=False)

    def kill_all(self) -> None:
        for worker in self.started:
            if worker.process.poll() is None:
                worker.process.kill()
        for worker in self.started:
            worker.process.wait()
