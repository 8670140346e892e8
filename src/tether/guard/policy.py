"""The policy a run is guarded with: the release's `[guard]` section, tightened by operator overrides.

Operator controls (a separate room) may make a running system stricter without a new release, for
example turning exfiltration from redact into block, or capping tool calls lower. They hand their
overrides to `effective_policy`; an override can never loosen the release's policy, so a control
that is wrong or stale fails safe.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tether.agent.config import GuardAction, GuardSection
from tether.guard.decisions import tighter

_ACTIONS = (
    "input_injection",
    "result_injection",
    "provenance",
    "exfiltration",
    "system_prompt_leak",
    "pii",
    "phishing",
    "attacker_text",
)


@dataclass(frozen=True)
class GuardOverrides:
    """Run-time tightening of the release policy (what an operator control may set)."""

    actions: tuple[tuple[str, GuardAction], ...] = ()
    """(policy field, action), e.g. ("exfiltration", "block")."""
    max_tool_calls_per_response: int | None = None
    max_calls_per_tool: int | None = None
    force_enabled: bool = False
    """Turn guards on even if the release switched them off."""
    blocked_hosts_only: bool = False
    """Drop the release's allow-list: every outside link is treated as exfiltration."""
    extra: dict[str, int] = field(default_factory=dict)
    """Per-tool max calls per run (only lower than the release's limit takes effect)."""


NO_OVERRIDES = GuardOverrides()


def effective_policy(release: GuardSection, overrides: GuardOverrides = NO_OVERRIDES) -> GuardSection:
    """The release's guard policy made at least as strict by `overrides`, never looser."""
    if overrides == NO_OVERRIDES:
        return release
    update: dict[str, object] = {}
    for name, action in overrides.actions:
        if name not in _ACTIONS:
            raise ValueError(f"unknown guard action {name!r}; choose one of {', '.join(_ACTIONS)}")
        update[name] = tighter(getattr(release, name), action)
    if overrides.max_tool_calls_per_response is not None:
        update["max_tool_calls_per_response"] = min(
            release.max_tool_calls_per_response, overrides.max_tool_calls_per_response
        )
    if overrides.max_calls_per_tool is not None:
        update["max_calls_per_tool"] = min(release.max_calls_per_tool, overrides.max_calls_per_tool)
    if overrides.extra:
        limits = dict(release.tool_limits)
        for tool, cap in overrides.extra.items():
            limits[tool] = min(limits.get(tool, cap), cap)
        update["tool_limits"] = limits
    if overrides.force_enabled:
        update["enabled"] = True
    if overrides.blocked_hosts_only:
        update["allowed_hosts"] = []
    return release.model_copy(update=update)
