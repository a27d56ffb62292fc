"""Value objects shared by the domain events and the optimization cycle.

All of them are frozen: an event that carries one can be handed around without
anyone being able to change what was recorded.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator


class FrozenModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Scores(FrozenModel):
    """The analyzer's three headline scores, each 0-100."""

    overall: float = Field(ge=0, le=100)
    clarity: float = Field(ge=0, le=100)
    efficiency: float = Field(ge=0, le=100)


class ChatMessage(FrozenModel):
    role: Literal["system", "user", "assistant"]
    content: str


class LLMExchange(FrozenModel):
    """One request to a language model and its answer, as replay needs it.

    The API key is never part of it; ``base_url`` is kept because the same
    model name on two servers is not the same model.
    """

    provider: str
    model: str
    base_url: str | None = None
    messages: tuple[ChatMessage, ...]
    parameters: dict[str, float | int | str | None] = Field(default_factory=dict)
    template_version: str | None = None
    request_sha256: str | None = None
    response_text: str | None = None
    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)
    # None when the model's price is unknown: an unknown cost is not a zero cost.
    cost_usd: float | None = Field(default=None, ge=0)
    cached: bool = False
    latency_ms: float | None = Field(default=None, ge=0)
    error: str | None = None


class PromptPatch(FrozenModel):
    """A change to one prompt-bearing string of a Dify DSL document.

    ``by_id`` selects with ``node_id`` and a field path inside that node's
    ``data`` (for app-level prompts ``node_id`` is None and the path starts at
    the document's root); ``by_path`` selects with a path from the document's
    root. Paths are JSON-pointer-like, as ``Prompt.field_path`` and
    ``Prompt.document_path`` give them. ``template`` renders ``content`` as a
    sandboxed Jinja2 template with ``original`` bound to the current text.
    """

    workflow_id: str
    node_id: str | None = None
    selector_type: Literal["by_id", "by_path"] = "by_id"
    selector_value: str = Field(min_length=1)
    strategy: Literal["replace", "prepend", "append", "template"] = "replace"
    content: str
    if_missing: Literal["skip", "error"] = "error"
    metadata: dict[str, str | int | float | bool | None] = Field(default_factory=dict)


VersionKind = Literal["baseline", "optimized", "manual", "rollback"]


class PromptVersion(FrozenModel):
    """One immutable version of one prompt; the file store keeps one file per version."""

    prompt_id: str = Field(min_length=1)
    version: int = Field(ge=1)
    text: str
    kind: VersionKind
    created_at: AwareDatetime
    scores: Scores | None = None
    strategy: str | None = None
    parent_version: int | None = Field(default=None, ge=1)
    run_id: str | None = None
    note: str = ""


class Prompt(FrozenModel):
    """One prompt-bearing string of a Dify app.

    ``field_path`` points at the string inside the node's ``data`` (inside the
    document for app-level prompts, whose ``node_id`` is None);
    ``document_path`` points at it from the document's root. Both are
    JSON-pointer-like: ``/prompt_template/0/text``.
    """

    prompt_id: str
    workflow_id: str
    node_id: str | None
    node_title: str | None
    node_type: str
    field_path: str
    document_path: str
    role: str | None = None
    edition: Literal["basic", "jinja2"] = "basic"
    text: str
    variables: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.text.strip()


class OptimizationConfig(FrozenModel):
    """What one optimization run tries, and how good a candidate must be."""

    strategies: tuple[str, ...] = ("llm_guided", "hybrid")
    score_threshold: float = Field(default=80.0, ge=0, le=100)
    min_confidence: float = Field(default=0.7, ge=0, le=1)
    max_iterations: int = Field(default=3, ge=1, le=100)

    @field_validator("strategies")
    @classmethod
    def _known_strategies(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from autoopt.domain.strategies import ALL_STRATEGIES

        if not value:
            raise ValueError("at least one strategy")
        unknown = [s for s in value if s not in ALL_STRATEGIES]
        if unknown:
            raise ValueError(
                f"unknown strategy {unknown[0]!r}; choose from {', '.join(ALL_STRATEGIES)}"
            )
        if len(set(value)) != len(value):
            raise ValueError("a strategy is listed twice")
        return value
