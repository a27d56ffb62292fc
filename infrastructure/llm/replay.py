"""The replay client: an ``LLMRewriter`` that answers from a run's recorded exchanges.

It never opens a connection. Each request is rendered exactly as
``OpenAIRewriter`` renders it (the same meta-prompts, parameters and request
key), then answered from the record:

* ``strict`` (a verifying replay): the run's LLM attempts are taken in the
  order they were made. A recorded answer is returned as it was, a recorded
  failure is raised again as the same error class with the same message. A
  request whose key differs from the recorded one is answered with an
  ``LLMError`` saying so, which the optimizer records as a fallback: the
  replay then diverges at that round, which is the truth.
* not strict (a what-if replay): a request is answered by the recorded
  answer to the very same request, wherever in the run it was made; a request
  never made before gets an ``LLMError``, so the strategy takes its
  rule-based fallback, as it would with no model.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from autoopt.domain import errors
from autoopt.domain.analyzer import PromptAnalysis
from autoopt.domain.errors import LLMError
from autoopt.domain.events import IterationCompleted
from autoopt.domain.models import LLMExchange
from autoopt.domain.optimizer import NO_LANGUAGE_MODEL
from autoopt.domain.ports import LLMAnswer
from autoopt.domain.strategies import LLM_FALLBACKS
from autoopt.infrastructure.llm.answers import prompt_from_answer, request_parameters
from autoopt.infrastructure.llm.cache import request_key
from autoopt.infrastructure.llm.prompts import MetaPrompts
from autoopt.infrastructure.settings import LLMSettings

_ERRORS: dict[str, type[LLMError]] = {
    cls.__name__: cls
    for cls in (
        errors.LLMError,
        errors.LLMAuthenticationError,
        errors.LLMTimeoutError,
        errors.LLMResponseError,
        errors.BudgetExceededError,
    )
}


@dataclass(frozen=True)
class RecordedAttempt:
    """One call the run made to its model: the exchange, or the error without one."""

    strategy: str
    exchange: LLMExchange | None
    error: str | None

    @classmethod
    def from_round(cls, event: IterationCompleted) -> RecordedAttempt | None:
        """The attempt behind a round, if the round asked the model at all."""
        llm_strategy = event.fallback_from or event.strategy
        if llm_strategy not in LLM_FALLBACKS:
            return None
        if event.llm_exchange is None and event.fallback_error in (None, NO_LANGUAGE_MODEL):
            return None
        return cls(llm_strategy, event.llm_exchange, event.fallback_error)


class RecordedRewriter:
    def __init__(
        self,
        settings: LLMSettings,
        rounds: Iterable[IterationCompleted],
        *,
        strict: bool,
        prompts: MetaPrompts | None = None,
    ) -> None:
        self._settings = settings
        self._prompts = prompts or MetaPrompts()
        self._strict = strict
        attempts = [a for a in map(RecordedAttempt.from_round, rounds) if a is not None]
        self._queue = deque(attempts)
        self._answers = {
            a.exchange.request_sha256: a.exchange
            for a in attempts
            if a.exchange is not None
            and a.exchange.error is None
            and a.exchange.response_text is not None
        }
        self.answered = 0

    def rewrite(
        self, strategy: str, text: str, analysis: PromptAnalysis, edition: str
    ) -> LLMAnswer:
        messages = self._prompts.render(strategy, text, analysis)
        key = request_key(
            self._settings.provider,
            self._settings.base_url,
            self._settings.model,
            messages,
            request_parameters(self._settings),
            self._prompts.version(strategy),
        )
        if not self._strict:
            exchange = self._answers.get(key)
            if exchange is None:
                raise LLMError("no recorded answer to this request")
            return self._answer(exchange)
        if not self._queue:
            raise LLMError("replay: the run made no further request to its model")
        attempt = self._queue.popleft()
        if attempt.strategy != strategy:
            raise LLMError(f"replay: the run asked for {attempt.strategy} here, not {strategy}")
        exchange = attempt.exchange
        if exchange is not None and exchange.request_sha256 not in (None, key):
            raise LLMError("replay: the request differs from the recorded one")
        if exchange is not None and exchange.error is None and exchange.response_text is not None:
            return self._answer(exchange)
        raise _recorded_error(attempt)

    def _answer(self, exchange: LLMExchange) -> LLMAnswer:
        assert exchange.response_text is not None
        self.answered += 1
        return LLMAnswer(prompt_from_answer(exchange.response_text), exchange)


def _recorded_error(attempt: RecordedAttempt) -> LLMError:
    """The recorded failure again: ``fallback_error`` reads ``ErrorClass: message``."""
    name, _, message = (attempt.error or "LLMError: recorded failure").partition(": ")
    error = _ERRORS.get(name, LLMError)(message)
    if attempt.exchange is not None:
        error.exchange = attempt.exchange  # type: ignore[attr-defined]
    return error
