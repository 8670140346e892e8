"""Routing by task tier: which tier of models answers this model call, and why.

The decision is a pure function of a `Situation` (what the loop knows before the call) and the
release's `[routing]` rules, so it is cheap, deterministic and testable; the loop records the tier
and the reason on the step and its span. A project classifier (`classifier = "module:function"`)
is resolved once per release and handed in as a callable.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from tether.agent.config import RouteRule, RoutingSection

Classifier = Callable[[str], str | None]


@dataclass(frozen=True)
class Situation:
    """What is known before a model call."""

    step: str
    """`first`, `after_tool`, `final` or `other`."""
    input: str
    budget_left: float
    """The smaller share left of the run's token and cost ceilings (1.0 = nothing spent)."""
    flags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Route:
    tier: str
    reason: str


def choose(routing: RoutingSection, situation: Situation, classifiers: Mapping[str, Classifier]) -> Route:
    """The first rule whose every condition holds, else the default tier."""
    for number, rule in enumerate(routing.rules, start=1):
        why = _matches(rule, situation, classifiers)
        if why is not None:
            return Route(rule.tier, f"rule {number}: {why}")
    return Route(routing.default, "default tier")


def _matches(rule: RouteRule, situation: Situation, classifiers: Mapping[str, Classifier]) -> str | None:
    reasons: list[str] = []
    if rule.step is not None:
        if situation.step not in rule.step:
            return None
        reasons.append(f"step {situation.step}")
    if rule.input_matches is not None:
        if not re.search(rule.input_matches, situation.input, re.IGNORECASE):
            return None
        reasons.append(f"input matches {rule.input_matches!r}")
    if rule.input_max_chars is not None:
        if len(situation.input) > rule.input_max_chars:
            return None
        reasons.append(f"input <= {rule.input_max_chars} chars")
    if rule.input_min_chars is not None:
        if len(situation.input) < rule.input_min_chars:
            return None
        reasons.append(f"input >= {rule.input_min_chars} chars")
    if rule.budget_below is not None:
        if situation.budget_left >= rule.budget_below:
            return None
        reasons.append(f"budget left {situation.budget_left:.0%} < {rule.budget_below:.0%}")
    if rule.flag is not None:
        name, _, value = rule.flag.partition("=")
        if situation.flags.get(name) != value:
            return None
        reasons.append(f"flag {rule.flag}")
    if rule.classifier is not None:
        verdict = classifiers[rule.classifier](situation.input)
        if verdict != rule.tier:
            return None
        reasons.append(f"classifier {rule.classifier} said {verdict}")
    return ", ".join(reasons) or "always"


def low_confidence(content: str, routing: RoutingSection) -> str | None:
    """The phrase that marks this answer as low-confidence, if any."""
    lowered = content.lower()
    return next((phrase for phrase in routing.low_confidence if phrase.lower() in lowered), None)
