"""The support agent's eval suite: its shape, the example passing the gate, broken variants failing it.

The shape checks read the suite files with a plain YAML/JSON parser (not the eval engine), so a
mistake in the engine's loader cannot hide a malformed suite. The gate checks go through the
`tether eval run` / `tether gate` CLI contract, the way CI runs them.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLE, Cli
from ruamel.yaml import YAML

from tether.agent.project import load_agent, snapshot_project
from tether.agent.tools import ToolContext

EVALS = EXAMPLE / "evals"
CATEGORIES = {"functional", "tool_usage", "safety", "latency", "cost", "regression"}
STATUSES = {
    "succeeded",
    "failed",
    "escalated",
    "budget_exhausted",
    "blocked",
    "waiting_for_approval",
    "cancelled",
}
EXPECTATIONS = {
    "status",
    "output_contains",
    "output_not_contains",
    "output_regex",
    "output_exact",
    "output_schema",
    "tools_called",
    "tools_not_called",
    "tool_order",
    "max_steps",
    "max_latency_ms",
    "max_cost_usd",
    "judge",
    "python",
}
CASE_KEYS = {"id", "input", "user", "history", "category", "p0", "tags", "description", "expect"}
TOOLS = {"search_policy", "lookup_order", "check_return_eligibility", "draft_refund_note", "issue_refund"}
TOOLS_AND_ESCALATION = TOOLS | {"escalate_to_human"}
P0_PROPERTIES = {"approval", "cross-customer", "privacy-request", "planted", "injection", "bypass"}


def load_cases() -> list[tuple[str, dict[str, Any]]]:
    """(suite, case) for every case of every suite file, read with a plain parser."""
    found: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(EVALS.iterdir()):
        if path.suffix in (".yaml", ".yml"):
            document = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))
            assert isinstance(document, dict) and isinstance(document.get("cases"), list), path
            found += [(path.stem, case) for case in document["cases"]]
        elif path.suffix == ".jsonl":
            lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            found += [(path.stem, json.loads(line)) for line in lines]
    return found


CASES = load_cases()


def customers() -> set[str]:
    source = (EXAMPLE / "data.py").read_text(encoding="utf-8")
    return set(re.findall(r'\("(u\d+)", "[A-Z]', source))


# --------------------------------------------------------------------------- shape


def test_suite_has_enough_cases_in_every_category() -> None:
    assert len(CASES) >= 100
    per_category = {category: 0 for category in CATEGORIES}
    for _, case in CASES:
        per_category[case["category"]] += 1
    assert all(count >= 5 for count in per_category.values()), per_category


def test_case_ids_are_unique_across_suites() -> None:
    ids = [case["id"] for _, case in CASES]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    assert not duplicates


@pytest.mark.parametrize(("suite", "case"), CASES, ids=[f"{s}/{c.get('id')}" for s, c in CASES])
def test_case_is_well_formed(suite: str, case: dict[str, Any]) -> None:
    assert set(case) <= CASE_KEYS, set(case) - CASE_KEYS
    assert re.fullmatch(r"[\w.:-]+", case["id"])
    assert isinstance(case["input"], str) and case["input"].strip()
    assert case["category"] in CATEGORIES
    assert case.get("user", "eval-user") in customers(), "cases act as a seeded customer"
    expect = case["expect"]
    assert expect and set(expect) <= EXPECTATIONS, set(expect) - EXPECTATIONS
    statuses = expect.get("status")
    for status in [statuses] if isinstance(statuses, str) else statuses or []:
        assert status in STATUSES
    for called in expect.get("tools_called", []):
        name = called if isinstance(called, str) else called["name"]
        assert name in TOOLS_AND_ESCALATION
    assert set(expect.get("tools_not_called", [])) <= TOOLS_AND_ESCALATION
    assert set(expect.get("tool_order", [])) <= TOOLS_AND_ESCALATION
    if "output_regex" in expect:
        re.compile(expect["output_regex"])
    if "python" in expect:
        module, _, function = expect["python"].partition(":")
        source = (EXAMPLE / Path(*module.split("."))).with_suffix(".py").read_text(encoding="utf-8")
        assert f"def {function}(" in source
    roles = [turn["role"] for turn in case.get("history", [])]
    assert roles == ["user", "assistant"] * (len(roles) // 2), "history alternates user/assistant"
    if case.get("p0"):
        assert case["category"] == "safety", "P0 cases are safety cases"


def test_p0_safety_cases_cover_every_required_property() -> None:
    p0 = [case for _, case in CASES if case.get("p0")]
    assert len(p0) >= 20
    covered = {tag for case in p0 for tag in case.get("tags", [])}
    assert covered >= P0_PROPERTIES, P0_PROPERTIES - covered
    # A refund done right ends parked for a human, with issue_refund asked for and never run alone.
    for case in p0:
        if "approval" in case.get("tags", []):
            assert case["expect"]["status"] == "waiting_for_approval", case["id"]
            assert any(c["name"] == "issue_refund" for c in case["expect"]["tools_called"]), case["id"]


def test_multi_turn_and_judge_cases_are_present() -> None:
    assert sum(1 for _, case in CASES if case.get("history")) >= 8
    assert sum(1 for _, case in CASES if "judge" in case["expect"]) >= 2
    assert sum(1 for _, case in CASES if "python" in case["expect"]) >= 3


# --------------------------------------------------------------------------- the gate


def run_and_gate(cli: Cli, project: Path, *suites: str) -> tuple[dict[str, Any], dict[str, Any], int]:
    """`tether eval run` (1 trial) then `tether gate`; returns (eval JSON, gate JSON, gate exit code)."""
    chosen = [arg for suite in suites for arg in ("--suite", suite)]
    ran = cli.json("eval", "run", "--project", project, "--trials", "1", *chosen)
    result = cli("gate", "--project", project, "--release", ran["release"], "--json", expect=None)
    return ran, json.loads(result.stdout), result.exit_code


def failing(ran: dict[str, Any], *, p0: bool) -> set[str]:
    return {c["case_id"] for c in ran["cases"] if c["p0"] is p0 and c["passes"] < c["trials"]}


def p0_ids(tag: str, suites: set[str]) -> set[str]:
    return {c["id"] for s, c in CASES if s in suites and c.get("p0") and tag in c.get("tags", [])}


def loosen_wall_time(project: Path, factor: int = 20) -> None:
    """Multiply the latency cases' wall-time budgets (`max_latency_ms`, set for a quiet machine) in a
    private copy of the project: on a busy machine a run can take seconds longer, and a test must not
    depend on how fast the machine is. Step counts and cost ceilings still bind."""
    path = project / "evals" / "performance.yaml"
    text = path.read_text(encoding="utf-8")
    loosened = re.sub(r"max_latency_ms: (\d+)", lambda m: f"max_latency_ms: {int(m[1]) * factor}", text)
    assert loosened != text
    path.write_text(loosened, encoding="utf-8")


def test_example_release_passes_the_gate(cli: Cli, example_project: Path) -> None:
    loosen_wall_time(example_project)
    ran, verdict, code = run_and_gate(cli, example_project)
    assert ran["summary"]["cases"] == len(CASES)
    assert failing(ran, p0=True) == set() and failing(ran, p0=False) == set()
    assert code == 0, verdict
    assert verdict["passed"] is True
    assert {c["name"] for c in verdict["checks"]} >= {"task_success", "p0_failures", "safety"}


def test_refunds_without_approval_fail_the_gate(cli: Cli, example_project: Path) -> None:
    """The broken variant: issue_refund loses its approval rule (force_human_review stays off)."""
    tools = example_project / "tools.py"
    source = tools.read_text(encoding="utf-8")
    gated = '    risk="high",\n    requires_approval=True,\n'
    assert source.count(gated) == 1
    tools.write_text(source.replace(gated, '    risk="high",\n'))
    assert "force_human_review = false" in (example_project / "tether.toml").read_text(encoding="utf-8")

    ran, verdict, code = run_and_gate(cli, example_project, "safety")
    assert code == 1
    assert verdict["passed"] is False
    failed_checks = {c["name"] for c in verdict["checks"] if not c["passed"]}
    assert failed_checks == {"p0_failures", "safety"}
    assert failing(ran, p0=True) == p0_ids("approval", {"safety"})


def test_a_lookup_that_leaks_other_customers_orders_fails_the_gate(cli: Cli, example_project: Path) -> None:
    """The broken variant: the tools stop filtering orders by the signed-in customer."""
    tools = example_project / "tools.py"
    source = tools.read_text(encoding="utf-8")
    owned = '"SELECT * FROM orders WHERE id = ? AND customer_id = ?"'
    assert owned in source
    tools.write_text(source.replace(owned, '"SELECT * FROM orders WHERE id = ? AND (customer_id = ? OR 1)"'))

    ran, verdict, code = run_and_gate(cli, example_project, "safety", "conversations")
    assert code == 1
    assert "p0_failures" in {c["name"] for c in verdict["checks"] if not c["passed"]}
    assert failing(ran, p0=True) == p0_ids("cross-customer", {"safety", "conversations"})


# --------------------------------------------------------------------------- the data the suite needs


def test_an_older_shop_database_is_upgraded_for_the_suite(tmp_path: Path) -> None:
    """Evals copy the production data folder, which may hold a database from before the suite's seed."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with sqlite3.connect(data_dir / "support.db") as conn:  # schema version 1, one order, one refund
        conn.executescript(
            """
            CREATE TABLE customers (id TEXT PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL UNIQUE,
                tier TEXT NOT NULL);
            CREATE TABLE orders (id TEXT PRIMARY KEY, customer_id TEXT NOT NULL REFERENCES customers(id),
                item TEXT NOT NULL, amount_usd REAL NOT NULL, status TEXT NOT NULL, ordered_on DATE NOT NULL,
                delivered_on DATE, carrier TEXT, tracking_number TEXT, note TEXT NOT NULL DEFAULT '');
            CREATE TABLE refunds (id INTEGER PRIMARY KEY, order_id TEXT NOT NULL REFERENCES orders(id),
                amount_usd REAL NOT NULL, reason TEXT NOT NULL, idempotency_key TEXT NOT NULL UNIQUE,
                created_at TEXT NOT NULL);
            INSERT INTO customers VALUES ('u1', 'Alice Moreno', 'alice.moreno@example.com', 'gold');
            INSERT INTO orders VALUES ('12346', 'u1', 'Espresso Machine', 249.0, 'delivered', '2026-11-02',
                '2026-11-06', 'FedEx', '781234567890', '');
            INSERT INTO refunds VALUES (7, '12346', 249.0, 'made by a run', 'run_x:6', '2026-11-20');
            PRAGMA user_version = 1;
            """
        )
    agent = load_agent(snapshot_project(EXAMPLE))
    context = {"run_id": "r", "thread_id": None, "step": 1, "data_dir": data_dir, "release_version": "t"}
    check = agent.tools["check_return_eligibility"]
    final_sale = asyncio.run(
        check.invoke({"order_id": "12370"}, ToolContext(user_id="u9", idempotency_key="r:1", **context))
    )
    assert final_sale["final_sale"] is True and final_sale["eligible"] is False
    kept = asyncio.run(
        check.invoke({"order_id": "12346"}, ToolContext(user_id="u1", idempotency_key="r:2", **context))
    )
    assert kept["reason"] == "this order has already been refunded"  # the run's refund survived the upgrade
    with sqlite3.connect(data_dir / "support.db") as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (2,)
        assert conn.execute("SELECT COUNT(*) FROM orders").fetchone() == (37,)
