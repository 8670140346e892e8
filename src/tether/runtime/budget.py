"""Hard ceilings, checked in code before every model call."""

from __future__ import annotations

from dataclasses import dataclass

from tether.agent.config import LimitsSection
from tether.models.base import Usage
from tether.models.pricing import Pricer
from tether.store.records import RunTotals


@dataclass(frozen=True)
class BudgetVerdict:
    """Why the next model call may not happen (`None` reason means it may)."""

    reason: str | None

    @property
    def allowed(self) -> bool:
        return self.reason is None


def check_steps(totals: RunTotals, limits: LimitsSection) -> BudgetVerdict:
    """Every step (model or tool call) counts; none may start once the limit is reached."""
    if totals.steps_used >= limits.max_steps:
        return BudgetVerdict(f"the step limit ({limits.max_steps} steps)")
    return BudgetVerdict(None)


def check_budget(
    totals: RunTotals,
    limits: LimitsSection,
    *,
    estimated_input_tokens: int,
    max_output_tokens: int,
    pricer: Pricer,
    models: list[str],
) -> BudgetVerdict:
    """Refuse the next call if it could push the run past a ceiling.

    The estimate assumes the call uses its whole output allowance and is answered by the most
    expensive model in the fallback chain, so the ceiling holds even in the worst case.
    """
    steps = check_steps(totals, limits)
    if not steps.allowed:
        return steps
    used_tokens = totals.input_tokens + totals.output_tokens
    next_call = Usage(input_tokens=estimated_input_tokens, output_tokens=max_output_tokens)
    if used_tokens + next_call.total_tokens > limits.max_tokens_per_run:
        return BudgetVerdict(
            f"the token ceiling ({used_tokens} used, next call needs up to {next_call.total_tokens}, "
            f"limit {limits.max_tokens_per_run})"
        )
    next_cost = max(pricer.cost(model, next_call) for model in models)
    if totals.estimated_cost_usd + next_cost > limits.max_cost_usd_per_run:
        return BudgetVerdict(
            f"the cost ceiling (${totals.estimated_cost_usd:.4f} spent, next call could cost "
            f"${next_cost:.4f}, limit ${limits.max_cost_usd_per_run:.4f})"
        )
    return BudgetVerdict(None)
