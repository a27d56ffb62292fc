"""Value objects shared by the domain events and the optimization cycle.

All of them are frozen: an event that carries one can be handed around without
anyone being able to change what was recorded.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


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
    response_text: str | None = None
    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)
    cost_usd: float = Field(default=0.0, ge=0)
    cached: bool = False
    latency_ms: float | None = Field(default=None, ge=0)
    error: str | None = None


class PromptPatch(FrozenModel):
    """A change to one prompt-bearing string of a Dify DSL document."""

    prompt_id: str
    node_id: str | None
    field_path: str
    old_text: str
    new_text: str
    version: int = Field(ge=1)


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
