"""``autoopt runs replay``: re-run a recorded run from the log, and what-if."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import click

from autoopt.cli.context import CliState, pass_state
from autoopt.cli.output import document_format_option, render

if TYPE_CHECKING:
    from autoopt.infrastructure.replay import DecisionChange, ReplayResult

DECISION_COLUMNS = ("node", "field", "decision")
WHAT_IF_COLUMNS = ("node", "field", "recorded", "what_if", "changed")


@click.command("replay")
@click.argument("run_id")
@click.option(
    "--verify", is_flag=True, help="Print only the verdict: 'identical' or the first divergence."
)
@click.option(
    "--with",
    "changes",
    multiple=True,
    metavar="KEY=VALUE",
    help="What-if: replay under another setting (strategies, score_threshold, "
    "min_confidence, max_iterations) and show which decisions change. Repeatable.",
)
@document_format_option
@pass_state
def replay(state: CliState, run_id: str, verify: bool, changes: tuple[str, ...], fmt: str) -> None:
    """Re-run RUN from the log alone and compare its decisions with the recorded ones.

    The replay takes the DSL text and settings the run recorded, its LLM
    answers, ids and times, and appends nothing, writes nothing and calls no
    model. Exit code 0 when every event is reproduced ('identical'), 1 at the
    first divergence. With --with, the run is replayed under other settings
    (recorded LLM answers where the request is the same, the rule-based
    fallback where it is not) and the changed decisions are listed.

    \b
    Examples:
      autoopt runs replay 5805acc6 --verify
      autoopt runs replay 5805acc6 --with min_confidence=0.8 --with max_iterations=1
    """
    from autoopt.cli.runs_commands import resolve_run
    from autoopt.infrastructure.replay import RunReplayer

    if verify and changes:
        raise click.UsageError("--verify checks the recorded settings; it cannot take --with")
    parsed = _parse_changes(changes)
    run = resolve_run(state, run_id)
    replayer = RunReplayer(state.container().event_log)
    if parsed:
        _show_what_if(replayer.what_if(str(run["run_id"]), parsed), fmt)
        return
    result = replayer.replay(str(run["run_id"]))
    _show_replay(result, verify, fmt)
    if not result.identical:
        sys.exit(1)


def _parse_changes(changes: tuple[str, ...]) -> dict[str, str]:
    parsed = {}
    for change in changes:
        key, sep, value = change.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise click.BadParameter(f"{change!r} is not KEY=VALUE", param_hint="--with")
        parsed[key.strip()] = value.strip()
    return parsed


def _show_replay(result: ReplayResult, verify: bool, fmt: str) -> None:
    from autoopt.domain.replay import prompt_decisions

    divergence = result.divergence
    verdict = "identical" if divergence is None else divergence.describe()
    decisions = list(prompt_decisions(result.replayed).values())
    if fmt == "json":
        document: dict[str, Any] = {
            "run_id": result.run_id,
            "identical": divergence is None,
            "events_recorded": len(result.recorded),
            "events_replayed": len(result.replayed),
            "divergence": None
            if divergence is None
            else {
                "position": divergence.position,
                "event_type": divergence.event_type,
                "context": divergence.context,
                "detail": divergence.detail,
            },
        }
        if not verify:
            document["prompts"] = [
                {
                    "prompt_id": d.prompt_id,
                    "decision": d.decision,
                    "baseline": d.baseline,
                    "score": d.score,
                    "strategy": d.strategy,
                    "reason": d.reason,
                }
                for d in decisions
            ]
        click.echo(json.dumps(document, indent=2, ensure_ascii=False))
        return
    if not verify:
        rows = [
            {"node": d.node, "field": d.field_path, "decision": d.describe()} for d in decisions
        ]
        click.echo(render(rows, DECISION_COLUMNS, "table"))
        click.echo(f"{len(result.replayed)} events replayed, {len(result.recorded)} recorded")
    click.echo(verdict)


def _show_what_if(changes: list[DecisionChange], fmt: str) -> None:
    changed = sum(c.changed for c in changes)
    if fmt == "json":
        document = {
            "changed": changed,
            "prompts": [
                {
                    "prompt_id": c.recorded.prompt_id,
                    "recorded": c.recorded.describe(),
                    "what_if": c.what_if.describe(),
                    "changed": c.changed,
                }
                for c in changes
            ],
        }
        click.echo(json.dumps(document, indent=2, ensure_ascii=False))
        return
    rows = [
        {
            "node": c.recorded.node,
            "field": c.recorded.field_path,
            "recorded": c.recorded.describe(),
            "what_if": c.what_if.describe(),
            "changed": "*" if c.changed else "",
        }
        for c in changes
    ]
    click.echo(render(rows, WHAT_IF_COLUMNS, "table"))
    click.echo(f"{changed} of {len(changes)} decisions would change")
