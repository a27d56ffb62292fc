"""``autoopt report``: every report's exact output on a small fixed log.

The log is real: the project's OptimizerService, wired by the Container over
a SQLite file in ``tmp_path``, optimizes two small apps written here, and the
LLM strategies talk through the real ``openai`` SDK to
:class:`tests.llm_server.FakeLLMServer`. Only the clocks and the ids are fixed
(:mod:`tests.fakes`), so every figure is known in advance.

* Run 1, "Notes", on 2026-03-01 with a priced model (gpt-4o-mini) and
  llm_guided then clarity_focus, two rounds each: the model's rewrite of
  "Writer" is accepted, its second look changes nothing; "摘要" gets an answer
  without a prompt, so llm_guided falls back to structure_focus (the failed
  call is billed all the same); "Translator" is good enough and skipped.
* Run 2, "Drafts", on 2026-03-02 with a model the price table does not know
  and structure_focus then llm_guided, one round each, all accepted: two nodes
  hold the same text, so the second node's question is answered from the
  response cache (a known cost of zero) and the first one's cost is unknown.

The log is recorded once per module; the reports only read it. With
``AUTOOPT_TEST_POSTGRES_URL`` set, the same log is replayed into PostgreSQL
and every view-backed report must print the very same bytes there.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from alembic import command
from sqlalchemy import inspect

from autoopt.infrastructure.bootstrap import Container
from autoopt.infrastructure.db import alembic_config, open_database, upgrade_to_head
from autoopt.infrastructure.dsl_files import FileSink, read_app
from autoopt.infrastructure.event_store import SqlEventLog
from autoopt.infrastructure.settings import DatabaseSettings, load_settings
from tests import dify_apps
from tests.e2e.conftest import Invoke
from tests.fakes import SequentialIds, SteppingClock
from tests.llm_server import Answer, Dynamic, FakeLLMServer, JSONAnswer, Response
from tests.postgres import postgres_backends, temporary_postgres_engine

VIEWS = {
    "v_strategy_effectiveness",
    "v_run_costs",
    "v_daily_costs",
    "v_model_costs",
    "v_run_outcomes",
    "v_confidence_histogram",
    "v_llm_cache_use",
}

PRICED = "gpt-4o-mini"  # $0.15 in, $0.60 out per million tokens
UNPRICED = "local-notes-7b"
START = "1711000000001"
TOPIC = f"{{{{#{START}.topic#}}}}"
WRITER = (
    f"Please note that you are basically a writer of short notes about {TOPIC}. "
    f"Maybe write in a kind of friendly way. Actually, mention the topic {TOPIC} once. "
    "Keep it short."
)
TRANSLATOR = f"You translate {TOPIC} into French. Output only the translation."
SUMMARY = f"Summarize {TOPIC}."
REWRITTEN = "\n".join(
    [
        "You write short notes about a topic.",
        "",
        "## Input",
        f"- Topic: {TOPIC}",
        "",
        "## Requirements",
        f"- Mention {TOPIC} exactly once.",
        "- Use a friendly tone and at most three sentences.",
    ]
)


def llm_node(node_id: str, title: str, text: str) -> dict[str, Any]:
    return dify_apps.llm_node(node_id, text, title=title, model=PRICED)


def app(name: str, *nodes: dict[str, Any]) -> dict[str, Any]:
    return dify_apps.workflow_app(name, list(nodes), start=START, inputs=("topic",))


NOTES = app(
    "Notes",
    llm_node("1711000000002", "Writer", WRITER),
    llm_node("1711000000003", "Translator", TRANSLATOR),
    llm_node("1711000000004", "摘要", SUMMARY),
)
DRAFTS = app(
    "Drafts",
    llm_node("1711000000012", "Draft A", WRITER),
    llm_node("1711000000013", "Draft B", WRITER),
)


def answer(body: dict[str, Any]) -> Response:
    """The rewrite for the writer prompts; for the summary, JSON without a prompt."""
    asked = body["messages"][-1]["content"]
    if "Summarize" in asked:
        return Answer('{"rationale": "too short to improve"}', 120, 10)
    return JSONAnswer(REWRITTEN, prompt_tokens=300, completion_tokens=80)


def record_run(
    autoopt: Invoke,
    server: FakeLLMServer,
    *,
    document: dict[str, Any],
    model: str,
    strategies: tuple[str, ...],
    rounds: int,
    day: int,
    first_id: int,
) -> str:
    """One real run of ``document`` from 09:30 UTC on 2026-03-``day``; returns its run id."""
    config = autoopt.workdir / "autoopt.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "optimizer": {
                    "llm": {"base_url": server.base_url, "model": model, "max_retries": 0},
                    "optimization": {
                        "strategies": list(strategies),
                        "max_iterations": rounds,
                        "score_threshold": 80.0,
                        "min_confidence": 0.7,
                    },
                }
            }
        ),
        encoding="utf-8",
    )
    source = autoopt.workdir / f"{document['app']['name'].lower()}.yml"
    source.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    settings = load_settings(config, environ=autoopt.env)
    clock = SteppingClock(datetime(2026, 3, day, 9, 30, tzinfo=UTC))
    container = Container(settings, clock, SequentialIds(first_id))
    try:
        service = container.optimizer_service(llm=container.llm_rewriter())
        report = service.run(
            read_app(source, settings.dsl.max_bytes),
            source.read_text(encoding="utf-8"),
            settings.optimization.config(),
            effective_config=settings.effective(),
            tool_version="0.9.0",
            sink=FileSink(source.with_suffix(".optimized.yml")),
        )
    finally:
        container.close()
    return report.run_id


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Invoke:
    """The fixed log, recorded once: the reports only read it."""
    folder = tmp_path_factory.mktemp("report")
    autoopt = Invoke(folder / "cli.db", folder)
    with FakeLLMServer(default=Dynamic(answer)) as server, pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPENAI_API_KEY", "sk-report-test")
        notes = record_run(
            autoopt,
            server,
            document=NOTES,
            model=PRICED,
            strategies=("llm_guided", "clarity_focus"),
            rounds=2,
            day=1,
            first_id=0,
        )
        drafts = record_run(
            autoopt,
            server,
            document=DRAFTS,
            model=UNPRICED,
            strategies=("structure_focus", "llm_guided"),
            rounds=1,
            day=2,
            first_id=1000,
        )
        assert server.errors == []
        assert server.requests_to() == 4  # the fifth call was the cache's
    assert (notes, drafts) == (NOTES_RUN, DRAFTS_RUN)
    return autoopt


NOTES_RUN = "00000000-0000-0000-0000-000000000001"
DRAFTS_RUN = "00000000-0000-0000-0000-0000000003e9"


def report(autoopt: Invoke, *args: str) -> str:
    result = autoopt("report", *args)
    assert (result.exit_code, result.stderr) == (0, ""), result.output
    return result.stdout


# --------------------------------------------------------------------------- #
# report strategies
# --------------------------------------------------------------------------- #

STRATEGIES = """\
strategy                     runs  tried  accepted  rate    mean gain  mean confidence  llm calls  cost
---------------------------  ----  -----  --------  ------  ---------  ---------------  ---------  -------------------
clarity_focus                1     2      0         0.0%    -          0.500            0          -
llm_guided                   2     4      3         75.0%   +10.0      0.815            4          $0.000186 + unknown
llm_guided->structure_focus  1     1      0         0.0%    -          0.500            1          $0.000024
structure_focus              1     2      2         100.0%  +12.0      0.900            0          -

rate: accepted / tried; mean gain: mean score gain of the accepted rounds;
a->b: rounds in which the LLM strategy a fell back to the rule b.
"""  # noqa: E501


def test_strategies(logged: Invoke) -> None:
    assert report(logged, "strategies") == STRATEGIES

    rows = json.loads(report(logged, "strategies", "--format", "json"))
    assert rows[1] == {
        "strategy": "llm_guided",
        "runs": 2,
        "tried": 4,
        "accepted": 3,
        "rejected": 1,
        "acceptance_rate": 0.75,
        "mean_improvement": 10.0,  # (18 + 6 + 6) / 3: the accepted rounds only
        "mean_confidence": 0.815,  # (1.0 + 0.5 + 0.88 + 0.88) / 4: every round
        "llm_calls": 4,
        "cached_calls": 1,
        "prompt_tokens": 1200,
        "completion_tokens": 320,
        "cost_usd": None,  # one call's price is unknown: so is the total
        "known_cost_usd": 0.000186,
        "unknown_cost_calls": 1,
    }
    assert [(r["strategy"], r["tried"], r["accepted"], r["cost_usd"]) for r in rows] == [
        ("clarity_focus", 2, 0, 0.0),
        ("llm_guided", 4, 3, None),
        ("llm_guided->structure_focus", 1, 0, 0.000024),
        ("structure_focus", 2, 2, 0.0),
    ]
    assert rows[0]["mean_improvement"] is None  # nothing accepted, no mean


# --------------------------------------------------------------------------- #
# report costs
# --------------------------------------------------------------------------- #

COSTS = {
    "run": """\
run                                   app     started               model           calls  cached  prompt tokens  completion tokens  cost
------------------------------------  ------  --------------------  --------------  -----  ------  -------------  -----------------  -------------------
00000000-0000-0000-0000-000000000001  Notes   2026-03-01T09:30:00Z  gpt-4o-mini     3      0       720            170                $0.000210
00000000-0000-0000-0000-0000000003e9  Drafts  2026-03-02T09:30:00Z  local-notes-7b  2      1       600            160                $0.000000 + unknown
total                                                                               5      1       1320           330                $0.000210 + unknown
""",  # noqa: E501
    "day": """\
day         runs  calls  cached  prompt tokens  completion tokens  cost
----------  ----  -----  ------  -------------  -----------------  -------------------
2026-03-01  1     3      0       720            170                $0.000210
2026-03-02  1     2      1       600            160                $0.000000 + unknown
total             5      1       1320           330                $0.000210 + unknown
""",
    "model": """\
model           runs  calls  cached  prompt tokens  completion tokens  cost
--------------  ----  -----  ------  -------------  -----------------  -------------------
gpt-4o-mini     1     3      0       720            170                $0.000210
local-notes-7b  1     2      1       600            160                $0.000000 + unknown
total                 5      1       1320           330                $0.000210 + unknown
""",
}
COST_FIGURES = {
    # calls, cached, prompt tokens, completion tokens, cost, known cost, calls of unknown cost
    "notes": (3, 0, 720, 170, 0.00021, 0.00021, 0),
    "drafts": (2, 1, 600, 160, None, 0.0, 1),
}


@pytest.mark.parametrize("by", ["run", "day", "model"])
def test_costs_table(logged: Invoke, by: str) -> None:
    assert report(logged, "costs", "--by", by) == COSTS[by]


def test_costs_json_and_csv(logged: Invoke) -> None:
    assert report(logged, "costs") == report(logged, "costs", "--by", "run", "--format", "table")
    figures = (
        "calls",
        "cached_calls",
        "prompt_tokens",
        "completion_tokens",
        "cost_usd",
        "known_cost_usd",
        "unknown_cost_calls",
    )
    by_run = json.loads(report(logged, "costs", "--format", "json"))
    assert [{k: r[k] for k in ("run_id", "app_name", "started_at", "model")} for r in by_run] == [
        {
            "run_id": NOTES_RUN,
            "app_name": "Notes",
            "started_at": "2026-03-01T09:30:00Z",
            "model": PRICED,
        },
        {
            "run_id": DRAFTS_RUN,
            "app_name": "Drafts",
            "started_at": "2026-03-02T09:30:00Z",
            "model": UNPRICED,
        },
    ]
    expected = [COST_FIGURES["notes"], COST_FIGURES["drafts"]]
    assert [tuple(r[k] for k in figures) for r in by_run] == expected

    by_day = json.loads(report(logged, "costs", "--by", "day", "--format", "json"))
    assert [(r["day"], r["runs"]) for r in by_day] == [("2026-03-01", 1), ("2026-03-02", 1)]
    assert [tuple(r[k] for k in figures) for r in by_day] == expected

    by_model = list(
        csv.DictReader(io.StringIO(report(logged, "costs", "--by", "model", "--format", "csv")))
    )
    assert [(r["model"], r["calls"], r["cost_usd"], r["known_cost_usd"]) for r in by_model] == [
        (PRICED, "3", "0.00021", "0.00021"),
        (UNPRICED, "2", "", "0.0"),  # unknown is empty, never 0
    ]


# --------------------------------------------------------------------------- #
# report runs
# --------------------------------------------------------------------------- #

RUNS = """\
run                                   app     status     started               prompts  optimized  rounds  accepted  rate    llm calls  cost
------------------------------------  ------  ---------  --------------------  -------  ---------  ------  --------  ------  ---------  -------------------
00000000-0000-0000-0000-000000000001  Notes   completed  2026-03-01T09:30:00Z  3        1          5       1         20.0%   3          $0.000210
00000000-0000-0000-0000-0000000003e9  Drafts  completed  2026-03-02T09:30:00Z  2        2          4       4         100.0%  2          $0.000000 + unknown
"""  # noqa: E501


def test_runs(logged: Invoke) -> None:
    assert report(logged, "runs") == RUNS

    notes, drafts = json.loads(report(logged, "runs", "--format", "json"))
    assert notes == {
        "run_id": NOTES_RUN,
        "app_name": "Notes",
        "status": "completed",
        "started_at": "2026-03-01T09:30:00Z",
        "finished_at": "2026-03-01T09:30:22Z",
        "prompts_found": 3,
        "prompts_optimized": 1,
        "versions_created": 4,
        "rounds": 5,
        "accepted": 1,
        "fallbacks": 1,
        "acceptance_rate": 0.2,
        "mean_improvement": 18.0,
        "llm_calls": 3,
        "cached_calls": 0,
        "cost_usd": 0.00021,
        "known_cost_usd": 0.00021,
        "unknown_cost_calls": 0,
    }
    assert (drafts["run_id"], drafts["acceptance_rate"], drafts["mean_improvement"]) == (
        DRAFTS_RUN,
        1.0,
        9.0,
    )
    assert (drafts["cost_usd"], drafts["known_cost_usd"], drafts["unknown_cost_calls"]) == (
        None,
        0.0,
        1,
    )


# --------------------------------------------------------------------------- #
# report confidence
# --------------------------------------------------------------------------- #

CONFIDENCE = """\
confidence  accepted  rejected  rounds
----------  --------  --------  ------
0.0-0.1     0         0
0.1-0.2     0         0
0.2-0.3     0         0
0.3-0.4     0         0
0.4-0.5     0         0
0.5-0.6     0         4         ....
0.6-0.7     0         0
0.7-0.8     0         0
0.8-0.9     2         0         ##
0.9-1.0     3         0         ###

9 rounds: 5 accepted (#), 4 rejected (.); one mark per round.
"""


def test_confidence(logged: Invoke) -> None:
    assert report(logged, "confidence") == CONFIDENCE

    buckets = json.loads(report(logged, "confidence", "--format", "json"))
    assert [b["bucket"] for b in buckets] == [f"{n / 10:.1f}-{(n + 1) / 10:.1f}" for n in range(10)]
    assert [(b["low"], b["high"]) for b in buckets][-1] == (0.9, 1.0)
    counts = {
        b["bucket"]: (b["accepted"], b["rejected"])
        for b in buckets
        if b["accepted"] or b["rejected"]
    }
    # 0.5: "no change" rounds; 0.88: llm_guided on the drafts; 0.9 and 1.0 (the last
    # bucket holds 1.0): structure_focus on the drafts and the model's Writer rewrite.
    assert counts == {"0.5-0.6": (0, 4), "0.8-0.9": (2, 0), "0.9-1.0": (3, 0)}


# --------------------------------------------------------------------------- #
# report cache
# --------------------------------------------------------------------------- #

CACHE = """\
llm cache (table llm_cache)
  entries    3 (0 live, 3 expired)
  hits       1 (answers served from an entry since it was stored)
llm calls (recorded by runs)
  calls      5
  cached     1 (20.0%)
version store
  prompts    5
  versions   8
  index      on
  lru        256 versions per process
  hit rate   not recorded (each process has its own LRU; its counters end with it)
"""


def test_cache(logged: Invoke) -> None:
    # The entries expired an hour after the runs of March 2026 (cache_ttl 3600).
    assert report(logged, "cache") == CACHE

    document = json.loads(report(logged, "cache", "--format", "json"))
    assert document == {
        "llm_cache": {"entries": 3, "live": 0, "expired": 3, "hits": 1},
        "llm_calls": {"calls": 5, "cached_calls": 1, "hit_rate": 0.2},
        "storage": {
            "prompts": 5,
            "versions": 8,
            "index": True,
            "lru_size": 256,
            "lru_hit_rate": None,  # not recorded anywhere: not invented
        },
    }
    # The LLM cache's own figures are the ones `llm cache stats` shows.
    stats = json.loads(logged("llm", "cache", "stats", "--format", "json").stdout)
    assert {s["figure"]: s["value"] for s in stats} == document["llm_cache"]


# --------------------------------------------------------------------------- #
# Around the reports
# --------------------------------------------------------------------------- #


def test_reports_on_an_empty_log(autoopt: Invoke) -> None:
    assert report(autoopt, "strategies").splitlines() == [
        "strategy  runs  tried  accepted  rate  mean gain  mean confidence  llm calls  cost",
        "--------  ----  -----  --------  ----  ---------  ---------------  ---------  ----",
    ]
    assert report(autoopt, "costs", "--by", "day", "--format", "json") == "[]\n"
    assert report(autoopt, "runs", "--format", "csv").startswith("run_id,app_name,status,")
    assert report(autoopt, "confidence").endswith(
        "\n0 rounds: 0 accepted (#), 0 rejected (.); one mark per round.\n"
    )
    assert "  cached     0 (-)\n" in report(autoopt, "cache")


def test_every_report_explains_itself_with_examples(autoopt: Invoke) -> None:
    for name in ("strategies", "costs", "runs", "confidence", "cache"):
        text = autoopt("report", name, "--help").stdout
        assert "Examples:\n    autoopt report " + name in text, name


def test_the_views_go_with_a_downgrade_and_come_back(autoopt: Invoke) -> None:
    engine = open_database(DatabaseSettings(url=autoopt.url))
    assert set(inspect(engine).get_view_names()) == VIEWS
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0005")
    assert inspect(engine).get_view_names() == []
    upgrade_to_head(engine)
    assert set(inspect(engine).get_view_names()) == VIEWS


def test_postgresql_views_give_the_same_reports(logged: Invoke) -> None:
    """The log replayed into PostgreSQL: every view-backed report reads the same."""
    if not postgres_backends():
        pytest.skip("AUTOOPT_TEST_POSTGRES_URL is not set")
    reports = [
        ("strategies",),
        ("costs", "--by", "run"),
        ("costs", "--by", "day"),
        ("costs", "--by", "model"),
        ("runs",),
        ("confidence",),
    ]
    with temporary_postgres_engine() as engine:
        source, target = logged.log(), SqlEventLog(engine)
        for record in source.read_all():
            target.append(record.stream_id, [record.event], record.stream_version - 1)
        url = engine.url.render_as_string(hide_password=False)
        for args in reports:
            for fmt in ("json", "table"):
                sqlite = report(logged, *args, "--format", fmt)
                postgres = logged("--database-url", url, "report", *args, "--format", fmt)
                assert (postgres.exit_code, postgres.stdout) == (0, sqlite), args
        assert set(inspect(engine).get_view_names()) == VIEWS
