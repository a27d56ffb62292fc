"""Projection rebuild throughput and memory over a synthetic event log, SQLite and PostgreSQL.

Measured: events/s of ``ProjectionRunner.rebuild()`` (every read model emptied
and replayed from the whole log in one pass and one transaction) over logs of
10,000 and 100,000 events (2,000 and 10,000 with ``--quick``), and its memory
at each size, to show whether memory stays flat as the log grows.

The log is whole synthetic runs of 50 events, shaped as ``OptimizerService``
writes them (``synthetic_runs.py`` says how). The log is written with
``synchronous=OFF`` to save time and caught up once (a rebuild replaces
populated tables, as on a real database); it is measured with the defaults.

Each size is measured in a fresh subprocess, so one size's heap cannot flatter
another's. Each round times a rebuild, then the read floor: one bare pass of
``log.read_all()`` over the same events (read and validated, not applied).
Medians are shown; the ratio is the median of the per-round ratios. Memory:
the peak RSS of the first rebuild (Linux: VmHWM, reset just before it;
elsewhere ``ru_maxrss``), its growth over the RSS before it, and the
``tracemalloc`` peak of one more rebuild (Python allocations, not SQLite's
page cache). Flatness is judged on the traced peak, which is exact. Nothing
here asserts on timings: the script prints and exits 0.

With ``--postgres-url`` (or ``AUTOOPT_BENCH_POSTGRES_URL``) the same logs are
written to temporary PostgreSQL databases (built with ``synchronous_commit=off``
to save time and ``ANALYZE`` every 5,000 events, as autovacuum would; measured
with ``synchronous_commit`` on) and measured the same way; the PostgreSQL
table follows the SQLite one with the same rows, then the two side by side.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import postgres_target
from figures import Figure
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from synthetic_runs import ANALYZED, EVENTS_PER_RUN, Builder

from autoopt.infrastructure.db import open_database
from autoopt.infrastructure.event_store import SqlEventLog
from autoopt.infrastructure.projections.runner import ProjectionRunner
from autoopt.infrastructure.settings import DatabaseSettings

AIM_EPS = 20_000
AIM_FLAT = 1.5  # memory at the large size / at the small one; at most this counts as flat
ANALYZE_EVERY = 100  # runs, 5,000 events, between statistics updates of a PostgreSQL build
MEASURE_URL = (
    "AUTOOPT_BENCH_MEASURE_URL"  # to the subprocess: not in argv, a URL may hold a password
)


def build_url(url: str) -> str:
    """The URL to write the log with: durability off, only to save time."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        parsed = parsed.update_query_dict({"options": "-c synchronous_commit=off"})
    return parsed.render_as_string(hide_password=False)


def run_analyze(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()


def build_log(url: str, events: int) -> float:
    """Writes ``events`` events to a new database and catches the read models up."""
    if events % EVENTS_PER_RUN:
        raise ValueError(f"{events} is not a whole number of {EVENTS_PER_RUN}-event runs")
    start = time.perf_counter()
    engine = open_database(DatabaseSettings(url=build_url(url), sqlite_synchronous="OFF"))
    log, builder, heights = SqlEventLog(engine), Builder(), dict[str, int]()
    # Stands in for autovacuum, which a test server may have off: psycopg
    # prepares a statement on its fifth run, and without fresh statistics the
    # plan made for an empty table (a sequential scan) is kept as the log grows.
    analyze = engine.dialect.name == "postgresql"
    try:
        for n in range(events // EVENTS_PER_RUN):
            builder.run(n)
            for stream, group in builder.appends:
                log.append(stream, group, heights.get(stream, 0))
                heights[stream] = heights.get(stream, 0) + len(group)
            builder.appends.clear()
            if analyze and (n + 1) % ANALYZE_EVERY == 0:
                run_analyze(engine)
        ProjectionRunner(engine, log).catch_up()
        if analyze:
            run_analyze(engine)
    finally:
        log.close()
        engine.dispose()
    return time.perf_counter() - start


def open_log(url: str) -> tuple[Engine, SqlEventLog, ProjectionRunner]:
    engine = open_database(DatabaseSettings(url=url))
    log = SqlEventLog(engine)
    return engine, log, ProjectionRunner(engine, log)


def rss_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) from /proc; ru_maxrss (peak since start) elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 2**10
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes there, KiB here


def timed(step: Callable[[], object]) -> float:
    gc.collect()
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def read_floor(log: SqlEventLog) -> int:
    count = 0
    for _ in log.read_all():
        count += 1
    return count


def measure(url: str, rounds: int) -> dict[str, Any]:
    """Runs in a fresh process per size: timings, then memory."""
    engine, log, runner = open_log(url)
    events = log.last_position()
    gc.collect()
    # Without a reset the peak would be that of opening the database (alembic
    # and its imports), the same at every size, and would hide any growth.
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: peak RSS := current RSS
        resettable = True
    except OSError:
        resettable = False
    before = rss_mb("VmRSS")
    rebuilds, floors, peak = [], [], 0.0
    for r in range(rounds):
        rebuilds.append(timed(runner.rebuild))
        if r == 0:
            peak = rss_mb("VmHWM")  # before any floor ran: the rebuild's own peak
        floors.append(timed(lambda: read_floor(log)))
    gc.collect()
    tracemalloc.start()
    applied = runner.rebuild()
    traced = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    if set(applied.values()) != {events}:
        raise RuntimeError(f"rebuild applied {applied}, the log holds {events}")
    log.close()
    engine.dispose()
    return {
        "events": events,
        "projectors": len(runner.projectors),
        "rebuild_s": statistics.median(rebuilds),
        "floor_s": statistics.median(floors),
        "rebuild_eps": events / statistics.median(rebuilds),
        "floor_eps": events / statistics.median(floors),
        "rebuild_over_floor": statistics.median(
            a / b for a, b in zip(rebuilds, floors, strict=True)
        ),
        "rss_method": "VmHWM after a reset" if resettable else "ru_maxrss",
        "rss_before_mb": before,
        "rss_peak_mb": peak,
        "rss_growth_mb": peak - before,
        "traced_peak_mb": traced,
        "samples_rebuild_s": rebuilds,
    }


def measure_in_subprocess(url: str, rounds: int) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--measure", "--rounds", str(rounds)]
    env = {**os.environ, MEASURE_URL: url}
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        where = make_url(url).database
        raise RuntimeError(f"measuring {where} failed:\n{done.stderr}")
    return dict(json.loads(done.stdout))


def measure_sizes(urls: list[str], sizes: list[int], rounds: int) -> list[dict[str, Any]]:
    build_s = [build_log(url, size) for url, size in zip(urls, sizes, strict=True)]
    return [
        {**measure_in_subprocess(url, rounds), "build_s": built}
        for url, built in zip(urls, build_s, strict=True)
    ]


def measure_postgres(url: str, sizes: list[int], rounds: int) -> tuple[str, list[dict[str, Any]]]:
    with postgres_target.server(url) as server:
        setup = f"{server.describe()}; measured with synchronous_commit=on"
        return setup, measure_sizes([server.fresh() for _ in sizes], sizes, rounds)


def print_table(results: list[dict[str, Any]], rounds: int, title: str, setup: str) -> None:
    small, large = results[0], results[-1]
    kinds = "with PromptAnalyzed" if ANALYZED else "no PromptAnalyzed in this tree"
    print(f"Projection rebuild, {title}, medians of {rounds} round(s), a fresh process per size")
    print(
        f"python {platform.python_version()}, {setup};"
        f" {large['projectors']} projectors; {EVENTS_PER_RUN} events per run ({kinds})"
    )
    head = (
        f"{'events':>9}{'rebuild s':>11}{'events/s':>10}{'floor ev/s':>12}{'ratio':>8}"
        f"{'peak RSS MB':>13}{'growth MB':>11}{'traced MB':>11}{'build s':>9}"
    )
    print(f"{head}\n{'-' * len(head)}")
    for res in results:
        print(
            f"{res['events']:>9,}{res['rebuild_s']:>11.2f}{res['rebuild_eps']:>10,.0f}"
            f"{res['floor_eps']:>12,.0f}{res['rebuild_over_floor']:>7.1f}x"
            f"{res['rss_peak_mb']:>13.1f}{res['rss_growth_mb']:>11.1f}"
            f"{res['traced_peak_mb']:>11.1f}{res['build_s']:>9.1f}"
        )
    eps = large["rebuild_eps"]
    print(
        f"throughput at {large['events']:,}: {eps:,.0f} events/s,"
        f" aim >= {AIM_EPS:,}: {'met' if eps >= AIM_EPS else 'NOT met'} ({eps / AIM_EPS:.2f}x)"
    )
    traced = large["traced_peak_mb"] / small["traced_peak_mb"]
    growth = large["rss_growth_mb"] / max(small["rss_growth_mb"], 1.0)  # under 1 MB is noise
    verdict = "flat" if traced <= AIM_FLAT else "NOT flat"
    print(
        f"memory {large['events']:,} / {small['events']:,}: traced peak {traced:.2f}x,"
        f" RSS growth {growth:.2f}x (aim <= {AIM_FLAT}x on the traced peak: {verdict})"
    )
    print(
        "floor = one pass of log.read_all() without applying; rebuild reads the log once"
        f" for all projectors, so {large['floor_s']:.2f} s of its {large['rebuild_s']:.2f} s"
        f" at {large['events']:,} is reading"
    )
    print(
        f"memory: peak RSS of the first rebuild ({large['rss_method']}), growth = that minus"
        " the RSS before it; traced = tracemalloc peak of one rebuild (Python heap only)"
    )


def print_side_by_side(sqlite: list[dict[str, Any]], pg: list[dict[str, Any]]) -> None:
    head = (
        f"{'events':>9}{'SQLite ev/s':>13}{'/floor':>8}{'PostgreSQL ev/s':>17}{'/floor':>8}"
        f"{'PG/SQLite':>11}{'traced MB SQLite / PG':>24}"
    )
    print(f"side by side, rebuild\n{head}\n{'-' * len(head)}")
    for lite, post in zip(sqlite, pg, strict=True):
        traced = f"{lite['traced_peak_mb']:.1f} / {post['traced_peak_mb']:.1f}"
        print(
            f"{lite['events']:>9,}{lite['rebuild_eps']:>13,.0f}{lite['rebuild_over_floor']:>7.1f}x"
            f"{post['rebuild_eps']:>17,.0f}{post['rebuild_over_floor']:>7.1f}x"
            f"{post['rebuild_eps'] / lite['rebuild_eps']:>10.2f}x{traced:>24}"
        )
    print("/floor = rebuild time over one bare read_all() pass on the same backend")


def figures(results: list[dict[str, Any]], backend: str) -> list[Figure]:
    """The headline figures of one backend, in run_all.py's shape."""
    small, large = results[0], results[-1]
    eps = large["rebuild_eps"]
    traced = large["traced_peak_mb"] / small["traced_peak_mb"]
    return [
        Figure(
            f"projection rebuild, {large['events']:,} events, {backend}",
            eps,
            "events/s",
            "one read_all() pass",
            large["floor_eps"],
            eps / large["floor_eps"],
            f">= {AIM_EPS:,} events/s",
            eps >= AIM_EPS,
        ),
        Figure(
            f"rebuild traced memory peak, {large['events']:,} events, {backend}",
            large["traced_peak_mb"],
            "MB",
            f"same at {small['events']:,} events",
            small["traced_peak_mb"],
            traced,
            f"flat: <= {AIM_FLAT}x",
            traced <= AIM_FLAT,
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Projection rebuild throughput and memory")
    parser.add_argument(
        "--quick", action="store_true", help="small logs, one round: a CI smoke run"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    # The per-size subprocess; it reads the database URL from MEASURE_URL.
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=3, help=argparse.SUPPRESS)
    postgres_target.add_option(parser)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(os.environ[MEASURE_URL], args.rounds)))
        return 0
    sizes, rounds = ([2_000, 10_000], 1) if args.quick else ([10_000, 100_000], 3)
    with tempfile.TemporaryDirectory(prefix="autoopt-bench-") as tmp:
        urls = [f"sqlite:///{Path(tmp) / f'log-{size}.db'}" for size in sizes]
        results = measure_sizes(urls, sizes, rounds)
    pg: list[dict[str, Any]] | None = None
    if args.postgres_url:
        pg_setup, pg = measure_postgres(args.postgres_url, sizes, rounds)
    if args.json:
        meta = {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version}
        aims = {"events_per_s_at_least": AIM_EPS, "traced_peak_ratio_at_most": AIM_FLAT}
        out: dict[str, Any] = {**meta, "rounds": rounds, "aims": aims, "results": results}
        headline = figures(results, "SQLite")
        if pg is not None:
            out["postgresql"] = {"setup": pg_setup, "results": pg}
            headline += figures(pg, "PostgreSQL")
        out["figures"] = [f.as_dict() for f in headline]
        print(json.dumps(out, indent=2))
        return 0
    print_table(results, rounds, "SQLite", f"sqlite {sqlite3.sqlite_version}, WAL, sync=FULL")
    if pg is None:
        print(postgres_target.SKIPPED)
        return 0
    print()
    print_table(pg, rounds, "PostgreSQL", pg_setup)
    print()
    print_side_by_side(results, pg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
