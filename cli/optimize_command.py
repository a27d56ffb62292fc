"""``autoopt optimize``: improve the prompts of one or more Dify apps."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from autoopt.cli.context import CliState, pass_state
from autoopt.cli.output import document_format_option, one_line, render

if TYPE_CHECKING:
    from autoopt.domain.optimizer import Round
    from autoopt.domain.ports import LLMRewriter
    from autoopt.domain.service import PromptReport, RunReport
    from autoopt.infrastructure.bootstrap import Container

TABLE_COLUMNS = ("node", "field", "score", "strategy", "confidence", "decision")


@click.command("optimize")
@click.argument("apps", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--strategy",
    "strategies",
    multiple=True,
    metavar="S",
    help="A strategy to try (repeat for several): clarity_focus, efficiency_focus, "
    "structure_focus, auto, llm_guided, llm_clarity, llm_efficiency, hybrid.",
)
@click.option(
    "--preset",
    type=click.Choice(["conservative", "balanced", "aggressive"]),
    help="A ready configuration; explicit options override it.",
)
@click.option("--max-iterations", type=int, help="Rounds per strategy.")
@click.option("--min-confidence", type=float, help="Confidence a candidate needs (0-1).")
@click.option("--threshold", type=float, help="Prompts scoring at least this are left alone.")
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Output file (one app only). Default: APP.optimized.yml beside the input.",
)
@click.option(
    "--overwrite-input",
    is_flag=True,
    help="Let --out name the input file itself; without it that is refused.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Show what would change and estimate LLM calls and cost; write, record and call nothing.",
)
@click.option(
    "--no-cache", is_flag=True, help="Ask the language model again, ignoring cached answers."
)
@click.option("--max-cost", type=click.FloatRange(min=0), help="Stop LLM calls at this many USD.")
@document_format_option
@pass_state
def optimize(
    state: CliState,
    apps: tuple[Path, ...],
    strategies: tuple[str, ...],
    preset: str | None,
    max_iterations: int | None,
    min_confidence: float | None,
    threshold: float | None,
    out_file: Path | None,
    overwrite_input: bool,
    dry_run: bool,
    no_cache: bool,
    max_cost: float | None,
    fmt: str,
) -> None:
    """Optimize the prompts of APPS (Dify DSL files, or folders of them).

    Each app is one run: every decision is recorded in the event log, every
    new prompt text is a stored version, and the patched app is written to
    APP.optimized.yml. A failing app is reported and the others go on; the
    exit code is 1 if any failed.

    \b
    Examples:
      autoopt optimize examples/support_bot.yml
      autoopt optimize apps/ --preset conservative --format json
      autoopt optimize app.yml --strategy clarity_focus --dry-run
    """
    from autoopt.cli.llm_commands import estimate, language_model
    from autoopt.domain.errors import ConfigurationError, OptimizerError
    from autoopt.infrastructure.dsl_files import refuse_overwriting_input
    from autoopt.infrastructure.settings import Override, preset_overrides

    if preset:
        state.overrides.extend(preset_overrides(preset))
    for path, value, flag in (
        (("optimization", "strategies"), list(strategies) or None, "--strategy"),
        (("optimization", "max_iterations"), max_iterations, "--max-iterations"),
        (("optimization", "min_confidence"), min_confidence, "--min-confidence"),
        (("optimization", "score_threshold"), threshold, "--threshold"),
    ):
        if value is not None:
            state.overrides.append(Override(path, value, flag))
    container = state.container()
    files, problems = _expand(apps, container.settings.dsl.max_bytes)
    if out_file is not None and len(files) + len(problems) != 1:
        raise ConfigurationError("--out names one output file; give exactly one app with it")
    if out_file is not None and files and not overwrite_input:
        refuse_overwriting_input(out_file, files[0])
    llm = None if dry_run else language_model(container, use_cache=not no_cache, max_cost=max_cost)
    reports: list[RunReport] = []
    for source in files:
        try:
            reports.append(_optimize_file(container, source, out_file, dry_run, llm))
        except OptimizerError as exc:
            problems.append(str(exc))
    if llm is not None and llm.auth_failure is not None:
        click.echo(
            f"Note: {llm.auth_failure}; LLM strategies used their rule-based fallbacks "
            "from then on.",
            err=True,
        )
    if dry_run:
        click.echo(estimate(container, reports), err=True)
    for problem in problems:
        click.echo(f"Error: {one_line(problem)}", err=True)
    _print(reports, fmt)
    if problems:
        sys.exit(1)


def _optimize_file(
    container: Container,
    source: Path,
    out_file: Path | None,
    dry_run: bool,
    llm: LLMRewriter | None,
) -> RunReport:
    from autoopt.domain.dsl_loading import load_dsl
    from autoopt.infrastructure.dsl_files import FileSink, default_output, read_bytes
    from autoopt.infrastructure.settings import tool_version

    settings = container.settings
    data = read_bytes(source, settings.dsl.max_bytes)
    app = load_dsl(data, str(source), settings.dsl.max_bytes)
    service = container.optimizer_service(dry_run=dry_run, llm=llm)
    sink = None if dry_run else FileSink(out_file or default_output(source))
    with _progress(app) as advance:
        return service.run(
            app,
            data.decode("utf-8-sig"),
            settings.optimization.config(),
            effective_config=settings.effective(),
            tool_version=tool_version(),
            sink=sink,
            progress=advance,
        )


def _expand(apps: tuple[Path, ...], max_bytes: int) -> tuple[list[Path], list[str]]:
    """The app files to optimize, and what the folders among APPS could not offer."""
    from autoopt.infrastructure.catalog import FolderCatalog

    files: list[Path] = []
    problems: list[str] = []
    for app in apps:
        if app.is_dir():
            catalog = FolderCatalog(app, max_bytes)
            files.extend(Path(entry.source) for entry in catalog.entries())
            problems.extend(problem.message for problem in catalog.problems)
        else:
            files.append(app)
    return files, problems


class _progress:
    """A progress bar on stderr while prompts are optimized, when stderr is a terminal."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self._bar: Any = None

    def __enter__(self) -> Any:
        if not sys.stderr.isatty():
            return None
        from autoopt.domain.dsl import extract_prompts

        # Counting the prompts costs an extraction: only for a bar someone sees.
        total = len(extract_prompts(self._app))
        if not total:
            return None
        self._bar = click.progressbar(
            length=total, label=self._app.workflow_id, file=sys.stderr
        ).__enter__()
        return lambda _prompt: self._bar.update(1)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)


def _print(reports: list[RunReport], fmt: str) -> None:
    if fmt == "json":
        documents = [_json(report) for report in reports]
        click.echo(
            json.dumps(
                documents[0] if len(documents) == 1 else documents, indent=2, ensure_ascii=False
            )
        )
        return
    for report in reports:
        target = report.output or "(dry run: nothing written)"
        click.echo(f"{report.workflow_id}  run {report.run_id}  -> {target}")
        rows = [_row(p) for p in report.prompts]
        click.echo(render(rows, TABLE_COLUMNS, "table"))
        click.echo(f"{len(report.optimized)} of {len(report.prompts)} prompts improved")


def _row(report: PromptReport) -> dict[str, Any]:
    outcome = report.outcome
    best = outcome.best
    after = best.score_after if best else outcome.baseline.overall_score
    return {
        "node": report.prompt.node_title or report.prompt.node_id or "app",
        "field": report.prompt.field_path,
        "score": f"{outcome.baseline.overall_score:.1f} -> {after:.1f}",
        "strategy": _strategy(best) if best else "",
        "confidence": f"{best.confidence:.2f}" if best else "",
        "decision": report.decision,
    }


def _json(report: RunReport) -> dict[str, Any]:
    return {
        "run_id": report.run_id,
        "workflow_id": report.workflow_id,
        "output_file": report.output,
        "prompts": [
            {
                "prompt_id": p.prompt.prompt_id,
                "node_id": p.prompt.node_id,
                "field": p.prompt.field_path,
                "score_before": p.outcome.baseline.overall_score,
                "score_after": (
                    p.outcome.best.score_after
                    if p.outcome.best
                    else p.outcome.baseline.overall_score
                ),
                "strategy": _strategy(p.outcome.best) if p.outcome.best else None,
                "confidence": p.outcome.best.confidence if p.outcome.best else None,
                "decision": p.decision,
                "reason": _reason(p),
            }
            for p in report.prompts
        ],
    }


def _strategy(best: Round) -> str:
    """What produced the text, and the LLM strategy it stood in for."""
    return f"{best.fallback_from}->{best.strategy}" if best.fallback_from else best.strategy


def _reason(report: PromptReport) -> str:
    outcome = report.outcome
    if outcome.skipped:
        return outcome.skipped
    if outcome.best:
        return outcome.best.reason
    return outcome.rounds[-1].reason if outcome.rounds else "no candidate"
