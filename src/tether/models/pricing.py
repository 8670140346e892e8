"""Cost of a model call from its real usage: genai-prices, with the project's own overrides first."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from genai_prices import Usage as PriceUsage
from genai_prices import calc_price

from tether.models.base import Usage

_GENAI_PROVIDERS = {"openai": "openai", "anthropic": "anthropic"}


class UnknownPriceError(LookupError):
    """Neither the override table nor genai-prices knows this model's price."""


@dataclass(frozen=True)
class Pricer:
    """Prices calls by model reference (`provider:model`).

    `overrides` maps a reference to USD per million (input, output) tokens; `provider_kinds` maps a
    custom provider name (e.g. `azure`) to the API it speaks, so its models price like that vendor's.
    Scripted models cost nothing unless an override says otherwise.
    """

    overrides: Mapping[str, tuple[float, float]]
    provider_kinds: Mapping[str, str]
    cache_overrides: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    """USD per million (cache read, cache write) tokens; an override without one prices them as input."""

    def cost(self, reference: str, usage: Usage) -> float:
        if reference in self.overrides:
            per_input, per_output = self.overrides[reference]
            per_read, per_write = self.cache_overrides.get(reference, (per_input, per_input))
            fresh = usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens
            return (
                fresh * per_input
                + usage.cache_read_tokens * per_read
                + usage.cache_write_tokens * per_write
                + usage.output_tokens * per_output
            ) / 1_000_000
        provider, _, model = reference.partition(":")
        if provider == "scripted":
            return 0.0
        kind = self.provider_kinds.get(provider, provider)
        try:
            price = calc_price(
                PriceUsage(
                    input_tokens=usage.input_tokens,
                    output_tokens=usage.output_tokens,
                    cache_read_tokens=usage.cache_read_tokens or None,
                    cache_write_tokens=usage.cache_write_tokens or None,
                ),
                model,
                provider_id=_GENAI_PROVIDERS.get(kind),
            )
        except LookupError:
            raise UnknownPriceError(
                f'no price known for {reference!r}: add [prices."{reference}"] to tether.toml'
            ) from None
        return float(price.total_price)

    def check(self, reference: str) -> None:
        """Raise `UnknownPriceError` now rather than in the middle of a run."""
        self.cost(reference, Usage(input_tokens=1, output_tokens=1))
