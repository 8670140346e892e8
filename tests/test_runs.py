"""The run loop through the CLI on the example agent: records, approvals, threads, ceilings, switches."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

from conftest import Cli


def _refund_rows(data_dir: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(data_dir / "support.db") as conn:
        return conn.execute(
            "SELECT order_id, amount_usd, idempotency_key FROM refunds WHERE order_id != '12351'"
        ).fetchall()


def _set(project: Path, old: str, new: str) -> None:
    config = project / "tether.toml"
    text = config.read_text()
    assert old in text, f"{old!r} not in tether.toml"
    config.write_text(text.replace(old, new))


def test_order_status_run_succeeds_and_records_what_operators_need(cli: Cli, example_project: Path) -> None:
    run = cli.json("run", "--project", example_project, "--user", "u1", "Where is my order 12345?")

    assert run["status"] == "succeeded"
    assert run["run_id"].startswith("run_")
    assert run["release_version"].startswith("support-agent-wc-")
    assert run["user_id"] == "u1" and run["thread_id"]
    assert run["tools_called"] == ["lookup_order"]
    assert run["steps_used"] == 3  # model → lookup_order → model
    assert run["input_tokens"] > 0 and run["output_tokens"] > 0
    assert run["estimated_cost_usd"] > 0
    assert run["risk_level"] == "low"
    assert "1Z999AA10123456784" in run["output"]
    assert run["created_at"] and run["finished_at"] and run["error"] is None


def test_plain_output_prints_the_record(cli: Cli, example_project: Path) -> None:
    result = cli("run", "--project", example_project, "--user", "u1", "Where is my order 12345?")
    assert "succeeded" in result.stdout and "lookup_order" in result.stdout
    assert "Traceback" not in result.output


def test_another_customers_order_is_not_shown(cli: Cli, example_project: Path) -> None:
    run = cli.json("run", "--project", example_project, "--user", "u2", "Where is my order 12345?")
    assert run["status"] == "succeeded"
    assert "1Z999AA10123456784" not in run["output"]


def test_refund_waits_for_approval_then_completes(
    cli: Cli, example_project: Path, isolated_env: Path
) -> None:
    waiting = cli.json("run", "--project", example_project, "--user", "u1", "I want a refund for order 12346")

    assert waiting["status"] == "waiting_for_approval"
    assert waiting["lease_owner"] is None  # no process holds a waiting run
    pending = waiting["pending_approval"]
    assert pending["tool"] == "issue_refund"
    assert pending["arguments"]["order_id"] == "12346"
    assert "requires approval" in pending["reason"]
    assert waiting["risk_level"] == "high"
    assert _refund_rows(isolated_env / "data") == []  # nothing executes while waiting

    done = cli.json("approve", waiting["run_id"], "--project", example_project, "--reason", "checked receipt")

    assert done["status"] == "succeeded"
    assert "249.00" in done["output"]
    assert "issue_refund" in done["tools_called"]
    rows = _refund_rows(isolated_env / "data")
    assert len(rows) == 1 and rows[0][0] == "12346" and rows[0][1] == 249.0
    assert rows[0][2].startswith(waiting["run_id"] + ":")

    again = cli("approve", waiting["run_id"], "--project", example_project, expect=2)
    assert "no pending approval" in again.output


def test_rejected_refund_becomes_an_observation(cli: Cli, example_project: Path, isolated_env: Path) -> None:
    waiting = cli.json("run", "--project", example_project, "--user", "u1", "I want a refund for order 12346")
    done = cli.json(
        "approve",
        waiting["run_id"],
        "--project",
        example_project,
        "--reject",
        "--reason",
        "receipt is forged",
    )

    assert done["status"] == "succeeded"
    assert "receipt is forged" in done["output"]
    assert _refund_rows(isolated_env / "data") == []
    shown = cli.json("runs", "show", waiting["run_id"], "--project", example_project)
    refused = [s for s in shown["steps"] if s["name"] == "issue_refund"]
    assert len(refused) == 1 and refused[0]["status"] == "failed" and refused[0]["attempts"] == 0
    assert "rejected" in refused[0]["error"]
    assert shown["approvals"][0]["status"] == "rejected"
    assert shown["approvals"][0]["decided_by"] == "cli"


def test_thread_runs_see_earlier_messages(cli: Cli, example_project: Path) -> None:
    first = cli.json("run", "--project", example_project, "--user", "u1", "Where is my order 12345?")
    follow_up = cli.json(
        "run",
        "--project",
        example_project,
        "--user",
        "u1",
        "--thread",
        first["thread_id"],
        "When will it arrive?",
    )

    assert follow_up["thread_id"] == first["thread_id"]
    assert follow_up["tools_called"] == ["lookup_order"]
    assert "12345" in follow_up["output"]

    fresh = cli.json("run", "--project", example_project, "--user", "u1", "When will it arrive?")
    assert fresh["tools_called"] == []  # no history: it asks for the order number

    stolen = cli(
        "run", "--project", example_project, "--user", "u2", "--thread", first["thread_id"], "hi", expect=2
    )
    assert "belongs to another user" in stolen.output


def test_step_ceiling_ends_gracefully_with_a_summary(cli: Cli, example_project: Path) -> None:
    _set(example_project, "max_steps = 12", "max_steps = 4")
    run = cli.json("run", "--project", example_project, "--user", "u1", "I want a refund for order 12346")

    assert run["status"] == "budget_exhausted"
    assert run["steps_used"] == 4
    assert "step limit (4 steps)" in run["output"]
    assert "lookup_order(order_id='12346')" in run["output"]
    assert "budget exhausted" in run["error"]


def test_token_ceiling_is_never_crossed(cli: Cli, example_project: Path) -> None:
    _set(example_project, "max_tokens_per_run = 20000", "max_tokens_per_run = 4000")
    run = cli.json("run", "--project", example_project, "--user", "u1", "I want a refund for order 12346")

    assert run["status"] == "budget_exhausted"
    assert "token ceiling" in run["output"]
    assert run["input_tokens"] + run["output_tokens"] <= 4000
    assert run["tools_called"]  # it got somewhere before stopping, and says what it found
    assert "Here is what I found so far" in run["output"]


def test_cost_ceiling_is_never_crossed(cli: Cli, example_project: Path) -> None:
    _set(example_project, "max_cost_usd_per_run = 0.05", "max_cost_usd_per_run = 0.0012")
    run = cli.json("run", "--project", example_project, "--user", "u1", "I want a refund for order 12346")

    assert run["status"] == "budget_exhausted"
    assert "cost ceiling" in run["output"]
    assert 0 < run["estimated_cost_usd"] <= 0.0012


def test_write_tools_switched_off_are_never_called(
    cli: Cli, example_project: Path, isolated_env: Path
) -> None:
    _set(example_project, "write_tools_enabled = true", "write_tools_enabled = false")
    run = cli.json("run", "--project", example_project, "--user", "u1", "I want a refund for order 12346")

    assert run["status"] == "succeeded"
    assert "draft_refund_note" not in run["tools_called"] and "issue_refund" not in run["tools_called"]
    assert _refund_rows(isolated_env / "data") == []
    with sqlite3.connect(isolated_env / "data" / "support.db") as conn:
        assert conn.execute("SELECT count(*) FROM refund_notes").fetchone()[0] == 0


def test_force_human_review_gates_every_write(cli: Cli, example_project: Path) -> None:
    _set(example_project, "force_human_review = false", "force_human_review = true")
    run = cli.json("run", "--project", example_project, "--user", "u1", "I want a refund for order 12346")

    assert run["status"] == "waiting_for_approval"
    assert run["pending_approval"]["tool"] == "draft_refund_note"  # low risk, but a write
    assert "force_human_review" in run["pending_approval"]["reason"]


def test_escalation_ends_the_run_escalated(cli: Cli, example_project: Path) -> None:
    run = cli.json(
        "run", "--project", example_project, "--user", "u1", "I want to speak to a manager right now"
    )
    assert run["status"] == "escalated"
    assert run["output"]


def test_queued_run_is_finished_by_worker_drain(cli: Cli, example_project: Path) -> None:
    queued = cli.json(
        "run", "--project", example_project, "--user", "u1", "--queue", "Where is my order 12345?"
    )
    assert queued["status"] == "queued" and queued["steps_used"] == 0

    drained = cli.json("worker", "--project", example_project, "--drain")
    assert drained == [{"run_id": queued["run_id"], "status": "succeeded"}]
    assert cli.json("worker", "--project", example_project, "--drain") == []


def test_runs_list_and_show(cli: Cli, example_project: Path) -> None:
    ok = cli.json("run", "--project", example_project, "--user", "u1", "Where is my order 12345?")
    waiting = cli.json("run", "--project", example_project, "--user", "u1", "I want a refund for order 12346")

    listed = cli.json("runs", "list", "--project", example_project)
    assert [r["run_id"] for r in listed] == [waiting["run_id"], ok["run_id"]]
    only_waiting = cli.json("runs", "list", "--project", example_project, "--status", "waiting_for_approval")
    assert [r["run_id"] for r in only_waiting] == [waiting["run_id"]]

    tree = cli("runs", "show", ok["run_id"], "--project", example_project).stdout
    assert re.search(r"#0 model.*lookup_order", tree)
    assert re.search(r"#1 tool lookup_order\(\{\"order_id\": \"12345\"\}\)", tree)
    assert "final answer" in tree

    missing = cli("runs", "show", "run_nope", "--project", example_project, expect=2)
    assert "no run 'run_nope'" in missing.output and "Traceback" not in missing.output


def test_bad_input_is_a_clear_error(cli: Cli, example_project: Path, tmp_path: Path) -> None:
    empty = cli("run", "--project", example_project, "--user", "u1", "   ", expect=2)
    assert "input is empty" in empty.output
    nowhere = cli("run", "--project", tmp_path / "nothing-here", "--user", "u1", "hello", expect=2)
    assert "tether.toml" in nowhere.output and "not found" in nowhere.output
    unknown_release = cli(
        "run", "--project", example_project, "--user", "u1", "--release", "v-nope", "hello", expect=2
    )
    assert "no release 'v-nope'" in unknown_release.output


def test_db_upgrade_reports_current_schema(cli: Cli, example_project: Path) -> None:
    assert "current" in cli("db", "upgrade", "--project", example_project).stdout


def test_cancel_a_waiting_run(cli: Cli, example_project: Path, isolated_env: Path) -> None:
    waiting = cli.json("run", "--project", example_project, "--user", "u1", "I want a refund for order 12346")
    cancelled = cli.json("runs", "cancel", waiting["run_id"], "--project", example_project)
    assert cancelled["status"] == "cancelled" and cancelled["pending_approval"] is None
    assert "cancelled while waiting_for_approval" in cancelled["error"]
    again = cli("approve", waiting["run_id"], "--project", example_project, expect=2)
    assert "no pending approval" in again.output
    assert _refund_rows(isolated_env / "data") == []
    assert (
        "already ended"
        in cli("runs", "cancel", waiting["run_id"], "--project", example_project, expect=2).output
    )
