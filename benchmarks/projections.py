"""Projection rebuild throughput and memory over a synthetic event log, SQLite and PostgreSQL.

Measured: events/s of ``ProjectionRunner.rebuild()`` (every read model emptied
and replayed from the whole log in one pass and one transaction) over logs of
10,000 and 100,000 events (2,000 and 10,000 with ``--quick``), and its memory
at each size, to show whether memory stays flat as the log grows.

The log is whole synthetic runs of 50 events, shaped as ``OptimizerService``
writes them: RunStarted (a 15 KB DSL, the corpus median), six PromptExtracted,
per prompt a VersionCreated on ``prompt-<id>``, PromptAnalyzed (if the type
exists) and four IterationCompleted (two with an ``LLMExchange``), for three
of the six an optimized VersionCreated and PatchEmitted, and RunCompleted.
Runs cycle over 40 apps, so prompt streams grow long. The log is written with
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
import hashlib
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
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import postgres_target
from figures import Figure
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from autoopt.domain.events import (
    DomainEvent,
    IterationCompleted,
    PatchEmitted,
    PromptExtracted,
    RunCompleted,
    RunStarted,
    VersionCreated,
)
from autoopt.domain.models import ChatMessage, LLMExchange, PromptPatch, Scores
from autoopt.infrastructure.db import open_database
from autoopt.infrastructure.event_store import SqlEventLog
from autoopt.infrastructure.projections.runner import ProjectionRunner
from autoopt.infrastructure.settings import DatabaseSettings

AIM_EPS = 20_000
AIM_FLAT = 1.5  # memory at the large size / at the small one; at most this counts as flat
EVENTS_PER_RUN = 50
PROMPTS_PER_RUN, IMPROVED_PER_RUN, APPS = 6, 3, 40
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
ANALYZE_EVERY = 100  # runs, 5,000 events, between statistics updates of a PostgreSQL build
MEASURE_URL = (
    "AUTOOPT_BENCH_MEASURE_URL"  # to the subprocess: not in argv, a URL may hold a password
)
# Looked up rather than imported: the event type is new, and the benchmark
# should keep running on a tree that does not have it yet.
ANALYZED = DomainEvent.registry.get("PromptAnalyzed")
PROMPT_TEXT = (
    "You are a support assistant for {{#sys.query#}}. Answer in the user's language, in"
    " at most five sentences, and cite the knowledge base entry you used. "
) * 4  # ~600 characters, about the corpus average for an extracted prompt
DSL_BLOCK = (
    "  - data:\n      type: llm\n      title: LLM\n      model: {provider: openai, name: gpt-4o}\n"
    "      prompt_template:\n      - role: system\n        text: 'Summarize the query.'\n"
)
DSL_TEXT = "app:\n  mode: workflow\nworkflow:\n  graph:\n    nodes:\n" + DSL_BLOCK * 85  # ~15 KB
DSL_SHA = hashlib.sha256(DSL_TEXT.encode()).hexdigest()
CONFIG = {  # the shape OptimizerService records: effective settings, the run's config
    "optimization": {"strategies": ["clarity_focus", "llm_clarity"], "max_iterations": 2},
    "llm": {"provider": "openai", "model": "gpt-4o-mini", "timeout_s": 60},
    "database": {"url": "sqlite:///./data/optimizer/autoopt.db", "sqlite_synchronous": "FULL"},
    "run": {"strategies": ["clarity_focus", "llm_clarity"], "score_threshold": 80.0},
    "language_model": True,
}

# One answer for every LLM round: its size matters here, not its content.
EXCHANGE = LLMExchange(
    provider="openai",
    model="gpt-4o-mini",
    base_url="https://api.openai.com/v1",
    messages=(
        ChatMessage(role="system", content="Rewrite the prompt for clarity. " * 25),
        ChatMessage(role="user", content=PROMPT_TEXT),
    ),
    parameters={"temperature": 0.2, "max_tokens": 1024},
    template_version="llm_clarity/3",
    request_sha256=hashlib.sha256(PROMPT_TEXT.encode()).hexdigest(),
    response_text=PROMPT_TEXT.upper(),
    prompt_tokens=412,
    completion_tokens=160,
    cost_usd=0.000158,
    latency_ms=1840.5,
)

RUN = {"app_mode": "workflow", "dsl_text": DSL_TEXT, "dsl_sha256": DSL_SHA, "config": CONFIG}
NODE = {"node_title": "LLM", "node_type": "llm", "field_path": "/prompt_template/0/text"}
TRIAGE = {
    "scores": Scores(overall=61.0, clarity=66.5, efficiency=58.0),
    "issues": ("vague_language:warning",),
    "decision": "optimize",
    "reason": "overall 61.0 is below the threshold 80.0",
}

Append = tuple[str, list[DomainEvent]]  # stream_id, events


@dataclass
class Builder:
    """Makes runs' events in log order, grouped into the appends that write them."""

    tick: int = 0  # times advance by a millisecond per event
    versions: dict[str, int] = field(default_factory=dict)  # prompt_id -> latest version
    appends: list[Append] = field(default_factory=list)

    def put(self, stream: str, cls: type[Any], cause: DomainEvent | None, **fields: Any) -> Any:
        self.tick += 1
        event = cls(
            event_id=uuid.uuid4(),
            occurred_at=EPOCH + timedelta(milliseconds=self.tick),
            correlation_id=fields.get("run_id"),
            causation_id=str(cause.event_id) if cause else None,
            **fields,
        )
        # Consecutive events of one stream go in one append, as the service batches them.
        if self.appends and self.appends[-1][0] == stream:
            self.appends[-1][1].append(event)
        else:
            self.appends.append((stream, [event]))
        return event

    def version(self, run_id: str, prompt: PromptExtracted, optimized: bool) -> int:
        number = self.versions[prompt.prompt_id] = self.versions.get(prompt.prompt_id, 0) + 1
        self.put(
            f"prompt-{prompt.prompt_id}",
            VersionCreated,
            prompt,
            run_id=run_id,
            prompt_id=prompt.prompt_id,
            version=number,
            kind="optimized" if optimized else "manual" if number > 1 else "baseline",
            content_sha256=hashlib.sha256(f"{prompt.prompt_id}/{number}".encode()).hexdigest(),
            scores=Scores(overall=62.5 + number % 30, clarity=70.0, efficiency=55.25),
            strategy="llm_clarity" if optimized else None,
            parent_version=number - 1 or None,
        )
        return number

    def run(self, n: int) -> None:
        run_id, app = str(uuid.uuid4()), n % APPS
        workflow_id, stream = f"wf-{app:03d}", f"run-{run_id}"
        started = self.put(
            stream,
            RunStarted,
            None,
            run_id=run_id,
            workflow_id=workflow_id,
            app_name=f"App {app}",
            source_name=f"app-{app}.yml",
            tool_version="0.1.0",
            **RUN,
        )
        prompts: list[PromptExtracted] = [
            self.put(
                stream,
                PromptExtracted,
                started,
                run_id=run_id,
                prompt_id=f"{workflow_id}/node-{p}/prompt_template/0/text",
                workflow_id=workflow_id,
                node_id=f"node-{p}",
                role="system",
                **NODE,
                text=f"{PROMPT_TEXT}({p})",
                variables=("sys.query",),
            )
            for p in range(PROMPTS_PER_RUN)
        ]
        for p, prompt in enumerate(prompts):
            self.prompt(run_id, stream, prompt, improved=p < IMPROVED_PER_RUN)
        self.put(
            stream,
            RunCompleted,
            started,
            run_id=run_id,
            prompts_found=PROMPTS_PER_RUN,
            prompts_optimized=IMPROVED_PER_RUN,
            versions_created=PROMPTS_PER_RUN + IMPROVED_PER_RUN,
            output_path=f"app-{app}.optimized.yml",
            output_sha256=hashlib.sha256(run_id.encode()).hexdigest(),
        )

    def prompt(self, run_id: str, stream: str, prompt: PromptExtracted, improved: bool) -> None:
        ids = {"run_id": run_id, "prompt_id": prompt.prompt_id}
        self.version(run_id, prompt, optimized=False)
        if ANALYZED is not None:
            self.put(stream, ANALYZED, prompt, **ids, **TRIAGE)
        better = prompt.text.replace("support", "customer support")
        for i in range(4 if ANALYZED is not None else 5):  # every run is 50 events
            llm = i % 2 == 1  # rule-based and LLM rounds take turns
            self.put(
                stream,
                IterationCompleted,
                prompt,
                **ids,
                strategy="llm_clarity" if llm else "clarity_focus",
                iteration=i // 2 + 1,
                candidate_text=better,
                score_before=61.0 + i,
                score_after=63.5 + i,
                confidence=0.82,
                decision="accepted" if i < 3 else "rejected",
                reason="clarity +2.5, above min_confidence 0.70",
                llm_exchange=EXCHANGE if llm else None,
            )
        if improved:
            version = self.version(run_id, prompt, optimized=True)
            patch = PromptPatch(
                workflow_id=prompt.workflow_id,
                node_id=prompt.node_id,
                selector_value=prompt.field_path,
                content=better,
            )
            texts = {"old_text": prompt.text, "new_text": better}
            self.put(stream, PatchEmitted, prompt, **ids, patch=patch, version=version, **texts)


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
