"""Append throughput of the SQL event log, beside a floor measured in the same run.

Measured: events/s through ``SqlEventLog.append`` into a fresh, migrated SQLite
file (WAL, ``synchronous=FULL``), for single-event transactions (round-robin over
50 streams, ``expected_version`` checked) and 100-event transactions. Events are
built before the clock starts, with the time-ordered ids autoopt gives its
events (``TimeOrderedIds``); each round uses fresh files; medians are shown.

The floors, the bare inserts and the ``eventsourcing`` peer it is measured
against, and why each is fair, are in ``append_baselines.py``; its
``SYNCHRONOUS`` sets every SQLite implementation's durability at once.

With ``--postgres-url`` (or ``AUTOOPT_BENCH_POSTGRES_URL``) the same workloads
then run against PostgreSQL, each implementation in a fresh database copied from
a migrated template, with ``synchronous_commit=on``: ``SqlEventLog`` beside a
floor that is psycopg making the same statements directly (the advisory lock,
the id lookup, the heads query, one executemany, COMMIT), and a bare
INSERT + COMMIT. The PostgreSQL table is printed under the SQLite one, with the
same rows.

Within a round the implementations run interleaved in chunks, so drifting disk
latency (fsync time on a shared machine can change several-fold within seconds)
hits them alike; the ratio is the median of the per-round ratios. Nothing here
asserts on timings: the script prints and exits 0.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import append_baselines as baselines
import postgres_target
from append_baselines import Batch, Step
from figures import Figure, table

from autoopt.domain.events import PromptExtracted
from autoopt.infrastructure.clock import TimeOrderedIds
from autoopt.infrastructure.db import open_database
from autoopt.infrastructure.event_store import SqlEventLog
from autoopt.infrastructure.settings import DatabaseSettings

STREAMS = 50
AIM = 0.7  # single-event appends should reach this fraction of the floor
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Workload:
    name: str
    batch_size: int
    events: int  # per round


def make_batches(workload: Workload) -> list[Batch]:
    ids = TimeOrderedIds()  # the ids autoopt gives its events
    batches: list[Batch] = []
    for i in range(workload.events // workload.batch_size):
        run_id = f"run-{i % STREAMS}"
        events = [
            PromptExtracted(
                event_id=ids.new_id(),
                occurred_at=EPOCH + timedelta(seconds=i, microseconds=n),
                correlation_id=run_id,
                run_id=run_id,
                prompt_id=f"wf-1/17115289158{n:02d}/prompt_template/0/text",
                workflow_id="wf-1",
                node_id=f"17115289158{n:02d}",
                node_title="LLM",
                node_type="llm",
                field_path="/prompt_template/0/text",
                role="system",
                text=f"Summarize {{{{#sys.query#}}}} in {n + 1} sentences.",
                variables=("sys.query",),
            )
            for n in range(workload.batch_size)
        ]
        batches.append((run_id, events, i // STREAMS * workload.batch_size))
    return batches


def autoopt_steps(path: Path, batches: list[Batch], stack: ExitStack) -> list[Step]:
    return log_steps(f"sqlite:///{path}", batches, stack)


def log_steps(url: str, batches: list[Batch], stack: ExitStack) -> list[Step]:
    engine = open_database(DatabaseSettings(url=url, sqlite_synchronous=baselines.SYNCHRONOUS))
    stack.callback(engine.dispose)
    log = SqlEventLog(engine)
    return [partial(log.append, stream, events, expected) for stream, events, expected in batches]


PEER = "eventsourcing"
PEER_NAME = "eventsourcing SQLite recorder"
PEER_SKIPPED = "eventsourcing peer: skipped (not installed; pip install -e '.[bench]')"
HAS_PEER = importlib.util.find_spec(PEER) is not None


Prepare = Callable[[Any, list[Batch], ExitStack], list[Step]]
Place = Callable[[str, ExitStack], Any]  # implementation name -> where it writes, fresh
IMPLEMENTATIONS: dict[str, Prepare] = {
    "autoopt": autoopt_steps,
    "floor": baselines.floor_steps,
    "bare_insert": baselines.bare_steps,
    "bare_insert_no_fsync": partial(baselines.bare_steps, synchronous="OFF"),
    **({PEER: baselines.eventsourcing_steps} if HAS_PEER else {}),
}
PG_IMPLEMENTATIONS: dict[str, Prepare] = {
    "autoopt": log_steps,
    "floor": baselines.pg_floor_steps,
    "bare_insert": baselines.pg_bare_steps,
}


def sqlite_place(directory: Path) -> Place:
    def place(name: str, stack: ExitStack) -> Path:
        path = directory / f"{name}.db"
        stack.callback(path.unlink, missing_ok=True)  # runs after the connections close
        return path

    return place


def postgres_place(server: postgres_target.Server) -> Place:
    def place(name: str, stack: ExitStack) -> str:
        url = server.fresh()
        stack.callback(server.drop, url)
        return url

    return place


def run_round(
    workload: Workload, chunks: int, implementations: dict[str, Prepare], place: Place
) -> dict[str, float]:
    """Events/s of each implementation on fresh storage, their appends interleaved in chunks."""
    with ExitStack() as stack:
        steps = {
            name: prepare(place(name, stack), make_batches(workload), stack)
            for name, prepare in implementations.items()
        }
        seconds = dict.fromkeys(steps, 0.0)
        names, count = list(steps), len(steps["autoopt"])
        turn = len(names)
        gc.collect()
        gc.freeze()  # keep the prepared events out of the collector's way while timing
        try:
            for c in range(chunks):
                for name in names[c % turn :] + names[: c % turn]:
                    chunk = steps[name][count * c // chunks : count * (c + 1) // chunks]
                    start = time.perf_counter()
                    for step in chunk:
                        step()
                    seconds[name] += time.perf_counter() - start
        finally:
            gc.unfreeze()
    return {name: workload.events / s for name, s in seconds.items()}


def measure(
    workload: Workload,
    rounds: int,
    chunks: int,
    implementations: dict[str, Prepare],
    place: Place,
) -> dict[str, Any]:
    samples = [run_round(workload, chunks, implementations, place) for _ in range(rounds)]
    rates = {name: [s[name] for s in samples] for name in implementations}
    return {
        "workload": workload.name,
        "batch_size": workload.batch_size,
        "events_per_round": workload.events,
        **{f"{name}_eps": statistics.median(values) for name, values in rates.items()},
        "ratio": statistics.median(s["autoopt"] / s["floor"] for s in samples),
        # autoopt / each other implementation, the median of the per-round ratios
        "ratios": {
            name: statistics.median(s["autoopt"] / s[name] for s in samples)
            for name in implementations
            if name != "autoopt"
        },
        "samples_eps": rates,
    }


def print_table(results: list[dict[str, Any]], rounds: int, title: str, setup: str) -> None:
    print(f"{title} event log appends, events/s, median of {rounds} rounds")
    print(setup)
    peer = f"{PEER}_eps" in results[0]
    head = f"{'workload':<24}{'autoopt':>9}{'floor':>9}{'ratio':>8}{'aim':>10}{'bare insert':>13}"
    no_fsync = "bare_insert_no_fsync_eps" in results[0]
    if no_fsync:
        head += f"{'no fsync':>10}"
    if peer:
        head += f"{'eventsourcing':>15}{'/peer':>8}"
    print(f"{head}\n{'-' * len(head)}")
    for i, res in enumerate(results):
        name = f"{res['workload']} ({res['events_per_round']})"
        aim = f">={AIM:.2f}x" if i == 0 else ""
        line = (
            f"{name:<24}{res['autoopt_eps']:>9,.0f}{res['floor_eps']:>9,.0f}"
            f"{res['ratio']:>7.2f}x{aim:>10}{res['bare_insert_eps']:>13,.0f}"
        )
        if no_fsync:
            line += f"{res['bare_insert_no_fsync_eps']:>10,.0f}"
        if peer:
            line += f"{res[f'{PEER}_eps']:>15,.0f}{res['ratios'][PEER]:>7.2f}x"
        print(line)
    single = results[0]["ratio"]
    print(f"aim (single-event >= {AIM:.2f}x floor): {'met' if single >= AIM else 'NOT met'}")


def print_side_by_side(sqlite: list[dict[str, Any]], pg: list[dict[str, Any]]) -> None:
    """autoopt on each backend, and each against its own floor."""
    head = f"{'workload':<24}{'SQLite':>9}{'/floor':>8}{'PostgreSQL':>12}{'/floor':>8}"
    head += f"{'PG/SQLite':>11}"
    print(f"side by side, autoopt events/s\n{head}\n{'-' * len(head)}")
    for lite, post in zip(sqlite, pg, strict=True):
        name = f"{lite['workload']} ({lite['events_per_round']})"
        print(
            f"{name:<24}{lite['autoopt_eps']:>9,.0f}{lite['ratio']:>7.2f}x"
            f"{post['autoopt_eps']:>12,.0f}{post['ratio']:>7.2f}x"
            f"{post['autoopt_eps'] / lite['autoopt_eps']:>10.2f}x"
        )


BATCH_AIM = 100_000  # events/s in 100-event transactions, an absolute aim


def figures(sqlite: list[dict[str, Any]], pg: list[dict[str, Any]] | None) -> list[Figure]:
    """The headline figures, in the shape of ``benchmarks/figures.py``."""
    single, batched = sqlite
    out: list[Figure] = []
    if f"{PEER}_eps" in single:
        ratio = single["ratios"][PEER]
        out.append(
            Figure(
                "event append, single-event tx",
                single["autoopt_eps"],
                "events/s",
                PEER_NAME,
                single[f"{PEER}_eps"],
                ratio,
                ">= 1x peer",
                ratio >= 1.0,
            )
        )
    else:
        out.append(
            Figure(
                "event append, single-event tx",
                single["autoopt_eps"],
                "events/s",
                aim=">= 1x peer (peer not installed)",
            )
        )
    out.append(
        Figure(
            "event append, 100-event tx",
            batched["autoopt_eps"],
            "events/s",
            "sqlite3 floor",
            batched["floor_eps"],
            batched["ratio"],
            f">= {BATCH_AIM:,} events/s",
            batched["autoopt_eps"] >= BATCH_AIM,
        )
    )
    # No append of these rows can beat INSERT + COMMIT of them, prepared in
    # advance: the table shows where that ceiling stood in this run.
    out.append(
        Figure(
            "event append, 100-event tx, bare INSERT",
            batched["bare_insert_eps"],
            "events/s",
            aim="(ceiling for any append)",
        )
    )
    out.append(
        Figure(
            "event append, 100-event tx, bare INSERT, no fsync",
            batched["bare_insert_no_fsync_eps"],
            "events/s",
            aim="(ceiling without durability)",
        )
    )
    out.append(
        Figure(
            "event append, single-event tx, vs floor",
            single["autoopt_eps"],
            "events/s",
            "sqlite3 floor",
            single["floor_eps"],
            single["ratio"],
            f">= {AIM:.2f}x floor",
            single["ratio"] >= AIM,
        )
    )
    if f"{PEER}_eps" in batched:
        out.append(
            Figure(
                "event append, 100-event tx, vs peer",
                batched["autoopt_eps"],
                "events/s",
                PEER_NAME,
                batched[f"{PEER}_eps"],
                batched["ratios"][PEER],
            )
        )
    for res in pg or []:
        out.append(
            Figure(
                f"event append, {res['workload']}, PostgreSQL",
                res["autoopt_eps"],
                "events/s",
                "psycopg floor",
                res["floor_eps"],
                res["ratio"],
                f">= {AIM:.2f}x floor" if res["batch_size"] == 1 else "",
                res["ratio"] >= AIM if res["batch_size"] == 1 else None,
            )
        )
    return out


def measure_postgres(
    url: str, workloads: list[Workload], rounds: int, chunks: int
) -> tuple[str, list[dict[str, Any]]]:
    with postgres_target.server(url) as server:
        setup = f"python {platform.python_version()}, {server.describe()}"
        setup += "; each database: synchronous_commit=on"
        place = postgres_place(server)
        return setup, [measure(w, rounds, chunks, PG_IMPLEMENTATIONS, place) for w in workloads]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="SQL event log append throughput")
    parser.add_argument("--quick", action="store_true", help="a few seconds, for CI smoke runs")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    postgres_target.add_option(parser)
    args = parser.parse_args(argv)
    singles, batched, rounds, chunks = (50, 500, 3, 2) if args.quick else (1000, 5000, 5, 20)
    workloads = [Workload("single-event tx", 1, singles), Workload("100-event tx", 100, batched)]
    with tempfile.TemporaryDirectory(prefix="autoopt-bench-") as tmp:
        place = sqlite_place(Path(tmp))
        results = [measure(w, rounds, chunks, IMPLEMENTATIONS, place) for w in workloads]
    pg: list[dict[str, Any]] | None = None
    if args.postgres_url:
        pg_setup, pg = measure_postgres(args.postgres_url, workloads, rounds, chunks)
    if args.json:
        meta = {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version}
        aim = {"single_event_ratio_at_least": AIM, "met": results[0]["ratio"] >= AIM}
        out: dict[str, Any] = {**meta, "rounds": rounds, "aim": aim, "results": results}
        out["peer"] = PEER_NAME if HAS_PEER else None
        if pg is not None:
            out["postgresql"] = {"setup": pg_setup, "results": pg}
        out["figures"] = [f.as_dict() for f in figures(results, pg)]
        print(json.dumps(out, indent=2))
        return 0
    sqlite_setup = f"python {platform.python_version()}, sqlite {sqlite3.sqlite_version}"
    sqlite_setup += f", WAL, sync={baselines.SYNCHRONOUS}"
    print_table(results, rounds, "SQLite", sqlite_setup)
    if not HAS_PEER:
        print(PEER_SKIPPED)
    if pg is None:
        print(postgres_target.SKIPPED)
    else:
        print()
        print_table(pg, rounds, "PostgreSQL", pg_setup)
        print()
        print_side_by_side(results, pg)
    print()
    print(table(figures(results, pg)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
