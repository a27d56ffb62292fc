"""Every benchmark, one table: figure, median, the floor or peer of the same run, ratio, aim.

    python benchmarks/run_all.py [--quick] [--json] [--only NAME ...]

Each benchmark script runs in a process of its own (one's heap and caches
cannot flatter the next) with ``--json``; the ``figures`` of every script's
output are printed together, after a line saying what machine they ran on.
``--quick`` passes ``--quick`` on (small sizes, one or few rounds: the CI run
that keeps the scripts from rotting); ``--json`` prints the machine, the
figures and every script's full output as one document. PostgreSQL figures
appear when ``AUTOOPT_BENCH_POSTGRES_URL`` is set (see event_log.py).

Nothing here asserts on timings: a figure that misses its aim is printed as
``NOT MET``, and the exit code is 1 only when a script fails to run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from figures import Figure, table

HERE = Path(__file__).resolve().parent
BENCHMARKS = ("event_log", "storage", "projections", "replay", "optimize_corpus", "startup")


def machine() -> dict[str, Any]:
    """What the figures ran on: enough to compare two tables fairly."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "date": time.strftime("%Y-%m-%d"),
    }


def run_benchmark(name: str, quick: bool) -> tuple[dict[str, Any] | None, str]:
    """One script's JSON output, or None and what it printed on failure."""
    command = [sys.executable, str(HERE / f"{name}.py"), "--json", *(["--quick"] if quick else [])]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=HERE.parent)
    if done.returncode != 0:
        return None, done.stderr.strip() or done.stdout.strip()
    try:
        return json.loads(done.stdout), ""
    except json.JSONDecodeError as exc:
        return None, f"not JSON ({exc}): {done.stdout[:500]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run for CI")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run just these")
    args = parser.parse_args(argv)

    outputs: dict[str, Any] = {}
    figures: list[Figure] = []
    failures: list[str] = []
    for name in args.only or BENCHMARKS:
        started = time.perf_counter()
        output, problem = run_benchmark(name, args.quick)
        took = time.perf_counter() - started
        if output is None:
            failures.append(f"{name}: {problem}")
            continue
        outputs[name] = output
        figures.extend(Figure.from_dict(f) for f in output.get("figures", []))
        if not args.json:
            print(f"ran {name}.py in {took:.0f} s", file=sys.stderr)

    host = machine()
    if args.json:
        document = {
            "machine": host,
            "quick": args.quick,
            "figures": [f.as_dict() for f in figures],
            "benchmarks": outputs,
            "failures": failures,
        }
        print(json.dumps(document, indent=2))
    else:
        mode = "quick sizes (smoke run, not for comparison)" if args.quick else "full sizes"
        print(
            f"{host['cpu']}, {host['cores']} cores, {host['system']}, Python {host['python']},"
            f" SQLite {host['sqlite']}, {host['date']}; {mode}"
        )
        print(table(figures))
        met = sum(1 for f in figures if f.met)
        aimed = sum(1 for f in figures if f.met is not None)
        print(f"{met} of {aimed} aims met")
    for failure in failures:
        print(f"FAILED {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
