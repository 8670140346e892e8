"""Tool-call limits and argument policies, checked before a tool runs.

Limits: at most N calls of a tool per run (the tool's `max_calls_per_run`, else `[guard]
tool_limits`, else `max_calls_per_tool`) and at most M calls per model answer (see
`RunGuard.limit_response`). Argument policies are declared next to the tool: numeric `bounds` and
`allowed_values`; anything needing data (an order's state) is the tool's `precheck`.
"""

from __future__ import annotations

from typing import Any

from tether.agent.config import GuardSection
from tether.agent.tools import Tool


def call_limit(tool: Tool, policy: GuardSection) -> int:
    limits = [policy.tool_limits.get(tool.name, policy.max_calls_per_tool)]
    if tool.max_calls_per_run is not None:
        limits.append(tool.max_calls_per_run)
    return min(limits)


def calls_over_limit(tool: Tool, calls_so_far: int, policy: GuardSection) -> str | None:
    limit = call_limit(tool, policy)
    if calls_so_far >= limit:
        return f"{tool.name} may be called at most {limit} time(s) per run; it was not called again"
    return None


def argument_problems(tool: Tool, arguments: dict[str, Any]) -> list[str]:
    """Why these (validated) arguments break the tool's declared policies; empty when they do not."""
    problems: list[str] = []
    for name, (low, high) in tool.bounds.items():
        value = arguments.get(name)
        if not isinstance(value, int | float) or isinstance(value, bool):
            continue
        if low is not None and value < low:
            problems.append(f"{name}={value} is below the allowed minimum {low}")
        if high is not None and value > high:
            problems.append(f"{name}={value} is above the allowed maximum {high}")
    for name, allowed in tool.allowed_values.items():
        if name in arguments and arguments[name] not in allowed:
            choices = ", ".join(repr(v) for v in allowed)
            problems.append(f"{name}={arguments[name]!r} is not one of {choices}")
    return problems
