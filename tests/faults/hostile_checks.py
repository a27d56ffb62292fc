"""How ``test_hostile_dsl.py`` runs a case (hang guard included) and what it checks.

A run of ``autoopt`` on a hostile input is fine when it exits 0, or exits 1
with exactly one ``Error: `` line naming the input; it never shows a traceback
or the API key, never raises anything but ``SystemExit`` in-process, and never
takes 10 s. The store is fine when nothing that was already there changed.
"""

from __future__ import annotations

import re
import signal
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from tests.faults.workspace import SENTINEL_KEY, Workspace

HANG_SECONDS = 10.0

#: Append-only: no row may ever change or go, whatever the run did.
APPEND_ONLY_TABLES = ("events", "prompt_versions")
#: The response cache: a stored answer stays, only its hit count moves.
CACHE_TABLE = "llm_cache"
#: The version store's index, a cache of what the version files say: a run that
#: stores a version rewrites it (infrastructure/storage/filesystem.py).
INDEX_FILE = "index.json"

# The two documented notes about the language model (cli/optimize_command.py and
# cli/llm_commands.py); any other extra line on stderr is a finding.
NOTE_LINES = (
    re.compile(r"Note: .+; LLM strategies used their rule-based fallbacks from then on\."),
    re.compile(r"Note: no API key in \$\w+; .+"),
)
ESTIMATE_LINE = re.compile(r"Estimate: .+")


@dataclass
class Outcome:
    """One run, in-process or in a subprocess."""

    args: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str
    exception: BaseException | None
    seconds: float
    hung: bool

    def describe(self) -> str:
        return (
            f"autoopt {' '.join(self.args)[:300]} -> exit {self.exit_code} "
            f"in {self.seconds:.2f}s, exception {self.exception!r:.300}\n"
            f"stdout: {self.stdout[-1500:]}\nstderr: {self.stderr[-1500:]}"
        )


class Hang(Exception):
    """Raised into a run that is still going when the guard's time is up."""


@dataclass
class Guard:
    fired: bool = False


@contextmanager
def hang_guard(seconds: float) -> Iterator[Guard]:
    """Interrupt the block after ``seconds`` (SIGALRM); ``fired`` says whether it had to."""
    guard = Guard()

    def interrupt(signum: int, frame: FrameType | None) -> None:
        guard.fired = True
        raise Hang(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield guard
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_in_process(workspace: Workspace, args: tuple[str, ...]) -> Outcome:
    started = time.monotonic()
    with hang_guard(HANG_SECONDS) as guard:
        result = workspace.invoke(*args)
    exception = result.exception
    if isinstance(exception, SystemExit):
        exception = None
    return Outcome(
        args=args,
        exit_code=result.exit_code,
        stdout=result.stdout,
        stderr=result.stderr,
        exception=exception,
        seconds=time.monotonic() - started,
        hung=guard.fired,
    )


def run_subprocess(workspace: Workspace, args: tuple[str, ...]) -> Outcome:
    started = time.monotonic()
    finished = workspace.run(*args, timeout=HANG_SECONDS)
    seconds = time.monotonic() - started
    return Outcome(
        args=args,
        exit_code=finished.returncode,
        stdout=finished.stdout,
        stderr=finished.stderr,
        exception=None,
        seconds=seconds,
        hung=finished.returncode < 0 and seconds >= HANG_SECONDS,
    )


def problems_with_outcome(outcome: Outcome, path: Path) -> list[str]:
    """What is wrong with how a run on ``path`` ended; empty when it ended cleanly."""
    problems: list[str] = []
    if outcome.hung or outcome.seconds >= HANG_SECONDS:
        problems.append(f"hung: still running after {HANG_SECONDS} s")
    if outcome.exception is not None:
        problems.append(
            f"raised {type(outcome.exception).__name__}: {str(outcome.exception)[:200]}"
        )
    if outcome.exit_code not in (0, 1):
        problems.append(f"exit code {outcome.exit_code}")
    printed = outcome.stdout + outcome.stderr
    if "Traceback" in printed:
        problems.append("a traceback was printed")
    if SENTINEL_KEY in printed:
        problems.append("the API key was printed")
    lines = outcome.stderr.splitlines()
    errors = [line for line in lines if line.startswith("Error: ")]
    others = [
        line
        for line in lines
        if not line.startswith("Error: ")
        and not any(note.fullmatch(line) for note in NOTE_LINES)
        and not ("--dry-run" in outcome.args and ESTIMATE_LINE.fullmatch(line))
    ]
    if others:
        problems.append(f"unexpected stderr lines: {others[:3]!r:.300}")
    if outcome.exit_code == 0 and errors:
        problems.append(f"exit 0 with error lines: {errors[:2]!r:.300}")
    if outcome.exit_code == 1:
        if len(errors) != 1:
            problems.append(f"{len(errors)} 'Error: ' lines instead of one")
        elif str(path) not in errors[0]:
            problems.append(f"the error line does not name the input: {errors[0][:300]!r}")
    return problems


def problems_with_store(
    before: dict[str, Any], after: dict[str, Any], *, refused: bool
) -> list[str]:
    """What changed among the rows and files that were there before; empty when nothing did.

    A successful run may add events, versions and files, and the read models
    (projections, prompt heads, checkpoints) follow the new events. A run that
    added no event must leave the read models alone too, and a refused run adds
    no version file.
    """
    problems: list[str] = []
    tables_before, tables_after = before["tables"], after["tables"]
    for table in APPEND_ONLY_TABLES:
        gone = Counter(tables_before.get(table, [])) - Counter(tables_after.get(table, []))
        if gone:
            problems.append(f"{sum(gone.values())} {table} rows changed or went")
    cached_after = {row[:-1] for row in tables_after.get(CACHE_TABLE, [])}
    if any(row[:-1] not in cached_after for row in tables_before.get(CACHE_TABLE, [])):
        problems.append("a cached LLM answer changed or went")
    if tables_after.get("events") == tables_before.get("events"):
        for table, rows in tables_before.items():
            if table != CACHE_TABLE and tables_after.get(table) != rows:
                problems.append(f"{table} changed though no event was appended")
    files_before, files_after = before["files"], after["files"]
    changed = [
        name
        for name, digest in files_before.items()
        if files_after.get(name) != digest and (name != INDEX_FILE or refused)
    ]
    if changed:
        problems.append(f"version files changed or went: {changed[:3]}")
    added = sorted(set(files_after) - set(files_before))
    if refused and added:
        problems.append(f"a refused run stored version files: {added[:3]}")
    return problems
