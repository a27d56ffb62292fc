"""The optimization cycle for one prompt: strategies x iterations x a confidence gate.

A prompt at or above ``score_threshold`` with no critical issue is left alone,
and so is an empty one. Otherwise each strategy starts from the original text
and iterates on its best candidate so far; a round is accepted only when the
candidate keeps every invariant, scores higher than the text it came from, and
earns ``min_confidence``. A strategy stops at its first rejected round. The
best accepted candidate across strategies wins, if it beats the baseline.

Confidence (0-1): 0.5, plus 0.03 per point of overall improvement (at most
0.3), plus 0.2 when clarity and efficiency both rise or 0.1 when one rises and
neither falls, minus 0.03 per point that either of them falls (at most 0.3
each); 0 when an invariant fails.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from autoopt.domain.analyzer import PromptAnalysis, PromptAnalyzer
from autoopt.domain.errors import LLMError
from autoopt.domain.guards import answer_violation
from autoopt.domain.models import LLMExchange, OptimizationConfig, Prompt
from autoopt.domain.ports import LLMRewriter
from autoopt.domain.strategies import (
    LLM_FALLBACKS,
    REWRITES,
    Rewrite,
    choose_auto,
    invariant_violation,
)
from autoopt.domain.text import has_prose

Decision = Literal["accepted", "rejected"]
# The fallback error of an LLM strategy in a run that had no model at all.
NO_LANGUAGE_MODEL = "no language model is configured"


@dataclass(frozen=True)
class Round:
    """One round of one strategy. ``strategy`` is what produced the candidate; when
    an LLM strategy fell back to a rule-based one, ``fallback_from`` names it."""

    strategy: str
    iteration: int
    candidate_text: str
    score_before: float
    score_after: float
    confidence: float
    decision: Decision
    reason: str
    analysis: PromptAnalysis
    fallback_from: str | None = None
    fallback_error: str | None = None
    llm_exchange: LLMExchange | None = None


@dataclass(frozen=True)
class PromptOutcome:
    prompt: Prompt
    baseline: PromptAnalysis
    rounds: list[Round] = field(default_factory=list)
    best: Round | None = None
    skipped: str | None = None
    # Why the prompt was (or was not) taken up: the triage's verdict.
    reason: str = ""

    @property
    def final_text(self) -> str:
        return self.best.candidate_text if self.best else self.prompt.text


def confidence(before: PromptAnalysis, after: PromptAnalysis) -> float:
    improvement = after.overall_score - before.overall_score
    changes = [
        after.clarity_score - before.clarity_score,
        after.efficiency_score - before.efficiency_score,
    ]
    value = 0.5 + min(0.3, 0.03 * max(0.0, improvement))
    if all(change > 0 for change in changes):
        value += 0.2
    elif any(change > 0 for change in changes) and not any(change < 0 for change in changes):
        value += 0.1
    value -= sum(min(0.3, 0.03 * -change) for change in changes if change < 0)
    return round(max(0.0, min(1.0, value)), 3)


class PromptOptimizer:
    def __init__(
        self,
        analyzer: PromptAnalyzer,
        rewrites: Mapping[str, Rewrite] | None = None,
        llm: LLMRewriter | None = None,
        length_bounds: tuple[float, float] = (0.3, 3.0),
    ) -> None:
        self._analyzer = analyzer
        # The rule-based rewrites by name; the gate below never trusts them.
        self._rewrites = dict(rewrites or REWRITES)
        self._llm = llm
        self._length_bounds = length_bounds

    def analyze(self, prompt: Prompt) -> PromptAnalysis:
        return self._analyzer.analyze(prompt.text, prompt.prompt_id, prompt.edition)

    @property
    def has_language_model(self) -> bool:
        return self._llm is not None

    def triage(
        self, prompt: Prompt, config: OptimizationConfig, baseline: PromptAnalysis
    ) -> tuple[bool, str]:
        """Whether the prompt is worth rewriting, and why (or why not)."""
        if prompt.empty:
            return False, "empty prompt"
        if not has_prose(prompt.text, prompt.edition):
            return False, "nothing to optimize: only variable references or code"
        score, threshold = baseline.overall_score, config.score_threshold
        if score < threshold:
            return True, f"score {score:g} is below the threshold {threshold:g}"
        if baseline.has_critical_issue:
            critical = [i.type for i in baseline.issues if i.severity == "critical"]
            return True, f"critical issue: {', '.join(critical)}"
        return False, f"score {score:g} is at or above the threshold {threshold:g}"

    def optimize(
        self, prompt: Prompt, config: OptimizationConfig, baseline: PromptAnalysis | None = None
    ) -> PromptOutcome:
        baseline = baseline or self.analyze(prompt)
        worth_it, reason = self.triage(prompt, config, baseline)
        if not worth_it:
            return PromptOutcome(prompt, baseline, skipped=reason, reason=reason)
        rounds: list[Round] = []
        best: Round | None = None
        for strategy in config.strategies:
            start = (best.candidate_text, best.analysis) if best else (prompt.text, baseline)
            strategy_rounds = self._run_strategy(prompt, strategy, *start, config)
            rounds.extend(strategy_rounds)
            accepted = [r for r in strategy_rounds if r.decision == "accepted"]
            if accepted and (best is None or accepted[-1].score_after > best.score_after):
                best = accepted[-1]
        return PromptOutcome(prompt, baseline, rounds, best, reason=reason)

    def _run_strategy(
        self,
        prompt: Prompt,
        strategy: str,
        text: str,
        analysis: PromptAnalysis,
        config: OptimizationConfig,
    ) -> list[Round]:
        rounds: list[Round] = []
        for iteration in range(1, config.max_iterations + 1):
            proposal = self._propose(prompt, strategy, text, analysis)
            candidate = proposal.text
            after = self._analyzer.analyze(candidate, prompt.prompt_id, prompt.edition)
            violation = proposal.guard or invariant_violation(
                prompt.text, candidate, prompt.edition
            )
            gate = 0.0 if violation else confidence(analysis, after)
            decision: Decision
            if candidate == text:
                decision, reason = "rejected", "no change"
            elif proposal.guard:
                decision, reason = "rejected", f"answer refused: {proposal.guard}"
            elif violation:  # checked against the original: drift over rounds counts too
                decision, reason = "rejected", f"invariant broken: {violation}"
            elif after.overall_score <= analysis.overall_score:
                decision = "rejected"
                reason = f"no improvement ({analysis.overall_score:g} -> {after.overall_score:g})"
            elif gate < config.min_confidence:
                decision = "rejected"
                reason = f"confidence {gate:g} is below {config.min_confidence:g}"
            else:
                decision = "accepted"
                reason = f"score {analysis.overall_score:g} -> {after.overall_score:g}"
            rounds.append(
                Round(
                    strategy=proposal.strategy,
                    iteration=iteration,
                    candidate_text=candidate,
                    score_before=analysis.overall_score,
                    score_after=after.overall_score,
                    confidence=gate,
                    decision=decision,
                    reason=reason,
                    analysis=after,
                    fallback_from=proposal.fallback_from,
                    fallback_error=proposal.fallback_error,
                    llm_exchange=proposal.exchange,
                )
            )
            if decision == "rejected":
                break
            text, analysis = candidate, after
        return rounds

    def _propose(
        self, prompt: Prompt, strategy: str, text: str, analysis: PromptAnalysis
    ) -> _Proposal:
        """One candidate: from the language model when it can answer, else the rules."""
        if strategy == "auto":
            rule = choose_auto(analysis)
            return _Proposal(rule, self._rewrites[rule](text, prompt.edition))
        if strategy not in LLM_FALLBACKS:
            return _Proposal(strategy, self._rewrites[strategy](text, prompt.edition))
        rule = LLM_FALLBACKS[strategy]
        if self._llm is None:
            return _Proposal(
                rule,
                self._rewrites[rule](text, prompt.edition),
                fallback_from=strategy,
                fallback_error=NO_LANGUAGE_MODEL,
            )
        base, base_analysis = text, analysis
        if strategy == "hybrid":
            # hybrid: the rules' pass first, then the model refines what they made.
            base = self._rewrites["clarity_focus"](text, prompt.edition)
            base_analysis = self._analyzer.analyze(base, prompt.prompt_id, prompt.edition)
        try:
            answer = self._llm.rewrite(strategy, base, base_analysis, prompt.edition)
        except LLMError as exc:
            return _Proposal(
                rule,
                self._rewrites[rule](text, prompt.edition),
                fallback_from=strategy,
                fallback_error=f"{type(exc).__name__}: {exc}",
                exchange=getattr(exc, "exchange", None),
            )
        guard = answer_violation(prompt.text, answer.text, prompt.edition, *self._length_bounds)
        return _Proposal(strategy, answer.text, exchange=answer.exchange, guard=guard)


@dataclass(frozen=True)
class _Proposal:
    strategy: str
    text: str
    fallback_from: str | None = None
    fallback_error: str | None = None
    exchange: LLMExchange | None = None
    guard: str | None = None
