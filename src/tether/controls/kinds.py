"""The kinds of control, the scopes they apply to, and the checks a new control must pass.

A scope is `all`, `tenant:<id>`, `release:<version>` or `tool:<name>`. A tool scope narrows a
tool-level control (disable a tool, force review of it); run-level controls (pause, stop, cap
steps, switch model, read-only, maintenance) take the first three.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum


class ControlKind(StrEnum):
    DISABLE_TOOL = "disable_tool"
    """The tool is not run; the model sees an error saying it is unavailable."""
    PAUSE_RUNS = "pause_runs"
    """New runs are refused (HTTP 503 with Retry-After); runs already queued or running go on."""
    FORCE_REVIEW = "force_review"
    """Every write (value `writes`, the default) or every tool call (`all`) waits for a human."""
    CAP_STEPS = "cap_steps"
    """Runs stop at this many steps when it is below the release's own limit."""
    SWITCH_MODEL = "switch_model"
    """Runs call this model (one of the release's configured models) first."""
    STOP_BACKGROUND = "stop_background"
    """Queued and parked runs are cancelled now, running ones at their next step boundary; new
    runs are refused."""
    READ_ONLY = "read_only"
    """No write tool runs; the model is told the tool is unavailable."""
    MAINTENANCE = "maintenance"
    """A message returned to users (with every refused run and as a header on run responses)."""


TOOL_LEVEL = frozenset({ControlKind.DISABLE_TOOL, ControlKind.FORCE_REVIEW})
"""Kinds that may be scoped to a single tool."""
_SCOPES = ("all", "tenant", "release", "tool")
_DURATION = re.compile(r"^(\d+)\s*([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


@dataclass(frozen=True)
class Scope:
    kind: str
    name: str = ""

    def __str__(self) -> str:
        return "all" if self.kind == "all" else f"{self.kind}:{self.name}"


class ControlError(ValueError):
    """A control that cannot be set as asked (the message says how to fix it)."""


def parse_scope(text: str) -> Scope:
    text = text.strip()
    if text in ("all", "", "*"):
        return Scope("all")
    kind, sep, name = text.partition(":")
    if not sep or kind not in _SCOPES[1:] or not name.strip():
        raise ControlError(f"bad scope {text!r}; use all, tenant:<id>, release:<version> or tool:<name>")
    return Scope(kind, name.strip())


def parse_duration(text: str) -> timedelta:
    """`30m`, `2h`, `1d`, `45s`: how long a control lasts before it stops applying on its own."""
    match = _DURATION.match(text.strip())
    if match is None or int(match.group(1)) == 0:
        raise ControlError(f"bad duration {text!r}; use a number and a unit: 45s, 30m, 2h, 1d")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def normalise(kind: ControlKind, scope: Scope, value: str) -> str:
    """The value to store for this kind and scope, or a `ControlError` saying what is missing."""
    value = value.strip()
    if scope.kind == "tool" and kind not in TOOL_LEVEL:
        raise ControlError(f"{kind} applies to runs; scope it to all, a tenant or a release, not a tool")
    if kind == ControlKind.DISABLE_TOOL:
        if scope.kind == "tool":
            if value and value != scope.name:
                raise ControlError(f"scope names tool {scope.name!r} but the value names {value!r}")
            return scope.name
        if not value:
            raise ControlError("disable_tool needs the tool's name (as the value, or scope tool:<name>)")
        return value
    if kind == ControlKind.FORCE_REVIEW:
        value = value or "writes"
        if value not in ("writes", "all"):
            raise ControlError("force_review takes `writes` (every write tool) or `all` (every tool call)")
        return value
    if kind == ControlKind.CAP_STEPS:
        if not value.isdigit() or int(value) < 1:
            raise ControlError("cap_steps needs a whole number of steps, at least 1")
        return str(int(value))
    if kind == ControlKind.SWITCH_MODEL:
        if ":" not in value:
            raise ControlError("switch_model needs a model reference such as openai:gpt-4o-mini")
        return value
    if kind == ControlKind.MAINTENANCE:
        if not value:
            raise ControlError("maintenance needs the message users should see")
        return value
    if kind == ControlKind.PAUSE_RUNS:
        if value and (not value.isdigit() or int(value) < 1):
            raise ControlError("pause_runs takes an optional Retry-After in whole seconds")
        return value
    if value:
        raise ControlError(f"{kind} takes no value")
    return value
