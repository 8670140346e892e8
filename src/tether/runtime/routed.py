"""A model call routed to a tier, escalated once to a larger tier when the answer fails or hedges.

Without `[routing]` every call goes to the `[model]` chain and nothing is recorded about tiers.
With it, `runtime/tiers.py` picks the tier; when the answer fails (every model of the tier failed)
or is low-confidence and `escalate_to` is set, the same request goes once to that tier, if the run's
ceilings still allow it. The step then records both calls' tokens and cost, and the tier and reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tether.agent.config import RoutingSection
from tether.models.base import Message, ModelError, ModelResponse, ToolSpec, Usage
from tether.models.pricing import Pricer
from tether.models.routing import FallbackChain
from tether.runtime.tiers import Classifier, Route, Situation, choose, low_confidence

Affordable = Callable[[Usage, float, list[str]], bool]
"""Whether another call to these models still fits the run's ceilings after `(usage, cost)` spent."""


@dataclass(frozen=True)
class RoutedAnswer:
    response: ModelResponse
    usage: Usage
    """Every call's tokens (an escalated answer includes the first try's)."""
    cost: float
    tier: str | None = None
    route: str | None = None
    cache: str | None = None
    """Which caches were asked and how they answered (`semantic:miss,exact:hit`), None if none."""
    saved_cost_usd: float = 0.0
    saved_latency_ms: float = 0.0


class ModelRouter:
    """The release's tiers (each a fallback chain) and the rules that pick one per call."""

    def __init__(
        self,
        routing: RoutingSection,
        default_chain: FallbackChain,
        tiers: Mapping[str, FallbackChain],
        pricer: Pricer,
        classifiers: Mapping[str, Classifier],
    ) -> None:
        self.routing = routing
        self.default_chain = default_chain
        self.tiers = dict(tiers)
        if routing.enabled and routing.default not in self.tiers:
            self.tiers[routing.default] = default_chain
        self.pricer = pricer
        self.classifiers = classifiers

    @property
    def models(self) -> list[str]:
        """Every model a call may reach (for worst-case budget checks)."""
        names = list(self.default_chain.chain_names)
        for chain in self.tiers.values():
            names += [name for name in chain.chain_names if name not in names]
        return names

    async def chat(
        self,
        situation: Situation,
        messages: list[Message],
        tools: list[ToolSpec],
        max_output_tokens: int,
        affordable: Affordable,
    ) -> RoutedAnswer:
        if not self.routing.enabled:
            response = await self.default_chain.chat(messages, tools, max_output_tokens=max_output_tokens)
            return RoutedAnswer(
                response, response.usage, self.pricer.cost(response.reference, response.usage)
            )
        route = choose(self.routing, situation, self.classifiers)
        chain = self.tiers[route.tier]
        bigger = self.routing.escalate_to
        can_escalate = bigger is not None and bigger != route.tier
        try:
            first = await chain.chat(messages, tools, max_output_tokens=max_output_tokens)
        except ModelError as exc:
            if (
                not can_escalate
                or bigger is None
                or not affordable(Usage(), 0.0, self.tiers[bigger].chain_names)
            ):
                raise
            why = f"escalated from {route.tier} ({route.reason}): it failed: {_clip(str(exc))}"
            return await self._escalate(bigger, why, messages, tools, max_output_tokens, None)
        cost = self.pricer.cost(first.reference, first.usage)
        hedge = low_confidence(first.content, self.routing) if not first.tool_calls else None
        if can_escalate and bigger is not None and hedge is not None:
            if affordable(first.usage, cost, self.tiers[bigger].chain_names):
                why = f"escalated from {route.tier} ({route.reason}): low confidence ({hedge!r})"
                return await self._escalate(bigger, why, messages, tools, max_output_tokens, (first, cost))
            route = Route(route.tier, f"{route.reason}; low confidence, but no budget left to escalate")
        return RoutedAnswer(first, first.usage, cost, route.tier, route.reason)

    async def _escalate(
        self,
        tier: str,
        why: str,
        messages: list[Message],
        tools: list[ToolSpec],
        max_output_tokens: int,
        earlier: tuple[ModelResponse, float] | None,
    ) -> RoutedAnswer:
        response = await self.tiers[tier].chat(messages, tools, max_output_tokens=max_output_tokens)
        cost = self.pricer.cost(response.reference, response.usage)
        usage = response.usage
        if earlier is not None:
            first, first_cost = earlier
            usage = _add(first.usage, usage)
            cost += first_cost
            response.attempts += first.attempts
        return RoutedAnswer(response, usage, cost, tier, why)


def step_kind(has_model_answer: bool, last_role: str | None, steps_used: int, max_steps: int) -> str:
    """Where this call stands in the run, for `step` rules."""
    if steps_used + 1 >= max_steps:
        return "final"
    if not has_model_answer:
        return "first"
    return "after_tool" if last_role == "tool" else "other"


def budget_left(used_tokens: int, max_tokens: int, spent_usd: float, max_usd: float) -> float:
    return max(0.0, min(1 - used_tokens / max_tokens, 1 - spent_usd / max_usd))


def _add(a: Usage, b: Usage) -> Usage:
    return Usage(
        input_tokens=a.input_tokens + b.input_tokens,
        output_tokens=a.output_tokens + b.output_tokens,
        cache_read_tokens=a.cache_read_tokens + b.cache_read_tokens,
        cache_write_tokens=a.cache_write_tokens + b.cache_write_tokens,
    )


def _clip(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
