"""Routing by task tier: rules by step, input, budget, flag and classifier; escalation on a failed or
low-confidence answer; the tier and why recorded on the step."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Cli, ProjectFactory

from tether.agent.config import RoutingSection
from tether.runtime.tiers import Situation, choose

ROUTING = RoutingSection.model_validate(
    {
        "tiers": {"small": ["scripted:small"], "large": ["scripted:large"]},
        "default": "large",
        "rules": [
            {"tier": "large", "flag": "premium=true"},
            {"tier": "small", "budget_below": 0.2},
            {"tier": "large", "classifier": "policy:classify"},
            {"tier": "small", "step": ["first"], "input_matches": r"\border\b", "input_max_chars": 80},
        ],
    }
)


def _situation(**changes: object) -> Situation:
    base: dict[str, object] = {
        "step": "first",
        "input": "where is my order 5?",
        "budget_left": 1.0,
        "flags": {},
    }
    return Situation(**{**base, **changes})  # type: ignore[arg-type]


def test_rules_pick_a_tier_and_say_why() -> None:
    never = {"policy:classify": lambda text: None}
    assert choose(ROUTING, _situation(), never).tier == "small"
    assert choose(ROUTING, _situation(), never).reason == (
        "rule 4: step first, input matches '\\\\border\\\\b', input <= 80 chars"
    )
    assert choose(ROUTING, _situation(step="after_tool"), never).reason == "default tier"
    assert choose(ROUTING, _situation(input="x" * 81), never).tier == "large"
    assert choose(ROUTING, _situation(flags={"premium": "true"}), never).reason == "rule 1: flag premium=true"
    low = choose(ROUTING, _situation(step="after_tool", budget_left=0.1), never)
    assert low.tier == "small" and "budget left 10% < 20%" in low.reason
    legal = {"policy:classify": lambda text: "large" if "lawyer" in text else None}
    assert choose(ROUTING, _situation(input="my lawyer says the order..."), legal).tier == "large"


def test_unknown_tiers_and_bad_rules_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown tier 'medium'"):
        RoutingSection.model_validate({"tiers": {"small": ["scripted:s"]}, "rules": [{"tier": "medium"}]})
    with pytest.raises(ValueError, match="not a valid regular expression"):
        RoutingSection.model_validate(
            {"tiers": {"small": ["scripted:s"]}, "rules": [{"tier": "small", "input_matches": "("}]}
        )
    with pytest.raises(ValueError, match="'name=value'"):
        RoutingSection.model_validate(
            {"tiers": {"small": ["scripted:s"]}, "rules": [{"tier": "small", "flag": "x"}]}
        )


TOOLS = '''
from tether import tool

@tool
def lookup_order(order_id: str) -> str:
    """Look an order up.

    Args:
        order_id: The order number.
    """
    return f"order {order_id}: shipped"
'''

POLICY = """
def respond(turn):
    if turn.model == "scripted:small" and "refund law" in turn.user_input:
        return "I'm not sure what the law says here."
    if turn.model == "scripted:small" and "crash" in turn.user_input:
        raise ValueError("small model crashed")
    if not turn.observations and "order" in turn.user_input:
        return turn.call("lookup_order", order_id="5")
    return f"answered by {turn.model}"
"""

EXTRA = """
[prices."scripted:small"]
input_per_mtok = 0.1
output_per_mtok = 0.4

[prices."scripted:large"]
input_per_mtok = 10.0
output_per_mtok = 30.0

[routing]
default = "large"
escalate_to = "large"

[routing.tiers]
small = ["scripted:small"]

[[routing.rules]]
tier = "small"
step = ["first", "after_tool"]
"""


def _steps(cli: Cli, project: Path, task: str) -> tuple[dict[str, object], list[dict[str, object]]]:
    run = cli.json("run", "--project", str(project), "--user", "u1", task)
    return run, cli.json("runs", "show", str(run["run_id"]), "--project", str(project))["steps"]


def test_each_model_call_records_its_tier_and_why(cli: Cli, make_project: ProjectFactory) -> None:
    project = make_project(tools=TOOLS, policy=POLICY, model='primary = "scripted:large"', extra=EXTRA)
    run, steps = _steps(cli, project, "where is order 5?")
    assert run["output"] == "answered by scripted:small"
    models = [s for s in steps if s["kind"] == "model_call"]
    assert [(s["name"], s["tier"], s["route"]) for s in models] == [
        ("scripted:small", "small", "rule 1: step first"),
        ("scripted:small", "small", "rule 1: step after_tool"),
    ]


def test_a_low_confidence_answer_is_escalated_and_both_calls_are_paid(
    cli: Cli, make_project: ProjectFactory
) -> None:
    project = make_project(tools=TOOLS, policy=POLICY, model='primary = "scripted:large"', extra=EXTRA)
    run, steps = _steps(cli, project, "what does refund law say?")
    assert run["output"] == "answered by scripted:large"
    (step,) = steps
    assert step["tier"] == "large" and step["name"] == "scripted:large"
    assert "escalated from small (rule 1: step first): low confidence" in str(step["route"])
    assert step["attempts"] == 2
    # both calls' tokens are on the step (the same prompt twice), and both are priced at their own rates
    prompt = int(step["input_tokens"]) // 2
    assert int(step["input_tokens"]) == 2 * prompt
    hedge_out, answer_out = 9, 7  # scripted output tokens: 36 and 26 characters, 4 a token
    assert int(step["output_tokens"]) == hedge_out + answer_out
    expected = (prompt * 0.1 + hedge_out * 0.4 + prompt * 10.0 + answer_out * 30.0) / 1_000_000
    assert float(step["cost_usd"]) == pytest.approx(expected)


def test_a_failed_small_answer_is_escalated(cli: Cli, make_project: ProjectFactory) -> None:
    project = make_project(tools=TOOLS, policy=POLICY, model='primary = "scripted:large"', extra=EXTRA)
    run, steps = _steps(cli, project, "crash please")
    assert run["status"] == "succeeded" and run["output"] == "answered by scripted:large"
    assert "escalated from small (rule 1: step first): it failed: " in str(steps[0]["route"])
    assert "small model crashed" in str(steps[0]["route"])


def test_without_routing_nothing_changes(cli: Cli, make_project: ProjectFactory) -> None:
    project = make_project(tools=TOOLS, policy=POLICY, model='primary = "scripted:large"')
    run, steps = _steps(cli, project, "where is order 5?")
    assert run["output"] == "answered by scripted:large"
    assert {s["tier"] for s in steps} == {None}
