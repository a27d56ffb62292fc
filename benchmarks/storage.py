"""Latency of the prompt version file store, beside floors measured in the same run.

Measured, in microseconds per operation, for ``FileSystemStorage`` with default
settings (index on, cache on, sharding off) on the normal disk:

- ``save_version``: versions 1..N of three prompts, round-robin, each written
  durably (fsync of the file and of its folder);
- ``get_version`` from disk, through a second store with ``use_cache=False``
  (the files are in the OS page cache, as on any busy machine; nothing is
  evicted), and from the cache of the store that saved them (hits only);
- ``get_latest_version`` of those prompts (default store, so its version is cached);
- ``latest_version_number`` of a prompt with 10 versions and of one with 10,000
  (1,000 with ``--quick``, to stay within a few seconds), to show that it does
  not grow with the folder, and ``list_versions`` of the 10-version prompt.
  These two prompts are saved once, through ``save_version``, into a store
  that every round reads.

Each round saves into a fresh temporary folder; medians of the rounds are shown.
The floors are fair because they do the same I/O with the same bytes and leave
out only what is under scrutiny (naming, locks, the index, pydantic): for saves,
the encoded version JSON, made before timing, written to a temp file that is
fsynced, renamed over the target and followed by a folder fsync, as
``write_atomic`` does; for disk reads, ``read_bytes`` + ``json.loads`` of the
same files; for cache hits, a dict lookup of the same keys, called the same way.

Within a round autoopt and its floor run interleaved in chunks, so drifting disk
latency (fsync time on a shared machine changes several-fold within seconds)
hits both alike; the ratio is the median of the per-round ratios. The aims beat
the seed tool's figures (save ~15 ms, get ~8 ms from disk and ~0.05 ms from
cache, latest ~2 ms, list ~30 ms) tenfold, keep saves within 2x of their floor
and cache hits under 5 us. Nothing here asserts on timings: it prints, exits 0.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from figures import Figure

from autoopt.domain.models import PromptVersion, Scores
from autoopt.infrastructure.storage import FileSystemStorage
from autoopt.infrastructure.storage.codec import encode_version
from autoopt.infrastructure.storage.naming import prompt_dir_name

Step = Callable[[], object]
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
PROMPTS = [f"wf-1/17115289158{n:02d}/prompt_template/0/text" for n in range(3)]
TEN, BIG = "wf-2/ten-versions/text", "wf-2/many-versions/text"
TEXT = (
    "You are a careful analyst. Summarize {{#sys.query#}} for a busy reader in three"
    " sentences: the claim, the evidence and what is still unknown. Quote no more than"
    " ten words, name every source, and answer in the language of the question. "
) * 4  # about 1 KB, a typical system prompt


@dataclass(frozen=True)
class Size:
    rounds: int
    versions: int  # saved per prompt per round
    big: int  # versions of the big prompt, saved once
    passes: int  # how often the reads go over their keys per round
    chunks: int


@dataclass(frozen=True)
class Aim:
    row: str
    value: str  # "autoopt_us" or "ratio"
    limit: float
    text: str


ROWS = {
    "save": "save_version (durable)",
    "get_disk": "get_version, disk",
    "get_cache": "get_version, cache hit",
    "latest": "get_latest_version",
    "latest_ten": "latest_version_number, 10 v.",
    "latest_big": "latest_version_number, {big:,} v.",
    "list": "list_versions, 10 v.",
}
AIMS = [
    Aim("save", "ratio", 2.0, "<= 2x floor"),
    Aim("save", "autoopt_us", 1500, "<= 1,500 us"),
    Aim("get_disk", "autoopt_us", 800, "<= 800 us"),
    Aim("get_cache", "autoopt_us", 5, "<= 5 us"),
    Aim("latest", "autoopt_us", 200, "<= 200 us"),
    Aim("list", "autoopt_us", 3000, "<= 3,000 us"),
]


def make_version(prompt_id: str, number: int) -> PromptVersion:
    return PromptVersion(
        prompt_id=prompt_id,
        version=number,
        text=f"{TEXT}(revision {number})",
        kind="baseline" if number == 1 else "optimized",
        created_at=EPOCH + timedelta(minutes=number),
        scores=Scores(overall=71.5, clarity=80.0, efficiency=64.25),
        strategy=None if number == 1 else "clarity",
        parent_version=number - 1 or None,
        run_id="run-1",
    )


def atomic_write(target: Path, data: bytes) -> None:
    """The save floor: what ``write_atomic(durable=True)`` does, by hand."""
    temp = target.with_name(f".{target.name}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, target)
    folder = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def read_json(path: Path) -> object:
    """The disk-read floor."""
    return json.loads(path.read_bytes())


def interleaved(steps: dict[str, list[Step]], chunks: int) -> dict[str, float]:
    """Microseconds per step of each list; the lists take turns, chunk by chunk."""
    seconds = dict.fromkeys(steps, 0.0)
    names = list(steps)
    gc.collect()
    gc.freeze()  # keep the prepared objects out of the collector's way while timing
    try:
        for c in range(chunks):
            for name in names[c % len(names) :] + names[: c % len(names)]:
                todo = steps[name]
                chunk = todo[len(todo) * c // chunks : len(todo) * (c + 1) // chunks]
                start = time.perf_counter()
                for step in chunk:
                    step()
                seconds[name] += time.perf_counter() - start
    finally:
        gc.unfreeze()
    return {name: seconds[name] / len(steps[name]) * 1e6 for name in names}


def build_shared(directory: Path, big: int) -> tuple[FileSystemStorage, float]:
    """The store with the 10-version and the big prompt; returns it and us per save."""
    store = FileSystemStorage(directory)
    versions = [make_version(TEN, n) for n in range(1, 11)]
    versions += [make_version(BIG, n) for n in range(1, big + 1)]
    start = time.perf_counter()
    for version in versions:
        store.save_version(version)
    return store, (time.perf_counter() - start) / len(versions) * 1e6


def run_round(directory: Path, shared: FileSystemStorage, size: Size) -> dict[str, dict[str, Any]]:
    chunks, passes = size.chunks, size.passes
    home, floor_home = directory / "autoopt", directory / "floor"
    store = FileSystemStorage(home)
    versions = [make_version(p, n) for n in range(1, size.versions + 1) for p in PROMPTS]
    floor_saves: list[Step] = []
    for version in versions:
        folder = floor_home / prompt_dir_name(version.prompt_id)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{version.version}.json"
        floor_saves.append(partial(atomic_write, target, encode_version(version)))
    saves: list[Step] = [partial(store.save_version, v) for v in versions]
    out = {"save": interleaved({"autoopt": saves, "floor": floor_saves}, chunks)}

    keys = [(v.prompt_id, v.version) for v in versions] * passes
    cold = FileSystemStorage(home, use_cache=False)
    disk = [partial(cold.get_version, p, n) for p, n in keys]
    files = [partial(read_json, home / prompt_dir_name(p) / f"{n}.json") for p, n in keys]
    out["get_disk"] = interleaved({"autoopt": disk, "floor": files}, chunks)

    last = range(max(1, size.versions - 9), size.versions + 1)  # in the 128-entry cache
    hot = [(p, n) for p in PROMPTS for n in last] * passes * 50
    table = {(p, n): store.get_version(p, n) for p, n in hot}
    hits_before = store.hits
    cached = [partial(store.get_version, p, n) for p, n in hot]
    lookups = [partial(table.__getitem__, key) for key in hot]
    out["get_cache"] = interleaved({"autoopt": cached, "floor": lookups}, chunks)
    out["get_cache"]["hit_rate"] = (store.hits - hits_before) / len(hot)

    reps = len(PROMPTS) * 10 * passes
    latest = [partial(store.get_latest_version, PROMPTS[i % 3]) for i in range(reps)]
    out["latest"] = interleaved({"autoopt": latest}, chunks)
    numbers = {
        name: [partial(shared.latest_version_number, prompt_id)] * reps
        for name, prompt_id in (("ten", TEN), ("big", BIG))
    }
    both = interleaved(numbers, chunks)
    out["latest_ten"], out["latest_big"] = {"autoopt": both["ten"]}, {"autoopt": both["big"]}
    out["list"] = interleaved({"autoopt": [partial(shared.list_versions, TEN)] * reps}, chunks)
    return out


def summarize(samples: list[dict[str, dict[str, Any]]], size: Size) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for key, label in ROWS.items():
        row: dict[str, Any] = {"operation": label.format(big=size.big)}
        for name in ("autoopt", "floor"):
            if name in samples[0][key]:
                row[f"{name}_us"] = statistics.median(s[key][name] for s in samples)
                row[f"samples_{name}_us"] = [s[key][name] for s in samples]
        if "floor" in samples[0][key]:
            row["ratio"] = statistics.median(s[key]["autoopt"] / s[key]["floor"] for s in samples)
        rows[key] = row
    rows["get_cache"]["hit_rate"] = min(s["get_cache"]["hit_rate"] for s in samples)
    big_vs_ten = statistics.median(
        s["latest_big"]["autoopt"] / s["latest_ten"]["autoopt"] for s in samples
    )
    return {"rows": rows, "latest_big_vs_ten": big_vs_ten}


def check_aims(rows: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"row": a.row, "operation": rows[a.row]["operation"], "aim": a.text}
        | {"value": rows[a.row][a.value], "met": rows[a.row][a.value] <= a.limit}
        for a in AIMS
    ]


def print_table(result: dict[str, Any], aims: list[dict[str, Any]], size: Size) -> None:
    print(f"FileSystemStorage latency, us per operation, median of {size.rounds} rounds")
    print(
        f"python {platform.python_version()}, folder {tempfile.gettempdir()}, "
        f"{size.versions} versions x {len(PROMPTS)} prompts saved per round; the "
        f"{size.big:,}-version prompt took {result['build_us_per_save']:,.0f} us per save"
    )
    head = f"{'operation':<36}{'autoopt':>10}{'floor':>9}{'ratio':>8}  {'aim':<13}"
    print(f"{head}\n{'-' * (len(head) + 8)}")
    for key, row in result["rows"].items():
        floor = f"{row['floor_us']:>9,.1f}" if "floor_us" in row else f"{'-':>9}"
        ratio = f"{row['ratio']:>7.2f}x" if "ratio" in row else f"{'-':>8}"
        lines = [a for a in aims if a["row"] == key] or [{}]
        for i, aim in enumerate(lines):
            met = ("met" if aim["met"] else "NOT met") if aim else ""
            start = f"{row['operation']:<36}{row['autoopt_us']:>10,.1f}{floor}{ratio}"
            print(f"{start if i == 0 else ' ' * len(start)}  {aim.get('aim', ''):<13}{met}")
    print(
        f"latest_version_number at {size.big:,} versions / at 10: "
        f"{result['latest_big_vs_ten']:.2f}x (O(1): index hint + forward probe)"
    )
    print(
        "floors: save = temp write + fsync + os.replace + folder fsync of the same bytes;"
        " disk = read_bytes + json.loads; cache hit = dict lookup"
    )


def figures(result: dict[str, Any], size: Size) -> list[Figure]:
    """The headline figures, in run_all.py's shape."""
    rows = result["rows"]

    def row(key: str, baseline: str | None, aim: str, met: bool) -> Figure:
        data = rows[key]
        return Figure(
            data["operation"],
            data["autoopt_us"],
            "us",
            baseline,
            data.get("floor_us"),
            data.get("ratio"),
            aim,
            met,
        )

    save, hit = rows["save"], rows["get_cache"]
    ten, big = rows["latest_ten"]["autoopt_us"], rows["latest_big"]["autoopt_us"]
    return [
        row("save", "write+fsync+replace floor", "<= 2x floor", save["ratio"] <= 2),
        row("get_cache", "dict lookup", "< 5 us", hit["autoopt_us"] < 5),
        row("get_disk", "read+json.loads", "<= 800 us", rows["get_disk"]["autoopt_us"] <= 800),
        row("latest", None, "<= 200 us", rows["latest"]["autoopt_us"] <= 200),
        Figure(
            f"latest_version_number, {size.big:,} versions",
            big,
            "us",
            "same at 10 versions",
            ten,
            result["latest_big_vs_ten"],
            "O(1): <= 1.5x",
            result["latest_big_vs_ten"] <= 1.5,
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="FileSystemStorage latency")
    parser.add_argument("--quick", action="store_true", help="a few seconds, for CI smoke runs")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    size = Size(3, 10, 1_000, 2, 4) if args.quick else Size(5, 100, 10_000, 5, 20)
    with tempfile.TemporaryDirectory(prefix="autoopt-bench-") as tmp:
        shared, build_us = build_shared(Path(tmp) / "shared", size.big)
        samples = []
        for _ in range(size.rounds):
            with tempfile.TemporaryDirectory(prefix="autoopt-bench-") as round_dir:
                samples.append(run_round(Path(round_dir), shared, size))
    result = {**summarize(samples, size), "build_us_per_save": build_us}
    aims = check_aims(result["rows"])
    if args.json:
        meta = {"python": platform.python_version(), "folder": tempfile.gettempdir()}
        headline = [f.as_dict() for f in figures(result, size)]
        document = {**meta, "size": vars(size), "aims": aims, **result, "figures": headline}
        print(json.dumps(document, indent=2))
    else:
        print_table(result, aims, size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
