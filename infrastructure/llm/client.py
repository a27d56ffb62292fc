"""The ``LLMRewriter`` port on the official ``openai`` SDK, for OpenAI or any
OpenAI-compatible server (vLLM, Ollama, LM Studio, a gateway).

The SDK does the retrying (``max_retries``, with its backoff that honours
``retry-after``). Its errors are translated here, and only here:
a timeout -> ``LLMTimeoutError``; 429 or 5xx after the retries, a connection
failure -> ``LLMError``; a body that is not an answer -> ``LLMResponseError``;
401/403 -> ``LLMAuthenticationError``, after which this client makes no more
requests in the run; a reached ``max_cost_usd`` -> ``BudgetExceededError``.
The API key is handed to the SDK and nowhere else: no message, log line,
event or cache entry carries it.
"""

from __future__ import annotations

import time
from typing import Any

import openai

from autoopt.domain.analyzer import PromptAnalysis
from autoopt.domain.errors import (
    BudgetExceededError,
    LLMAuthenticationError,
    LLMError,
    LLMResponseError,
    LLMTimeoutError,
)
from autoopt.domain.models import ChatMessage, LLMExchange
from autoopt.domain.ports import LLMAnswer
from autoopt.infrastructure.llm.answers import prompt_from_answer, request_parameters
from autoopt.infrastructure.llm.cache import ResponseCache, request_key
from autoopt.infrastructure.llm.pricing import Pricing
from autoopt.infrastructure.llm.prompts import MetaPrompts
from autoopt.infrastructure.settings import LLMSettings

ANSWER_SCHEMA = {
    "name": "optimized_prompt",
    "strict": True,
    "schema": {
        "type": "object",
        "properties": {
            "optimized_prompt": {"type": "string"},
            "rationale": {"type": "string"},
        },
        "required": ["optimized_prompt", "rationale"],
        "additionalProperties": False,
    },
}


class OpenAIRewriter:
    def __init__(
        self,
        settings: LLMSettings,
        api_key: str,
        *,
        cache: ResponseCache | None,
        pricing: Pricing,
        prompts: MetaPrompts | None = None,
        max_cost_usd: float | None = None,
    ) -> None:
        self._settings = settings
        self._client = openai.OpenAI(
            api_key=api_key,
            base_url=settings.base_url,
            timeout=settings.timeout_seconds,
            max_retries=settings.max_retries,
        )
        self._cache = cache
        self._pricing = pricing
        self._prompts = prompts or MetaPrompts()
        self._max_cost = max_cost_usd if max_cost_usd is not None else settings.max_cost_usd
        self._structured = True
        self.spent_usd = 0.0
        self.requests = 0
        # Why the server refused us (401 or 403); no request is made after that.
        self.auth_failure: str | None = None

    @property
    def auth_failed(self) -> bool:
        return self.auth_failure is not None

    def rewrite(
        self, strategy: str, text: str, analysis: PromptAnalysis, edition: str
    ) -> LLMAnswer:
        if self.auth_failure is not None:
            raise LLMAuthenticationError(f"{self.auth_failure} earlier in this run")
        messages = self._prompts.render(strategy, text, analysis)
        parameters = request_parameters(self._settings)
        version = self._prompts.version(strategy)
        key = request_key(
            self._settings.provider,
            self._settings.base_url,
            self._settings.model,
            messages,
            parameters,
            version,
        )
        if self._cache is not None:
            stored = self._cache.get(key)
            if stored is not None:
                return self._answer(stored, messages, parameters, version, key, cached=True)
        if self._max_cost is not None:
            if not self._pricing.known(self._settings.model):
                raise BudgetExceededError(
                    f"max_cost_usd is set but the price of {self._settings.model} is unknown; "
                    "add it under llm.pricing"
                )
            if self.spent_usd >= self._max_cost:
                raise BudgetExceededError(
                    f"the budget of ${self._max_cost:g} is spent (${self.spent_usd:.4f})"
                )
        started = time.perf_counter()
        response = self._call(messages, parameters)
        latency_ms = (time.perf_counter() - started) * 1000
        stored = self._measure(response, latency_ms)
        # A billed answer counts against the budget even when it turns out unusable.
        self.spent_usd += stored["cost_usd"] or 0.0
        try:
            stored["text"] = prompt_from_answer(stored["content"])
        except LLMResponseError as exc:
            failed = self._answer(stored, messages, parameters, version, key, cached=False)
            exc.exchange = failed.exchange.model_copy(update={"error": str(exc)})  # type: ignore[attr-defined]
            raise
        if self._cache is not None:
            self._cache.put(key, self._settings.model, stored)
        return self._answer(stored, messages, parameters, version, key, cached=False)

    def _call(self, messages: list[dict[str, str]], parameters: dict[str, Any]) -> Any:
        kwargs: dict[str, Any] = {"model": self._settings.model, "messages": messages, **parameters}
        # The SDK's overloads cannot be matched from a dict of arguments.
        create: Any = self._client.chat.completions.create
        try:
            self.requests += 1
            if self._structured:
                try:
                    return create(
                        **kwargs,
                        response_format={"type": "json_schema", "json_schema": ANSWER_SCHEMA},
                    )
                except openai.BadRequestError:
                    # The server does not take structured output; ask for plain text.
                    self._structured = False
                    self.requests += 1
            return create(**kwargs)
        except openai.AuthenticationError as exc:
            self.auth_failure = (
                f"the server refused the API key in ${self._settings.api_key_env} (HTTP 401)"
            )
            raise LLMAuthenticationError(self.auth_failure) from exc
        except openai.PermissionDeniedError as exc:
            self.auth_failure = "the server denied access to the model (HTTP 403)"
            raise LLMAuthenticationError(self.auth_failure) from exc
        except openai.APITimeoutError as exc:
            raise LLMTimeoutError(
                f"no answer within {self._settings.timeout_seconds:g} s "
                f"after {self._settings.max_retries} retries"
            ) from exc
        except openai.APIStatusError as exc:
            raise LLMError(
                f"HTTP {exc.status_code} from the server after {self._settings.max_retries} retries"
            ) from exc
        except openai.APIConnectionError as exc:
            raise LLMError("cannot reach the server") from exc
        except openai.OpenAIError as exc:
            raise LLMResponseError(f"unusable answer ({type(exc).__name__})") from exc
        except ValueError as exc:  # a body that is not JSON at all
            raise LLMResponseError("the server's answer is not JSON") from exc

    def _measure(self, response: Any, latency_ms: float) -> dict[str, Any]:
        """The answer's text, usage and cost; its prompt is parsed out separately."""
        try:
            content = response.choices[0].message.content
        except (AttributeError, IndexError, TypeError) as exc:
            raise LLMResponseError("the answer has no message") from exc
        if not isinstance(content, str):
            raise LLMResponseError("the answer has no text")
        usage = getattr(response, "usage", None)
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        return {
            "content": content,
            "text": None,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "cost_usd": self._pricing.cost(self._settings.model, prompt_tokens, completion_tokens),
            "latency_ms": round(latency_ms, 2),
        }

    def _answer(
        self,
        stored: dict[str, Any],
        messages: list[dict[str, str]],
        parameters: dict[str, Any],
        version: str,
        key: str,
        *,
        cached: bool,
    ) -> LLMAnswer:
        exchange = LLMExchange(
            provider=self._settings.provider,
            model=self._settings.model,
            base_url=self._settings.base_url,
            messages=tuple(ChatMessage.model_validate(m) for m in messages),
            parameters=parameters,
            template_version=version,
            request_sha256=key,
            response_text=stored["content"],
            prompt_tokens=stored["prompt_tokens"],
            completion_tokens=stored["completion_tokens"],
            cost_usd=0.0 if cached else stored["cost_usd"],
            cached=cached,
            latency_ms=None if cached else stored["latency_ms"],
        )
        return LLMAnswer(stored["text"], exchange)
