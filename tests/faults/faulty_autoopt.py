"""``autoopt`` with one crash injected at a chosen seam, for the crash harness.

Run as ``python -m tests.faults.faulty_autoopt ARGS...`` with
``AUTOOPT_TEST_FAULT`` set to one of:

``after-version-file:N``
    SIGKILL right after the N-th version file is durably written, before its
    ``VersionCreated`` event is appended: the store holds a version the log
    does not know.
``before-projection``
    SIGKILL after the command appended its events, at the moment the read
    models would be brought up to date: the log is ahead of the projections.

The real code runs unchanged around the seam; the process dies as it would
from a power cut or ``kill -9``, without unwinding, flushing or cleaning up.

``AUTOOPT_TEST_GATE=<folder>:<name>`` holds the command at a file barrier
(:mod:`tests.process_barrier`) after the imports, so that concurrent runs
start their work at the same moment instead of a start-up apart.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from autoopt.cli.main import main
from autoopt.infrastructure.bootstrap import Container
from autoopt.infrastructure.storage import FileSystemStorage
from tests.process_barrier import Barrier

GATE_TIMEOUT = 120.0


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _after_version_file(count: int) -> None:
    save = FileSystemStorage.save_version
    written = 0

    def save_then_die(self: FileSystemStorage, version: Any) -> str:
        nonlocal written
        sha = save(self, version)
        written += 1
        if written == count:
            _die()
        return sha

    FileSystemStorage.save_version = save_then_die  # type: ignore[method-assign]


def _before_projection() -> None:
    catch_up = Container.catch_up

    def die_if_appended(self: Container) -> None:
        if "event_log" in self.__dict__ and self.event_log.appended:
            _die()
        catch_up(self)

    Container.catch_up = die_if_appended  # type: ignore[method-assign]


def install(fault: str) -> None:
    name, _, argument = fault.partition(":")
    if name == "after-version-file":
        _after_version_file(int(argument))
    elif name == "before-projection":
        _before_projection()
    else:
        raise SystemExit(f"unknown AUTOOPT_TEST_FAULT {fault!r}")


def wait_at_gate(gate: str) -> None:
    # The command imports these lazily; loading them first keeps start-up out of the race.
    import openai  # noqa: F401

    import autoopt.infrastructure.bootstrap  # noqa: F401

    folder, _, name = gate.rpartition(":")
    Barrier(Path(folder), name, GATE_TIMEOUT).arrive_and_wait(1)


if __name__ == "__main__":
    if "AUTOOPT_TEST_FAULT" in os.environ:
        install(os.environ["AUTOOPT_TEST_FAULT"])
    if "AUTOOPT_TEST_GATE" in os.environ:
        wait_at_gate(os.environ["AUTOOPT_TEST_GATE"])
    main()
