"""Start-up of ``autoopt --version`` and ``autoopt --help`` against ``python -c "import click"``.

Each command runs in a fresh subprocess (stdout discarded) and is timed from
spawn to exit with the wall clock, so the figure is what a user waits for,
interpreter start-up and ``site`` included. The floor is the same interpreter
doing nothing but ``import click``: the CLI cannot start faster than the
framework it is built on, and the aim is to stay within 3x of it. The
commands run in interleaved rounds (baseline, --version, --help, baseline, ...)
so that a noisy machine slows all of them alike; medians of the rounds are
shown and the ratio is autoopt's median over the baseline's median.

The console script next to ``sys.executable`` is what is timed, as a user runs
it. Two bytecode settings are measured, each for the baseline and for autoopt:

- with a bytecode cache (a fresh ``PYTHONPYCACHEPREFIX`` folder, warmed once
  before timing), as after ``pip install``, which compiles every module: this
  is the figure the aim holds;
- without writing one (``PYTHONDONTWRITEBYTECODE=1``), as in containers and
  CI jobs that set that variable: the ``.pyc`` files that ship beside the
  stdlib and site-packages are read, but an editable checkout's own modules
  (autoopt's, here) are compiled from source on every start, unless something
  else wrote ``__pycache__`` folders into it. Shown for information, no aim.

The human output ends with a ``python -X importtime`` summary of
``import autoopt.cli.main``: what the CLI imports beyond click, slowest first.
Nothing here asserts on timings: it prints and exits 0.

    python benchmarks/startup.py [--quick] [--json] [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from figures import Figure, table

AIM_RATIO = 3.0
BASELINE = "python -c 'import click'"


@dataclass(frozen=True)
class Command:
    key: str
    figure: str  # the figure's name; "" for the baseline
    argv: list[str]


def console_script() -> Path:
    """The ``autoopt`` entry point installed beside this interpreter."""
    script = Path(sys.executable).parent / ("autoopt.exe" if os.name == "nt" else "autoopt")
    if not script.exists():
        raise SystemExit(f"no console script at {script}: pip install -e . first")
    return script


def commands() -> list[Command]:
    script = str(console_script())
    return [
        Command("baseline", "", [sys.executable, "-c", "import click"]),
        Command("version", "autoopt --version start-up", [script, "--version"]),
        Command("help", "autoopt --help start-up", [script, "--help"]),
    ]


def environment(cache: Path | None) -> dict[str, str]:
    """The environment for one bytecode setting; ``None``: write no bytecode, read what exists."""
    env = dict(os.environ)
    env.pop("PYTHONPYCACHEPREFIX", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    # Inherited import-time tracing or dev mode would slow every command alike but skew ratios.
    for name in ("PYTHONPROFILEIMPORTTIME", "PYTHONDEVMODE", "PYTHONTRACEMALLOC"):
        env.pop(name, None)
    if cache is None:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    else:
        env["PYTHONPYCACHEPREFIX"] = str(cache)
    return env


def run_once(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def check_outputs(script: Path, env: dict[str, str]) -> str:
    """The --version line; a start-up figure of a command that fails would be meaningless."""
    version = subprocess.run(
        [str(script), "--version"], env=env, capture_output=True, text=True, check=True
    ).stdout
    if not version.startswith("autoopt, version "):
        raise SystemExit(f"unexpected --version output: {version!r}")
    subprocess.run([str(script), "--help"], env=env, capture_output=True, check=True)
    return version.strip()


def measure(rounds: int, warmups: int) -> tuple[dict[str, dict[str, list[float]]], str]:
    """Seconds per command and bytecode setting, in interleaved rounds."""
    todo = commands()
    with tempfile.TemporaryDirectory(prefix="autoopt-startup-") as folder:
        cached = Path(folder) / "cached"
        settings = {"cached": environment(cached), "uncached": environment(None)}
        version = check_outputs(console_script(), settings["cached"])
        for _ in range(warmups):  # fills the cache and the OS page cache
            for command in todo:
                for env in settings.values():
                    run_once(command.argv, env)
        times: dict[str, dict[str, list[float]]] = {
            setting: {command.key: [] for command in todo} for setting in settings
        }
        for _ in range(rounds):
            for setting, env in settings.items():
                for command in todo:
                    times[setting][command.key].append(run_once(command.argv, env))
    return times, version


def figures_of(times: dict[str, dict[str, list[float]]]) -> list[Figure]:
    result = []
    for setting, suffix, aim in (
        ("cached", "", f"<= {AIM_RATIO:.0f}x"),
        ("uncached", ", no bytecode cache", ""),
    ):
        base = statistics.median(times[setting]["baseline"]) * 1000
        for command in commands()[1:]:
            median = statistics.median(times[setting][command.key]) * 1000
            ratio = median / base
            result.append(
                Figure(
                    figure=command.figure + suffix,
                    median=median,
                    unit="ms",
                    baseline=BASELINE + suffix,
                    baseline_median=base,
                    ratio=ratio,
                    aim=aim,
                    met=ratio <= AIM_RATIO if aim else None,
                )
            )
    return result


def importtime(top: int) -> dict[str, Any]:
    """``-X importtime`` of ``import autoopt.cli.main``, with a warm bytecode cache."""
    with tempfile.TemporaryDirectory(prefix="autoopt-importtime-") as folder:
        env = environment(Path(folder))
        argv = [sys.executable, "-X", "importtime", "-c", "import autoopt.cli.main"]
        subprocess.run(argv, env=env, capture_output=True, check=True)  # warm the cache
        lines = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stderr
    # Entries print after their imports, so a top-level entry closes the subtree above it.
    subtrees: dict[str, list[tuple[str, int, int, int]]] = {}
    pending: list[tuple[str, int, int, int]] = []
    for line in lines.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)", line)
        if match:
            self_us, cumulative_us, indent, name = match.groups()
            pending.append((name, len(indent) // 2, int(self_us), int(cumulative_us)))
            if not indent:
                subtrees[name], pending = pending, []
    main = subtrees.get("autoopt.cli.main", [])
    direct = [(name, total) for name, depth, _, total in main if depth == 1 and name != "click"]
    return {
        "interpreter_us": sum(
            tree[-1][3] for name, tree in subtrees.items() if name != "autoopt.cli.main"
        ),
        "click_us": next((total for name, depth, _, total in main if name == "click"), 0),
        "autoopt_cli_main_us": main[-1][3] if main else 0,
        "direct_imports_us": sorted(direct, key=lambda entry: -entry[1])[:top],
        "slowest_self_us": sorted(
            ((name, own) for name, _, own, _ in main), key=lambda entry: -entry[1]
        )[:top],
    }


def print_importtime(summary: dict[str, Any]) -> None:
    print("\npython -X importtime -c 'import autoopt.cli.main' (bytecode cached, one run):")
    print(f"  interpreter, site    {summary['interpreter_us'] / 1000:6.1f} ms")
    print(f"  autoopt.cli.main     {summary['autoopt_cli_main_us'] / 1000:6.1f} ms, of which")
    print(f"    click              {summary['click_us'] / 1000:6.1f} ms")
    for name, total in summary["direct_imports_us"]:
        print(f"    {name:<30} {total / 1000:6.1f} ms")
    print("  slowest modules of that import by self time:")
    for name, own in summary["slowest_self_us"]:
        print(f"    {name:<30} {own / 1000:6.1f} ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="autoopt CLI start-up against import click")
    parser.add_argument("--quick", action="store_true", help="a few seconds, for CI smoke runs")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 30, quick 5)")
    args = parser.parse_args(argv)
    rounds = args.rounds or (5 if args.quick else 30)
    times, version = measure(rounds, warmups=1 if args.quick else 2)
    figures = figures_of(times)
    if args.json:
        document = {
            "benchmark": "startup",
            "rounds": rounds,
            "python": platform.python_version(),
            "version_output": version,
            "figures": [figure.as_dict() for figure in figures],
            "seconds": times,
        }
        print(json.dumps(document, indent=2))
        return 0
    print(f"CLI start-up, wall clock per fresh process, median of {rounds} interleaved rounds")
    print(f"({sys.executable}, Python {platform.python_version()}; {version})\n")
    print(table(figures))
    print_importtime(importtime(top=8))
    return 0


if __name__ == "__main__":
    sys.exit(main())
