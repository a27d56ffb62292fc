"""Hostile Dify DSL through the command line: a clean refusal or a clean run, never a crash.

What this proves, for the bad inputs of the DSL tests (the loader's catalogue and
the CLI's bad files) plus 560 inputs a seeded mutator makes from the real Dify
corpus (truncated, bit-flipped, invalid UTF-8, keys deleted, wrong types, deep
nesting, huge strings, unsafe tags, alias bombs, ...), fed to ``optimize``,
``prompts list`` and ``patches apply``, in-process and (a seeded sample) as
real subprocesses:

* every run ends with exit 0, or exit 1 and exactly one ``Error: `` line on
  stderr naming the input file (besides, at most, the documented ``Note:`` line
  about the language model); no traceback, no other exception, no secret;
* no run takes 10 s (a hang guard ends it and fails the case);
* nothing already stored changes: every event row and every other row present
  before is still there, equal, and every version file keeps its hash; a
  refused input adds no version file;
* YAML bombs (billion laughs, one long string aliased many times, an alias
  cycle, 10 000-deep nesting, a file over the size limit, /dev/zero, a 2 GB
  sparse file at the shipped 10 MB limit) are refused with the matching
  message inside the size and time limits;
* a named pipe given as the app is refused rather than waited on (xfail, strict:
  the fix belongs in ``infrastructure/dsl_files.read_bytes``).

A failure names the case and the seed: ``AUTOOPT_FAULT_SEED=<seed>`` reproduces it.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from autoopt.domain.dsl_loading import MAX_DEPTH, load_dsl
from tests.e2e.test_cli_dsl import APP_FILE_CASES, billion_laughs
from tests.faults.dsl_mutations import Case, generate, load_seeds
from tests.faults.hostile_checks import (
    HANG_SECONDS,
    problems_with_outcome,
    problems_with_store,
    run_in_process,
    run_subprocess,
)
from tests.faults.workspace import Workspace
from tests.unit.test_dsl_loading import BAD_INPUTS

#: The size limit these workspaces run with: small enough that "near and over the
#: limit" cases are quick, larger than every corpus file (the largest is 79 kB).
MAX_BYTES = 200_000
GENERATED = 560
SUBPROCESS_SAMPLE = 36
#: A small real app for the first, successful run that fills the database and store.
GOOD_APP = "langgenius__template_Code_Converter.yml"


def limit_input_size(workspace: Workspace, max_bytes: int) -> None:
    settings = yaml.safe_load(workspace.config_file.read_text(encoding="utf-8"))
    settings["optimizer"]["dsl"] = {"max_bytes": max_bytes}
    workspace.config_file.write_text(yaml.safe_dump(settings), encoding="utf-8")


def seed_store(workspace: Workspace, corpus_dir: Path, folder: Path) -> dict[str, Any]:
    """One successful run first, so that there are rows and files that must not change."""
    folder.mkdir(parents=True, exist_ok=True)
    good = folder / "good.yml"
    shutil.copyfile(corpus_dir / GOOD_APP, good)
    result = workspace.invoke("optimize", str(good))
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    before = workspace.snapshot()
    assert before["files"], "the seeding run stored no version file"
    assert any(before["tables"].values())
    return before


def commands_for(index: int, path: Path, folder: Path) -> tuple[str, ...]:
    """Mostly ``optimize`` (it reads, stores and writes); the other DSL readers in turn."""
    turn = index % 8
    if turn == 3:
        return ("prompts", "list", str(path), "--format", "json")
    if turn == 6:
        patches = folder / "no-patches.json"
        if not patches.exists():
            patches.write_text("[]", encoding="utf-8")
        return ("patches", "apply", str(path), str(patches), "--out", f"{path}.patched.yml")
    if turn == 7:
        return ("optimize", str(path), "--dry-run")
    return ("optimize", str(path))


def check_cases(
    workspace: Workspace,
    folder: Path,
    cases: list[Case],
    before: dict[str, Any],
    *,
    subprocess: bool = False,
    expect_refusal: bool = False,
) -> list[str]:
    """Run every case and return what went wrong, one entry per broken case."""
    failures: list[str] = []
    for index, case in enumerate(cases):
        path = folder / f"case-{index:03d}.yml"
        path.write_bytes(case.data)
        args = commands_for(index, path, folder)
        outcome = (run_subprocess if subprocess else run_in_process)(workspace, args)
        after = workspace.snapshot()
        problems = problems_with_outcome(outcome, path)
        # ``patches apply`` does not extract prompts, so the extractor's refusals are not its.
        if expect_refusal and args[0] != "patches" and outcome.exit_code != 1:
            problems.append(f"a bad input was accepted (exit {outcome.exit_code})")
        problems += problems_with_store(before, after, refused=outcome.exit_code != 0)
        if outcome.exit_code == 0 and args[0] == "optimize" and "--dry-run" not in args:
            problems += problems_with_output(path)
        if problems:
            failures.append(f"{case.name} ({' '.join(args[:2])}): " + "; ".join(problems))
        # What a successful run added is now part of what must not change.
        before = after
    return failures


def problems_with_output(path: Path) -> list[str]:
    """A successful run writes an app that loads again."""
    output = path.with_name(f"{path.stem}.optimized.yml")
    try:
        load_dsl(output.read_bytes(), str(output), 10 * MAX_BYTES)
    except Exception as exc:  # the test reports any failure, of any kind
        return [f"the output does not load again: {type(exc).__name__}: {exc}"[:300]]
    return []


def report(failures: list[str], seed: int, total: int) -> str:
    shown = "\n".join(failures[:40])
    return f"{len(failures)} of {total} cases broke (AUTOOPT_FAULT_SEED={seed}):\n{shown}"


@pytest.fixture
def prepared(workspace: Workspace, corpus_dir: Path, tmp_path: Path) -> dict[str, Any]:
    limit_input_size(workspace, MAX_BYTES)
    return seed_store(workspace, corpus_dir, tmp_path / "cases")


@pytest.fixture
def generated(corpus_dir: Path, fault_seed: int) -> list[Case]:
    seeds = load_seeds(sorted(corpus_dir.glob("*.yml")))
    return generate(fault_seed, seeds, GENERATED, MAX_BYTES)


# --- the generated cases ------------------------------------------------------------------


def test_the_mutator_is_reproducible_and_covers_every_kind(
    corpus_dir: Path, fault_seed: int, generated: list[Case]
) -> None:
    again = generate(fault_seed, load_seeds(sorted(corpus_dir.glob("*.yml"))), 40, MAX_BYTES)
    assert [(c.name, c.data) for c in again] == [(c.name, c.data) for c in generated[:40]]
    kinds = {case.kind for case in generated}
    assert len(kinds) == 16
    assert all(sum(c.kind == kind for c in generated) >= 30 for kind in kinds)
    # Not a pile of copies: nearly every case is a different input.
    assert len({case.data for case in generated}) > 0.95 * len(generated)


@pytest.mark.slow
def test_generated_hostile_inputs_in_process(
    workspace: Workspace,
    prepared: dict[str, Any],
    generated: list[Case],
    tmp_path: Path,
    fault_seed: int,
) -> None:
    failures = check_cases(workspace, tmp_path / "cases", generated, prepared)
    assert not failures, report(failures, fault_seed, len(generated))


@pytest.mark.slow
def test_a_sample_of_generated_inputs_through_the_real_command(
    workspace: Workspace,
    prepared: dict[str, Any],
    generated: list[Case],
    tmp_path: Path,
    fault_seed: int,
) -> None:
    sample = random.Random(fault_seed).sample(generated, SUBPROCESS_SAMPLE)
    failures = check_cases(workspace, tmp_path / "cases", sample, prepared, subprocess=True)
    assert not failures, report(failures, fault_seed, len(sample))


# --- the known bad inputs of the DSL tests ------------------------------------------------


def known_bad_inputs() -> list[Case]:
    """The loader's catalogue of bad inputs and the CLI tests' bad files, as files."""
    cases = [
        Case(f"unit-{bad.id}", "known", bad.data.encode("utf-8", "surrogatepass"))
        if isinstance(bad.data, str)
        else Case(f"unit-{bad.id}", "known", bad.data)
        for bad in BAD_INPUTS
        # A case refused only under its own smaller size limit is not bad under ours.
        if bad.max_bytes >= MAX_BYTES
    ]
    for param in APP_FILE_CASES:
        name, setup, _expected = param.values
        if name in ("missing.yml", "folder.yml"):
            continue  # not contents; test_files_that_are_not_regular_files has them
        scratch = Path(os.environ.get("TMPDIR", "/tmp")) / f"autoopt-hostile-{os.getpid()}"
        scratch.mkdir(exist_ok=True)
        setup(scratch)
        cases.append(Case(f"cli-{param.id}", "known", (scratch / str(name)).read_bytes()))
        shutil.rmtree(scratch)
    return cases


def test_the_known_bad_inputs_are_refused_cleanly(
    workspace: Workspace, prepared: dict[str, Any], tmp_path: Path, fault_seed: int
) -> None:
    cases = known_bad_inputs()
    assert len(cases) > 60
    failures = check_cases(workspace, tmp_path / "cases", cases, prepared, expect_refusal=True)
    assert not failures, report(failures, fault_seed, len(cases))


# --- YAML bombs ---------------------------------------------------------------------------


def app_with(value: str) -> bytes:
    """A valid chat app carrying hostile YAML under an extra key."""
    return (
        "app: {mode: chat, name: Bomb}\n"
        "model_config:\n  pre_prompt: 'Answer {{question}}.'\n"
        f"extra: {value}\n"
    ).encode()


BOMBS = [
    ("billion-laughs", billion_laughs().encode(), "aliases expand to more than"),
    (
        "laughs-inside-an-app",
        app_with(
            "["
            + ", ".join(
                ["&l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
                + [f"&l{n} [" + ", ".join([f"*l{n - 1}"] * 10) + "]" for n in range(1, 9)]
            )
            + "]"
        ),
        # Whichever bound trips first: 10**9 nodes, or 3 * 10**9 characters.
        "aliases expand to more than",
    ),
    (
        "one-long-string-aliased-many-times",
        app_with("[&s '" + "q" * 50_000 + "', " + ", ".join(["*s"] * 20_000) + "]"),
        f"aliases expand to more than the limit of {MAX_BYTES:,} characters",
    ),
    ("alias-cycle", app_with("&r [1, {b: [*r]}]"), "the alias *r is inside the node it names"),
    # libyaml stops at its own depth limit (1000) before the loader's scan counts to 100.
    ("nested-10000-lists", app_with("[" * 10_000 + "]" * 10_000), "nesting depth"),
    ("nested-10000-maps", app_with("{a: " * 10_000 + "x" + "}" * 10_000), "levels deep"),
    ("nested-101-lists", app_with("[" * 101 + "]" * 101), f"more than {MAX_DEPTH} levels deep"),
    ("one-byte-over-the-limit", app_with("'" + "x" * MAX_BYTES + "'"), "the limit of"),
    ("twenty-times-the-limit", b"a: " + b"x" * (20 * MAX_BYTES), "the limit of"),
]


@pytest.mark.parametrize("subprocess", [False, True], ids=["in-process", "subprocess"])
@pytest.mark.parametrize(("name", "data", "message"), BOMBS, ids=[bomb[0] for bomb in BOMBS])
def test_yaml_bombs_are_refused_within_the_limits(
    workspace: Workspace,
    prepared: dict[str, Any],
    tmp_path: Path,
    name: str,
    data: bytes,
    message: str,
    subprocess: bool,
) -> None:
    path = tmp_path / "cases" / f"{name}.yml"
    path.write_bytes(data)
    args = ("optimize", str(path))
    outcome = (run_subprocess if subprocess else run_in_process)(workspace, args)
    assert problems_with_outcome(outcome, path) == [], outcome.describe()
    assert outcome.exit_code == 1, outcome.describe()
    assert message in outcome.stderr, outcome.describe()
    assert problems_with_store(prepared, workspace.snapshot(), refused=True) == []


# --- things that are not regular files ----------------------------------------------------


def special_paths(folder: Path) -> list[tuple[str, Path, str]]:
    """(name, path, the phrase its error line has)"""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "a-folder.yml").mkdir()
    (folder / "dangling.yml").symlink_to(folder / "nowhere.yml")
    (folder / "zero.yml").symlink_to("/dev/zero")
    (folder / "random.yml").symlink_to("/dev/urandom")
    (folder / "null.yml").symlink_to("/dev/null")
    return [
        ("missing", folder / "missing.yml", "no such file"),
        ("dangling-symlink", folder / "dangling.yml", "no such file"),
        ("dev-zero", folder / "zero.yml", "limit"),
        ("dev-urandom", folder / "random.yml", "limit"),
        ("dev-null", folder / "null.yml", "empty"),
    ]


@pytest.mark.parametrize("subprocess", [False, True], ids=["in-process", "subprocess"])
def test_files_that_are_not_regular_files(
    workspace: Workspace, prepared: dict[str, Any], tmp_path: Path, subprocess: bool
) -> None:
    failures = []
    for name, path, phrase in special_paths(tmp_path / "special"):
        for args in (("optimize", str(path)), ("prompts", "list", str(path))):
            outcome = (run_subprocess if subprocess else run_in_process)(workspace, args)
            problems = problems_with_outcome(outcome, path)
            if outcome.exit_code != 1 or phrase not in outcome.stderr:
                problems.append(f"expected exit 1 and {phrase!r}")
            if problems:
                failures.append(f"{name} ({args[0]}): {'; '.join(problems)}\n{outcome.describe()}")
    assert problems_with_store(prepared, workspace.snapshot(), refused=True) == []
    assert not failures, "\n".join(failures)


def test_a_folder_is_refused_by_prompts_list_and_is_an_app_folder_to_optimize(
    workspace: Workspace, prepared: dict[str, Any], tmp_path: Path
) -> None:
    """``optimize`` takes folders of apps (an empty one does nothing); ``prompts list`` does not."""
    folder = tmp_path / "a-folder.yml"
    folder.mkdir()
    listed = run_in_process(workspace, ("prompts", "list", str(folder)))
    assert problems_with_outcome(listed, folder) == [], listed.describe()
    assert listed.exit_code == 1 and "is a folder, not a file" in listed.stderr, listed.describe()
    optimized = run_in_process(workspace, ("optimize", str(folder)))
    assert problems_with_outcome(optimized, folder) == [], optimized.describe()
    assert (optimized.exit_code, optimized.stderr) == (0, ""), optimized.describe()
    assert problems_with_store(prepared, workspace.snapshot(), refused=True) == []


def test_a_folder_holding_a_named_pipe_skips_it(
    workspace: Workspace, prepared: dict[str, Any], tmp_path: Path
) -> None:
    """A folder's catalogue only takes regular files: a FIFO among them is never opened."""
    folder = tmp_path / "with-fifo"
    folder.mkdir()
    os.mkfifo(folder / "pipe.yml")
    outcome = run_in_process(workspace, ("optimize", str(folder)))
    assert not outcome.hung, outcome.describe()
    assert outcome.exit_code == 0, outcome.describe()
    assert problems_with_outcome(outcome, folder) == [], outcome.describe()


def test_a_named_pipe_given_as_the_app_is_refused_not_waited_on(
    workspace: Workspace, prepared: dict[str, Any], tmp_path: Path
) -> None:
    pipe = tmp_path / "pipe.yml"
    os.mkfifo(pipe)
    outcome = run_in_process(workspace, ("prompts", "list", str(pipe)))
    assert not outcome.hung, f"still waiting on the pipe after {HANG_SECONDS} s"
    assert outcome.exit_code == 1, outcome.describe()
    assert problems_with_outcome(outcome, pipe) == [], outcome.describe()


@pytest.mark.parametrize("subprocess", [False, True], ids=["in-process", "subprocess"])
def test_files_over_the_default_limit_are_refused_without_reading_them_whole(
    workspace: Workspace, corpus_dir: Path, tmp_path: Path, subprocess: bool
) -> None:
    """At the shipped limit (10 MB): a 2 GB sparse file and /dev/zero end in one error line."""
    before = seed_store(workspace, corpus_dir, tmp_path / "cases")
    huge = tmp_path / "huge.yml"
    with huge.open("wb") as handle:
        handle.truncate(2_000_000_000)  # sparse: costs no disk, would cost 2 GB of memory
    zero = tmp_path / "zero.yml"
    zero.symlink_to("/dev/zero")
    for path in (huge, zero):
        outcome = (run_subprocess if subprocess else run_in_process)(
            workspace, ("optimize", str(path))
        )
        assert problems_with_outcome(outcome, path) == [], outcome.describe()
        assert outcome.exit_code == 1, outcome.describe()
        assert "more than the limit of 10000000 bytes" in outcome.stderr, outcome.describe()
    assert problems_with_store(before, workspace.snapshot(), refused=True) == []
