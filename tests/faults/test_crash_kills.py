"""``autoopt optimize`` killed with SIGKILL at random moments, and at two chosen seams.

The random part runs the real command on corpus apps, in subprocesses, against
one database and version store that live through the whole test, as an
operator's would. Each round kills a run after a seeded random delay drawn
over the run's own duration (start-up included, so some kills land in the
imports, most in the work: model calls, version writes, appends, the output
file), until at least ``KILLS`` runs died by the signal. After every round
(:func:`tests.faults.crash_checks.recover`): every version the log records has
its file; ``fsck`` names only what a crash can cause; ``fsck --repair`` fixes
it; ``fsck``, ``storage verify`` and ``projections status`` are clean; no temp
file remains; and the next run of the same app succeeds and leaves no temp
file beside its output.

The chosen seams make the two crash windows certain rather than likely: the
process dies right after a version file is written and before its event is
appended, and right after the events are appended and before the read models
are updated. Reproduce a failure with ``AUTOOPT_FAULT_SEED=<seed>``.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.faults.crash_checks import recover, temp_files
from tests.faults.workspace import Workspace

pytestmark = pytest.mark.slow

KILLS = 100
APPS = 5
# Corpus apps whose prompts the fake model rewrites: big enough that a run
# spends most of its time working, small enough for 100+ rounds.
MIN_PROMPTS, MAX_PROMPTS = 3, 12
FAULTY = "tests.faults.faulty_autoopt"


def pick_apps(corpus: Path, into: Path, rng: random.Random) -> list[Path]:
    from autoopt.domain.dsl import extract_prompts
    from autoopt.domain.dsl_loading import load_dsl

    suitable = []
    for source in sorted(corpus.glob("*.yml")):
        if ".optimized." in source.name:
            continue
        count = len(extract_prompts(load_dsl(source.read_bytes(), str(source))))
        if MIN_PROMPTS <= count <= MAX_PROMPTS:
            suitable.append(source)
    into.mkdir(parents=True)
    apps = []
    for number, source in enumerate(rng.sample(suitable, APPS)):
        target = into / f"app{number}.yml"
        shutil.copyfile(source, target)
        apps.append(target)
    return apps


def timed_run(workspace: Workspace, *args: str) -> float:
    started = time.perf_counter()
    finished = workspace.run(*args)
    assert finished.returncode == 0, finished.describe()
    return time.perf_counter() - started


def next_run_succeeds(workspace: Workspace, app: Path, context: str) -> None:
    result = workspace.invoke("optimize", str(app), "--format", "json")
    assert result.exit_code == 0, f"{context}: the next run failed:\n{result.output}"
    leftovers = temp_files(app.parent)
    assert leftovers == [], f"{context}: temp files beside the output: {leftovers}"


def test_random_sigkills_lose_nothing_and_fsck_repairs_the_rest(
    workspace: Workspace, corpus_dir: Path, fault_seed: int
) -> None:
    rng = random.Random(fault_seed)
    apps = pick_apps(corpus_dir, workspace.root / "apps", rng)
    startup = timed_run(workspace, "--version")
    # The first run of each app makes the baseline versions; the rest are
    # killed at a moment drawn over how long a run of that app takes.
    duration = {app: timed_run(workspace, "optimize", str(app), "--no-cache") for app in apps}

    kills = finished = 0
    met: Counter[str] = Counter()
    while kills < KILLS:
        rounds = kills + finished + 1
        assert rounds <= 3 * KILLS, f"only {kills} of {rounds} runs were killed in time"
        app = rng.choice(apps)
        context = f"seed {fault_seed}, round {rounds}, {app.name}"
        delay = rng.uniform(0.8 * startup, duration[app])
        process, out, err = workspace.start("optimize", str(app), "--no-cache")
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
        if process.returncode == -signal.SIGKILL:
            kills += 1
        else:
            finished += 1
            assert process.returncode == 0, f"{context}: {err.read_text()}\n{out.read_text()}"
        met.update(recover(workspace, context))
        next_run_succeeds(workspace, app, context)

    # The kills must have hit the windows that matter, not only the start-up.
    assert met["version file without its event"] + met["read models behind the log"] > 0, met
    print(f"{kills} kills, {finished} runs finished first; disagreements met: {dict(met)}")


@pytest.mark.parametrize("nth_file", [1, 2, 5])
def test_a_kill_between_version_file_and_event_is_repaired(
    workspace: Workspace, corpus_dir: Path, fault_seed: int, nth_file: int
) -> None:
    [app] = pick_apps(corpus_dir, workspace.root / "apps", random.Random(fault_seed))[:1]
    crashed = workspace.run(
        "optimize",
        str(app),
        program=FAULTY,
        extra_env={"AUTOOPT_TEST_FAULT": f"after-version-file:{nth_file}"},
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.describe()
    check = workspace.invoke("fsck")
    assert check.exit_code == 1
    orphans = [line for line in check.stdout.splitlines() if "has no event in the log" in line]
    assert len(orphans) == 1, check.stdout
    assert re.search(r": version \d+ has no event in the log$", orphans[0]), orphans
    met = recover(workspace, f"after version file {nth_file}")
    assert met["version file without its event"] == 1
    next_run_succeeds(workspace, app, f"after version file {nth_file}")


def test_a_kill_between_append_and_projection_update_is_repaired(
    workspace: Workspace, corpus_dir: Path, fault_seed: int
) -> None:
    [app] = pick_apps(corpus_dir, workspace.root / "apps", random.Random(fault_seed))[:1]
    crashed = workspace.run(
        "optimize", str(app), program=FAULTY, extra_env={"AUTOOPT_TEST_FAULT": "before-projection"}
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.describe()
    status = workspace.invoke("projections", "status", "--format", "json")
    assert all(row["lag"] > 0 for row in json.loads(status.stdout)), status.stdout
    check = workspace.invoke("fsck")
    assert check.exit_code == 1
    behind = [line for line in check.stdout.splitlines() if "event(s) not applied" in line]
    assert len(behind) == 6, check.stdout
    met = recover(workspace, "before projection")
    assert met["read models behind the log"] == 6
    next_run_succeeds(workspace, app, "before projection")
