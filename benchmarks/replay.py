"""``autoopt runs replay --verify`` of a 50-prompt run, as a user runs it and in-process.

The run is recorded here, once, before any timing: an app written by this
script (one start node and 50 LLM nodes whose system prompts are weak in
varied ways: hedges, filler, no structure, some long, some Chinese) is
optimized offline by ``autoopt optimize`` (no API key: the LLM strategies fall
back to the rule-based ones, as they do for a user without a key) into a
temporary SQLite log and version store. ``autoopt prompts list`` must find 50
prompts in the app and the run must optimize some of them, or the script
stops: a replay of a run that did nothing would measure nothing.

Then, in interleaved rounds:

- ``autoopt runs replay RUN --verify`` as a subprocess (the console script
  beside ``sys.executable``), wall clock from spawn to exit: the user's wait,
  start-up, settings, database and the replay included, with a bytecode cache
  (a ``PYTHONPYCACHEPREFIX`` folder filled by the recording), as after ``pip
  install``. Held to the aim of issue #11, under 2 s. Its output must be
  ``identical``.
- ``RunReplayer(container.event_log).replay(run_id)`` in this process, over a
  container built once (as the CLI builds one per invocation): the replay
  work alone, to tell it apart from start-up. No aim.

With ``--profile`` the in-process replay is run once more under cProfile and
the top functions by cumulative and by own time are printed. Nothing here
asserts on timings: it prints and exits 0.

    python benchmarks/replay.py [--quick] [--json] [--rounds N] [--prompts N] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from figures import Figure, table

from autoopt.infrastructure.bootstrap import Container, build
from autoopt.infrastructure.replay import RunReplayer
from autoopt.infrastructure.settings import load_settings

AIM_S = 2.0
PROMPTS = 50
START = "1720000000000"
NO_KEY = "AUTOOPT_BENCH_NO_API_KEY"  # llm.api_key_env names a variable that is never set

TOPICS = [
    ("support assistant", "the product manual", "customer questions"),
    ("travel planner", "the traveller's budget", "itineraries"),
    ("code reviewer", "the team's style guide", "pull requests"),
    ("recipe writer", "the pantry list", "weeknight dinners"),
    ("tax explainer", "the current tax year", "deductions"),
    ("meeting summarizer", "the transcript", "action items"),
    ("job-ad editor", "the hiring brief", "job descriptions"),
    ("fitness coach", "the client's goals", "weekly plans"),
    ("legal clause checker", "the contract text", "risky clauses"),
    ("product namer", "the brand guide", "name ideas"),
]
WEAK = [
    # Hedges and filler, one paragraph: clarity work for the rules.
    "Please note that you are basically a {role} for {{{{#{start}.subject#}}}}. Maybe answer"
    " in a kind of friendly way. Actually, use only facts from {source}. If you do not know,"
    " say so. Keep the answer short and sort of focused on {things}.",
    # Repetition and politeness padding: efficiency work.
    "You are a {role}. You are a {role} who helps with {things}. Please, please make sure that"
    " you always, always read {source} very carefully and really very thoroughly before you"
    " answer, and please make sure that you answer about {{{{#{start}.subject#}}}} and really"
    " only about {{{{#{start}.subject#}}}}. In order to be helpful, it is important to note that"
    " you should be helpful. Due to the fact that users are busy, be brief.",
    # A wall of instructions without any structure: structure work.
    "act as {role} the user gives {{{{#{start}.subject#}}}} you check it against {source} then"
    " you list problems then you suggest fixes then you rate it from 1 to 10 then you write a"
    " summary then you ask if they want more help and you should probably mention {things}"
    " somewhere and maybe use bullet points or maybe not whatever seems right",
    # Chinese, with hedges.
    "你是{{{{#{start}.subject#}}}}的{role}。其实你需要大概处理关于{things}的问题。请尽量先看一下{source}，"
    "然后可能给出一个差不多的回答。不要承诺太多。",
    # Long and rambling: efficiency and clarity.
    "Hello! So basically what we need from you, as a {role}, is to kind of help out with"
    " {things}. There is {source}, which you can maybe look at. The user will send"
    " {{{{#{start}.subject#}}}} and then you do your thing. It would be nice if the answer"
    " was good. It would also be nice if the answer was not too long, but also not too short,"
    " and it should basically cover everything that matters, more or less, if possible. "
    "Thanks a lot in advance for doing this, we really appreciate it very much.",
]


@dataclass(frozen=True)
class Recorded:
    config: Path
    app: Path
    run_id: str
    prompts: int
    optimized: int
    events: int
    env: dict[str, str]


def llm_node(number: int) -> dict[str, Any]:
    role, source, things = TOPICS[number % len(TOPICS)]
    template = WEAK[number % len(WEAK)]
    # The node number keeps every text distinct, as prompts of a real app are.
    text = template.format(role=role, source=source, things=things, start=START)
    text += f" (Step {number + 1}.)"
    node_id = str(int(START) + number + 1)
    return {
        "id": node_id,
        "type": "custom",
        "data": {
            "title": f"{role.capitalize()} {number + 1}",
            "type": "llm",
            "model": {"mode": "chat", "name": "gpt-4o-mini", "provider": "openai"},
            "prompt_template": [{"id": f"p-{node_id}", "role": "system", "text": text}],
        },
    }


def app_document(prompts: int) -> dict[str, Any]:
    start = {
        "id": START,
        "type": "custom",
        "data": {
            "title": "Start",
            "type": "start",
            "variables": [{"label": "subject", "type": "text-input", "variable": "subject"}],
        },
    }
    return {
        "app": {"mode": "workflow", "name": f"Replay bench, {prompts} prompts"},
        "kind": "app",
        "version": "0.1.5",
        "workflow": {
            "graph": {"edges": [], "nodes": [start, *(llm_node(n) for n in range(prompts))]}
        },
    }


def console_script() -> Path:
    script = Path(sys.executable).parent / ("autoopt.exe" if os.name == "nt" else "autoopt")
    if not script.exists():
        raise SystemExit(f"no console script at {script}: pip install -e . first")
    return script


def autoopt(config: Path, env: dict[str, str], *args: str) -> str:
    argv = [str(console_script()), "--config", str(config), *args]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


def record(root: Path, prompts: int) -> Recorded:
    """Writes the app and settings, optimizes the app offline; the run to replay."""
    config = root / "autoopt.yaml"
    settings = {
        "optimizer": {
            "database": {"url": f"sqlite:///{root / 'bench.db'}"},
            "storage": {"storage_dir": str(root / "versions")},
            "llm": {"api_key_env": NO_KEY},
        }
    }
    config.write_text(yaml.safe_dump(settings), encoding="utf-8")
    app = root / "bench.yml"
    app.write_text(yaml.safe_dump(app_document(prompts), allow_unicode=True), encoding="utf-8")
    # Only the settings file configures this run: no OPTIMIZER_* variable of the caller.
    env = {k: v for k, v in os.environ.items() if k != NO_KEY and not k.startswith("OPTIMIZER_")}
    # Compiled modules, as after pip install, also where PYTHONDONTWRITEBYTECODE is set.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(root / "pycache")
    autoopt(config, env, "db", "upgrade")
    found = len(json.loads(autoopt(config, env, "prompts", "list", str(app), "--format", "json")))
    if found != prompts:
        raise SystemExit(f"prompts list found {found} prompts in the app, not {prompts}")
    report = json.loads(autoopt(config, env, "optimize", str(app), "--format", "json"))
    return summarize(config, app, env, report, prompts)


def summarize(
    config: Path, app: Path, env: dict[str, str], report: dict[str, Any], prompts: int
) -> Recorded:
    run_id = str(report["run_id"])
    optimized = sum(p["decision"] == "optimized" for p in report["prompts"])
    if len(report["prompts"]) != prompts or optimized == 0:
        raise SystemExit(f"the run optimized {optimized} of {len(report['prompts'])} prompts")
    check = json.loads(
        autoopt(config, env, "runs", "replay", run_id, "--verify", "--format", "json")
    )
    if not check["identical"]:
        raise SystemExit(f"the recorded run does not replay identically: {check['divergence']}")
    return Recorded(config, app, run_id, prompts, optimized, check["events_recorded"], env)


def replay_cli(recorded: Recorded) -> float:
    argv = [str(console_script()), "--config", str(recorded.config)]
    argv += ["runs", "replay", recorded.run_id, "--verify"]
    started = time.perf_counter()
    done = subprocess.run(argv, env=recorded.env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0 or done.stdout.strip() != "identical":
        raise SystemExit(f"runs replay --verify: {done.returncode} {done.stdout}{done.stderr}")
    return elapsed


def replay_in_process(container: Container, run_id: str) -> float:
    started = time.perf_counter()
    result = RunReplayer(container.event_log).replay(run_id)
    elapsed = time.perf_counter() - started
    if not result.identical:
        raise SystemExit(f"in-process replay diverged: {result.divergence}")
    return elapsed


def profile(container: Container, run_id: str, top: int) -> str:
    """cProfile of one in-process replay: top functions by cumulative, then by own time."""
    profiler = cProfile.Profile()
    profiler.enable()
    RunReplayer(container.event_log).replay(run_id)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


def measure(prompts: int, rounds: int, profile_top: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="autoopt-replay-") as folder:
        recorded = record(Path(folder), prompts)
        settings = load_settings(recorded.config, environ=recorded.env)
        container = build(settings)
        try:
            # One untimed replay of each kind: page cache, imports, SQLAlchemy's caches.
            replay_cli(recorded)
            replay_in_process(container, recorded.run_id)
            cli: list[float] = []
            in_process: list[float] = []
            for _ in range(rounds):
                cli.append(replay_cli(recorded))
                in_process.append(replay_in_process(container, recorded.run_id))
            profiled = profile(container, recorded.run_id, profile_top) if profile_top else ""
        finally:
            container.close()
    return {
        "prompts": recorded.prompts,
        "optimized": recorded.optimized,
        "events": recorded.events,
        "cli_s": cli,
        "in_process_s": in_process,
        "profile": profiled,
    }


def figures_of(result: dict[str, Any]) -> list[Figure]:
    prompts = result["prompts"]
    cli = statistics.median(result["cli_s"])
    return [
        Figure(
            figure=f"runs replay, {prompts}-prompt run (CLI)",
            median=cli,
            unit="s",
            aim=f"< {AIM_S:.0f} s",
            met=cli < AIM_S,
        ),
        Figure(
            figure=f"runs replay, {prompts}-prompt run (in-process)",
            median=statistics.median(result["in_process_s"]),
            unit="s",
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="autoopt runs replay --verify of a large run")
    parser.add_argument("--quick", action="store_true", help="a few seconds, for CI smoke runs")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 10, quick 2)")
    parser.add_argument("--prompts", type=int, default=PROMPTS, help="LLM nodes in the app")
    parser.add_argument("--profile", action="store_true", help="cProfile one in-process replay")
    args = parser.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 10)
    result = measure(args.prompts, rounds, profile_top=25 if args.profile else 0)
    figures = figures_of(result)
    if args.json:
        document = {
            "benchmark": "replay",
            "rounds": rounds,
            "python": platform.python_version(),
            "figures": [figure.as_dict() for figure in figures],
            **{k: v for k, v in result.items() if k != "profile"},
        }
        print(json.dumps(document, indent=2))
        return 0
    print(
        f"autoopt runs replay --verify of a run of {result['prompts']} prompts"
        f" ({result['optimized']} optimized, {result['events']} events),"
        f" median of {rounds} interleaved rounds\n"
    )
    print(table(figures))
    # Paired per round, so a slow moment of the machine does not land in one side only.
    gap = statistics.median(
        c - i for c, i in zip(result["cli_s"], result["in_process_s"], strict=True)
    )
    print(f"\nCLI minus in-process (interpreter, imports, settings, database): {gap:.2f} s")
    if result["profile"]:
        print(f"\ncProfile of one in-process replay:\n{result['profile']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
