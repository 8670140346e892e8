"""`tether cost estimate`: measured per-run cost projected to a traffic level; exit 1 over budget."""

from __future__ import annotations

import json
from typing import Any

import pytest
from evals_helpers import POLICY, TOOLS, write_suite

SUITE = """
cases:
  - id: remember
    input: remember milk
    expect: {status: succeeded}
  - id: echo
    input: hello
    expect: {output_exact: "echo: hello"}
  - id: conversation
    input: what did I say
    history:
      - {role: user, content: first}
      - {role: assistant, content: ok}
    expect: {output_contains: [first]}
"""
PRICED = '[prices."scripted:test-v1"]\ninput_per_mtok = 10.0\noutput_per_mtok = 20.0\n'


@pytest.fixture
def evaluated(cli: Any, make_project: Any) -> Any:
    project = make_project(tools=TOOLS, policy=POLICY, extra=PRICED, limits="max_cost_usd_per_run = 0.5")
    write_suite(project, "s.yaml", SUITE)
    cli("release", "create", "--project", project, "--version", "v1")
    cli("eval", "run", "--project", project, "--release", "v1", "--trials", "2")
    return project


def estimate(cli: Any, project: Any, *args: str, expect: int = 0) -> dict[str, Any]:
    result = cli("cost", "estimate", "--project", project, "--release", "v1", "--json", *args, expect=expect)
    return dict(json.loads(result.stdout))


def test_the_estimate_comes_from_measured_runs(cli: Any, evaluated: Any) -> None:
    data = estimate(cli, evaluated, "--runs-per-day", "1000")
    assert data["runs_measured"] == 6
    cost = data["cost_per_run_usd"]
    assert 0 < cost["p50"] <= cost["p95"] <= cost["max"] and cost["mean"] > 0
    assert data["daily_usd"] == pytest.approx(cost["mean"] * 1000)
    assert data["monthly_usd"] == pytest.approx(data["daily_usd"] * 30)
    assert data["tokens_per_run"]["mean"] > 0
    # The two-turn case gives the per-conversation figure: its mean run cost times its two turns.
    assert data["cost_per_conversation_usd"]["mean"] > cost["p50"]
    assert data["over_budget"] is False and data["monthly_budget_usd"] is None


def test_exit_code_follows_the_monthly_budget(cli: Any, evaluated: Any) -> None:
    data = estimate(cli, evaluated, "--runs-per-day", "1000")
    monthly = data["monthly_usd"]
    assert (
        estimate(cli, evaluated, "--runs-per-day", "1000", "--monthly-budget", str(monthly * 2))[
            "over_budget"
        ]
        is False
    )
    over = estimate(cli, evaluated, "--runs-per-day", "1000", "--monthly-budget", str(monthly / 2), expect=1)
    assert over["over_budget"] is True
    # From tether.toml when no flag is given.
    toml = evaluated / "tether.toml"
    toml.write_text(toml.read_text() + f"\n[gate]\nmonthly_budget_usd = {monthly / 2}\n")
    table = cli(
        "cost", "estimate", "--project", evaluated, "--release", "v1", "--runs-per-day", "1000", expect=1
    )
    assert "OVER BUDGET" in table.output


def test_cases_near_the_per_run_ceiling_are_flagged(cli: Any, evaluated: Any) -> None:
    toml = evaluated / "tether.toml"
    toml.write_text(toml.read_text() + "\n[gate]\ncost_ceiling_warning = 0.000001\n")
    data = estimate(cli, evaluated, "--runs-per-day", "10")
    flagged = {(n["case_id"], n["what"]) for n in data["near_ceiling"]}
    assert ("remember", "cost_usd") in flagged and ("echo", "tokens") in flagged


def test_bad_input_is_a_clear_error(cli: Any, evaluated: Any, make_project: Any) -> None:
    assert (
        "--runs-per-day"
        in cli("cost", "estimate", "--project", evaluated, "--release", "v1", expect=2).output
    )
    other = make_project(tools=TOOLS, policy=POLICY)
    cli("release", "create", "--project", other, "--version", "v0")
    result = cli("cost", "estimate", "--project", other, "--release", "v0", "--runs-per-day", "5", expect=2)
    assert "has no measured runs" in result.output
