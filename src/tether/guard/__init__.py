"""Guardrails: checks at input, tool call, tool result and output that allow, redact, block or escalate.

See docs/guardrails.md. The run loop builds one `RunGuard` per execution from the release's
`[guard]` policy, tightened by operator overrides (`effective_policy`).
"""

from tether.guard.decisions import Action, Decision, Stage
from tether.guard.marking import Spotlight, unmark
from tether.guard.pipeline import (
    BLOCKED_ANSWER,
    ESCALATED_ANSWER,
    ResultCheck,
    RunFacts,
    RunGuard,
    final_text,
)
from tether.guard.policy import NO_OVERRIDES, GuardOverrides, effective_policy

__all__ = [
    "BLOCKED_ANSWER",
    "ESCALATED_ANSWER",
    "NO_OVERRIDES",
    "Action",
    "Decision",
    "GuardOverrides",
    "ResultCheck",
    "RunFacts",
    "RunGuard",
    "Spotlight",
    "Stage",
    "effective_policy",
    "final_text",
    "unmark",
]
