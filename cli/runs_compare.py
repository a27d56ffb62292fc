"""``autoopt runs compare``: what changed between two runs of the same app."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from autoopt.cli.context import CliState, pass_state
from autoopt.cli.output import emit, format_option

if TYPE_CHECKING:
    from autoopt.domain.events import DomainEvent
    from autoopt.domain.replay import PromptDecision

COLUMNS = ("node", "field", "first", "second", "change")


@click.command("compare")
@click.argument("first_run", metavar="RUN1")
@click.argument("second_run", metavar="RUN2")
@format_option
@pass_state
def compare(state: CliState, first_run: str, second_run: str, fmt: str) -> None:
    """Compare two runs of one app, prompt by prompt (unique id prefixes will do).

    For each prompt: its decision in each run (optimized with the score and
    strategy, kept, or skipped with the reason) and what changed: the prompt's
    text between the two exports, the decision, the result, or the prompt
    appearing or disappearing.

    \b
    Examples:
      autoopt runs compare 5805acc6 9e1f0b2c
      autoopt runs compare 5805acc6 9e1f0b2c --format json
    """
    from autoopt.cli.runs_commands import resolve_run
    from autoopt.domain.errors import ConfigurationError

    first, second = resolve_run(state, first_run), resolve_run(state, second_run)
    if first["workflow_id"] != second["workflow_id"]:
        raise ConfigurationError(
            f"runs {str(first['run_id'])[:8]} and {str(second['run_id'])[:8]} are of different "
            f"apps ({first['workflow_id']!r}, {second['workflow_id']!r})"
        )
    log = state.container().event_log
    before = _run_events(log, str(first["run_id"]))
    after = _run_events(log, str(second["run_id"]))
    emit(_rows(before, after), COLUMNS, fmt)


def _run_events(log: Any, run_id: str) -> list[DomainEvent]:
    return [record.event for record in log.read_stream(f"run-{run_id}")]


def _rows(before: list[DomainEvent], after: list[DomainEvent]) -> list[dict[str, Any]]:
    from autoopt.domain.replay import prompt_decisions

    old, new = prompt_decisions(before), prompt_decisions(after)
    old_texts, new_texts = _texts(before), _texts(after)
    order = [*old, *(pid for pid in new if pid not in old)]
    rows = []
    for pid in order:
        a, b = old.get(pid), new.get(pid)
        shown = a or b
        assert shown is not None
        rows.append(
            {
                "node": shown.node,
                "field": shown.field_path,
                "first": a.describe() if a else "",
                "second": b.describe() if b else "",
                "change": _change(a, b, old_texts.get(pid), new_texts.get(pid)),
            }
        )
    return rows


def _texts(events: list[DomainEvent]) -> dict[str, str]:
    from autoopt.domain.events import PromptExtracted

    return {e.prompt_id: e.text for e in events if isinstance(e, PromptExtracted)}


def _change(
    a: PromptDecision | None, b: PromptDecision | None, old: str | None, new: str | None
) -> str:
    if a is None:
        return "new prompt"
    if b is None:
        return "prompt gone"
    changes = []
    if old != new:
        changes.append("text changed")
    if a.decision != b.decision:
        changes.append("decision")
    elif not a.same_as(b):
        changes.append("result")
    return ", ".join(changes)
