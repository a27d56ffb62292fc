"""The command frame: help with an example everywhere, every command in the README,
version, and errors without tracebacks."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from autoopt.cli.main import cli
from autoopt.infrastructure.db import head_revision
from tests.conftest import REPO_ROOT

HEAD = head_revision()


def all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in group.commands.items():
        path = (*prefix, name)
        found.append(path)
        if isinstance(command, click.Group):
            found.extend(all_commands(command, path))
    return found


COMMANDS = all_commands(cli)


def test_the_expected_commands_exist() -> None:
    assert {
        ("db", "upgrade"),
        ("db", "current"),
        ("db", "check"),
        ("events", "list"),
        ("events", "show"),
        ("events", "tail"),
    } <= set(COMMANDS)


@pytest.mark.parametrize("path", [(), *COMMANDS], ids=lambda p: " ".join(p) or "autoopt")
def test_every_command_has_help_text(path: tuple[str, ...]) -> None:
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    assert command.help and command.help.strip(), f"{' '.join(path)} has no help text"
    for flag in ("--help", "-h"):
        result = CliRunner().invoke(cli, [*path, flag])
        assert result.exit_code == 0
        assert result.stdout.startswith("Usage: ")
    # Every command shows how it is used, in a block click prints as written.
    shown = CliRunner().invoke(cli, [*path, "--help"]).stdout
    example = re.search(r"^  Examples?:\n((?:    autoopt .*\n)+)", shown, re.MULTILINE)
    assert example, f"{' '.join(path) or 'autoopt'} --help shows no example"
    if path:
        commands = [_words(line) for line in example[1].splitlines()]
        assert all(words[: len(path)] == list(path) for words in commands), (
            f"an example of {' '.join(path)} runs another command"
        )


def _words(example: str) -> list[str]:
    """The command words of an example line, global options skipped."""
    words = example.split()[1:]
    while words and words[0].startswith("-"):
        words = words[2:] if "=" not in words[0] else words[1:]
    return words


def readme_commands() -> set[tuple[str, ...]]:
    """The command paths the README's CLI block names: 'autoopt a b ... | c ...' lines."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("## The command line", 1)[1].split("```", 2)[1]
    found: set[tuple[str, ...]] = set()
    for line in block.splitlines():
        if not line.startswith("autoopt "):
            continue
        first, *siblings = line.split(" | ")
        path: list[str] = []
        for word in first.split()[1:]:
            if not re.fullmatch(r"[a-z][a-z-]*", word):
                break
            path.append(word)
        if path:
            found.add(tuple(path))
            found.update((*path[:-1], s.split()[0]) for s in siblings)
    return found


def test_the_readme_lists_every_command() -> None:
    leaves = {path for path in COMMANDS if not isinstance(command_at(path), click.Group)}
    missing = sorted(" ".join(p) for p in leaves - readme_commands())
    assert not missing, f"the README's command list lacks: {', '.join(missing)}"


def command_at(path: tuple[str, ...]) -> click.Command:
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    return command


def test_every_option_has_help_text() -> None:
    for path in [(), *COMMANDS]:
        command: click.Command = cli
        for name in path:
            command = command.commands[name]  # type: ignore[attr-defined]
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                assert param.help, f"{' '.join(path)} {param.opts} has no help"


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.stdout == "autoopt, version 0.1.0\n"


def test_the_version_is_the_installed_distributions() -> None:
    # --version reads the dist-info itself to skip importing importlib.metadata;
    # it must agree with importlib.metadata, the reference.
    from importlib.metadata import version

    from autoopt.cli.main import DISTRIBUTION, installed_version

    assert installed_version() == version(DISTRIBUTION)
    assert installed_version("pytest") == version("pytest")


def test_unknown_command_is_a_usage_error() -> None:
    assert CliRunner().invoke(cli, ["frobnicate"]).exit_code == 2


def test_the_installed_script_reports_a_bad_config_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "autoopt.yaml"
    config.write_text("optimizer:\n  storage:\n    cache_size: lots\n")
    script = Path(sys.executable).parent / "autoopt"
    result = subprocess.run(
        [str(script), "--config", str(config), "events", "list"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("OPTIMIZER_")},
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"Error: {config}: optimizer.storage.cache_size: "
        "Input should be a valid integer, unable to parse string as an integer\n"
    )


@pytest.mark.parametrize(
    ("args", "env", "logged"),
    [
        (["-v"], {}, True),
        ([], {"OPTIMIZER_LOG_LEVEL": "INFO"}, True),
        ([], {}, False),
    ],
)
def test_logs_go_to_stderr_at_the_chosen_level(
    tmp_path: Path, args: list[str], env: dict[str, str], logged: bool
) -> None:
    script = Path(sys.executable).parent / "autoopt"
    base = {k: v for k, v in os.environ.items() if not k.startswith("OPTIMIZER_")}
    result = subprocess.run(
        [str(script), *args, "db", "upgrade"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        env={**base, **env},
    )
    assert result.returncode == 0
    url = "sqlite:///./data/optimizer/autoopt.db"
    assert result.stdout == f"Upgraded {url} from an empty database to {HEAD} (head)\n"
    expected = f"INFO autoopt.infrastructure.db: migrating {url} from empty to {HEAD}\n"
    assert result.stderr == (expected if logged else "")
