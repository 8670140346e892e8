"""What a guardrail decides, as plain values the loop can record, trace and act on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Action = Literal["allow", "redact", "block", "escalate"]
Stage = Literal["input", "tool_call", "tool_result", "output"]

SEVERITY: dict[str, int] = {"allow": 0, "redact": 1, "escalate": 2, "block": 3}
"""Tightening a policy only ever moves an action up this order (see `tether.guard.policy`)."""


@dataclass(frozen=True)
class Decision:
    """One guardrail's verdict at one stage. `text` is the redacted text when `action` is redact."""

    guard: str
    stage: Stage
    action: Action
    reason: str = ""
    text: str | None = None
    details: tuple[tuple[str, str], ...] = ()
    """Extra facts for the record (e.g. each argument's provenance), shown on the run page."""

    @property
    def allowed(self) -> bool:
        return self.action == "allow"


def strictest(decisions: list[Decision]) -> Decision | None:
    """The decision that wins when several guards spoke (None when all allowed)."""
    acting = [d for d in decisions if not d.allowed]
    if not acting:
        return None
    return max(acting, key=lambda d: SEVERITY[d.action])


def tighter(a: Action, b: Action) -> Action:
    return a if SEVERITY[a] >= SEVERITY[b] else b
