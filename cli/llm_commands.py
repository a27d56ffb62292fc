"""``autoopt llm``: the language model's response cache; and the LLM side of ``optimize``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from autoopt.cli.context import CliState, pass_state
from autoopt.cli.output import emit, format_option

if TYPE_CHECKING:
    from autoopt.domain.service import RunReport
    from autoopt.infrastructure.bootstrap import Container
    from autoopt.infrastructure.llm.client import OpenAIRewriter

# What a meta-prompt adds to the user's prompt, in tokens, for the estimate.
META_PROMPT_TOKENS = 260


def language_model(
    container: Container, *, use_cache: bool, max_cost: float | None
) -> OpenAIRewriter | None:
    """The model for this run; without a key, one line says the LLM strategies fall back."""
    from autoopt.domain.strategies import LLM_FALLBACKS

    settings = container.settings
    wanted = [s for s in settings.optimization.strategies if s in LLM_FALLBACKS]
    llm = container.llm_rewriter(use_cache=use_cache, max_cost_usd=max_cost)
    if wanted and llm is None:
        click.echo(
            f"Note: no API key in ${settings.llm.api_key_env}; {', '.join(wanted)} "
            "run their rule-based fallbacks.",
            err=True,
        )
    return llm


def estimate(container: Container, reports: list[RunReport]) -> str:
    """An upper bound of the LLM calls a real run would make, and their cost."""
    from autoopt.domain.strategies import LLM_FALLBACKS
    from autoopt.domain.text import estimate_tokens
    from autoopt.infrastructure.llm.pricing import Pricing

    settings = container.settings
    wanted = [s for s in settings.optimization.strategies if s in LLM_FALLBACKS]
    rounds = len(wanted) * settings.optimization.max_iterations
    to_optimize = [p for r in reports for p in r.prompts if not p.outcome.skipped]
    calls = len(to_optimize) * rounds
    if not calls:
        return "Estimate: no LLM calls (no prompt to optimize with an LLM strategy)"
    model = settings.llm.model
    pricing = Pricing.from_settings(settings.llm)
    cost = 0.0
    for report in to_optimize:
        tokens = estimate_tokens(report.prompt.text)
        price = pricing.cost(model, META_PROMPT_TOKENS + tokens, tokens + 60)
        if price is None:
            return f"Estimate: up to {calls} LLM calls; the price of {model} is unknown"
        cost += price * rounds
    return f"Estimate: up to {calls} LLM calls with {model}, about ${cost:.4f}"


@click.group("llm")
def llm_group() -> None:
    """The language model's response cache.

    \b
    Examples:
      autoopt llm cache stats
      autoopt llm cache clear
    """


@llm_group.group("cache")
def cache_group() -> None:
    """Answers kept by request hash, so the same request is not paid for twice.

    \b
    Example:
      autoopt llm cache stats
    """


@cache_group.command("stats")
@format_option
@pass_state
def stats(state: CliState, fmt: str) -> None:
    """Entries (live and expired) and how often they were served.

    \b
    Example:
      autoopt llm cache stats --format json
    """
    figures = state.container().llm_cache.stats()
    emit([{"figure": k, "value": v} for k, v in figures.items()], ("figure", "value"), fmt)


@cache_group.command("clear")
@pass_state
def clear(state: CliState) -> None:
    """Remove every cached answer.

    \b
    Example:
      autoopt llm cache clear
    """
    removed = state.container().llm_cache.clear()
    click.echo(f"removed {removed} cached answer(s)")
