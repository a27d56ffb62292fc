"""What a call costs: USD per million tokens, built in for common models.

Prices are list prices at the time of writing; a team extends or corrects them
under ``llm.pricing`` in the settings. A model in neither has an unknown cost
(None), never a made-up zero.
"""

from __future__ import annotations

from collections.abc import Mapping

from autoopt.infrastructure.settings import LLMSettings

# (input, output) USD per 1,000,000 tokens.
BUILT_IN: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4-turbo": (10.00, 30.00),
    "gpt-4-turbo-preview": (10.00, 30.00),
    "gpt-4": (30.00, 60.00),
    "gpt-3.5-turbo": (0.50, 1.50),
    "o3-mini": (1.10, 4.40),
}


class Pricing:
    def __init__(self, extra: Mapping[str, tuple[float, float]] | None = None) -> None:
        self._prices = {**BUILT_IN, **(extra or {})}

    @classmethod
    def from_settings(cls, settings: LLMSettings) -> Pricing:
        """The built-in prices, extended and corrected by ``llm.pricing``."""
        return cls({model: (p.input, p.output) for model, p in settings.pricing.items()})

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
        price = self._prices.get(model)
        if price is None:
            return None
        return round((prompt_tokens * price[0] + completion_tokens * price[1]) / 1_000_000, 8)

    def known(self, model: str) -> bool:
        return model in self._prices
