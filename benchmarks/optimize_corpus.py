"""Offline optimization of every Dify export in the corpus, persistence included.

Each app runs through ``OptimizerService`` exactly as ``autoopt optimize`` runs
it: a real SQLite event log (``synchronous=FULL``) and a real file store in a
temporary folder, the patched DSL written atomically beside it. Printed: the
total time, prompts per second, and the median time per prompt (the gap
between successive prompts of a run, so it includes the prompt's versions and
events), against the aim of 20 ms per prompt. It asserts nothing.

    python benchmarks/optimize_corpus.py [--quick] [--json] [--corpus DIR]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from figures import Figure

from autoopt.domain.dsl_loading import load_dsl
from autoopt.infrastructure.bootstrap import build
from autoopt.infrastructure.dsl_files import FileSink
from autoopt.infrastructure.settings import Override, load_settings, tool_version

AIM_MS = 20.0
DEFAULT_CORPUS = Path(__file__).resolve().parents[1].parent / "shared/fixtures/dify"


def _marker(marks: list[float]) -> Callable[[object], None]:
    return lambda _prompt: marks.append(time.perf_counter())


def run(corpus: Path, limit: int | None) -> dict[str, Any]:
    files = sorted(corpus.glob("*.yml"))[:limit]
    gaps: list[float] = []
    prompts = optimized = 0
    with tempfile.TemporaryDirectory(prefix="autoopt-bench-") as folder:
        root = Path(folder)
        settings = load_settings(
            None,
            [
                Override(("database", "url"), f"sqlite:///{root / 'bench.db'}", "bench"),
                Override(("storage", "storage_dir"), str(root / "versions"), "bench"),
            ],
            environ={},
        )
        container = build(settings)
        service = container.optimizer_service()
        config = settings.optimization.config()
        started = time.perf_counter()
        for index, source in enumerate(files):
            data = source.read_bytes()
            app = load_dsl(data, str(source))
            marks: list[float] = [time.perf_counter()]
            report = service.run(
                app,
                data.decode("utf-8-sig"),
                config,
                effective_config=settings.effective(),
                tool_version=tool_version(),
                sink=FileSink(root / f"{index}.optimized.yml"),
                progress=_marker(marks),
            )
            gaps.extend(b - a for a, b in itertools.pairwise(marks))
            prompts += len(report.prompts)
            optimized += len(report.optimized)
        total = time.perf_counter() - started
        container.close()
    median_ms = statistics.median(gaps) * 1000 if gaps else 0.0
    return {
        "apps": len(files),
        "prompts": prompts,
        "optimized": optimized,
        "total_s": round(total, 3),
        "prompts_per_s": round(prompts / total, 1) if total else 0.0,
        "median_ms_per_prompt": round(median_ms, 2),
        "p90_ms_per_prompt": round(statistics.quantiles(gaps, n=10)[-1] * 1000, 2)
        if len(gaps) > 1
        else median_ms,
        "aim_ms_per_prompt": AIM_MS,
        "aim_met": median_ms < AIM_MS,
    }


def figures(result: dict[str, Any]) -> list[Figure]:
    """The headline figures, in run_all.py's shape."""
    scope = f"{result['prompts']} prompts of {result['apps']} apps"
    return [
        Figure(
            f"optimize offline, per prompt median ({scope})",
            result["median_ms_per_prompt"],
            "ms",
            aim=f"< {AIM_MS:.0f} ms",
            met=result["aim_met"],
        ),
        Figure(f"optimize offline, per prompt p90 ({scope})", result["p90_ms_per_prompt"], "ms"),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the first 10 apps only")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--corpus", type=Path, default=Path(os.environ.get("AUTOOPT_CORPUS_DIR", DEFAULT_CORPUS))
    )
    args = parser.parse_args(argv)
    if not args.corpus.is_dir():
        print(f"no corpus at {args.corpus}; set AUTOOPT_CORPUS_DIR", file=sys.stderr)
        return 1
    result = run(args.corpus, 10 if args.quick else None)
    if args.json:
        print(json.dumps({**result, "figures": [f.as_dict() for f in figures(result)]}, indent=2))
        return 0
    print("Offline optimization of the corpus (SQLite synchronous=FULL, durable file store)")
    print(f"apps {result['apps']}, prompts {result['prompts']}, improved {result['optimized']}")
    print(f"total {result['total_s']:.2f} s, {result['prompts_per_s']:.1f} prompts/s")
    verdict = "met" if result["aim_met"] else "NOT met"
    print(
        f"per prompt: median {result['median_ms_per_prompt']:.2f} ms, "
        f"p90 {result['p90_ms_per_prompt']:.2f} ms (aim < {AIM_MS:.0f} ms: {verdict})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
