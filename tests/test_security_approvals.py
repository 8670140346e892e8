"""The four-eyes rule for high-risk tools (issue 10 item 4a): whoever asked for a run cannot
approve its high-risk call (not with the same key, not as the same user), through the API, the
dashboard or the CLI; the approval records who decided, and with which key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import Cli
from test_api import RW, bearer, finished, issue, parked_refund, problem, serve
from test_ui_pages import login
from ui_helpers import csrf_from


def _url(run: dict[str, object]) -> str:
    pending = run["pending_approval"]
    assert isinstance(pending, dict)
    return f"/v1/runs/{run['run_id']}/approvals/{pending['approval_id']}"


def test_the_key_and_user_that_asked_cannot_approve_a_high_risk_call(example_project: Path) -> None:
    both = issue("u1", "t1", (*RW, "approvals"))  # the key from the issue: runs:write and approvals
    same_user = issue("u1", "t1", ("approvals",))
    reviewer = issue("rev", "t1", ("approvals",))
    with serve(example_project) as client:
        run = parked_refund(client, both)
        approve = {"decision": "approve", "reason": "mine"}
        refused = problem(client.post(_url(run), json=approve, headers=bearer(both)), 403)
        assert "four-eyes" in refused and "API key that created this run" in refused
        refused = problem(client.post(_url(run), json=approve, headers=bearer(same_user)), 403)
        assert "four-eyes" in refused and "'u1' asked for this run" in refused

        # Rejecting one's own high-risk call takes risk away, so it stays allowed.
        rejected = client.post(
            _url(run), json={"decision": "reject", "reason": "changed my mind"}, headers=bearer(both)
        )
        assert rejected.status_code == 200, rejected.text
        assert finished(client, both, str(run["run_id"]))["status"] == "succeeded"

        again = parked_refund(client, both)
        decided = client.post(
            _url(again), json={"decision": "approve", "reason": "ok"}, headers=bearer(reviewer)
        )
        assert decided.status_code == 200, decided.text
        assert decided.json()["decided_by"] == "rev"
        assert decided.json()["decided_by_key"] == "key_" + reviewer.split("_")[1]
        done = finished(client, both, str(again["run_id"]))
        assert done["status"] == "succeeded" and "issue_refund" in done["tools_called"]


def test_the_rule_can_be_turned_off(example_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TETHER_FOUR_EYES", "false")
    both = issue("u1", "t1", (*RW, "approvals"))
    with serve(example_project) as client:
        run = parked_refund(client, both)
        decided = client.post(_url(run), json={"decision": "approve", "reason": "ok"}, headers=bearer(both))
        assert decided.status_code == 200, decided.text


def test_the_dashboard_refuses_a_self_approval_and_shows_the_decider(example_project: Path) -> None:
    both = issue("u1", "default", (*RW, "approvals"))
    reviewer = issue("rev", "default", ("approvals", "runs:read"))
    with serve(example_project) as client:
        run = parked_refund(client, both)
        approval = run["pending_approval"]["approval_id"]
        action = f"/ui/approvals/{run['run_id']}/{approval}"

        login(client, both, "/ui/approvals")
        token = csrf_from(client.get("/ui/approvals").text)
        refused = client.post(action, data={"csrf": token, "decision": "approve"}, follow_redirects=False)
        assert refused.status_code == 403
        assert "Another reviewer needed" in refused.text and "four-eyes" in refused.text

        client.cookies.clear()
        login(client, reviewer, "/ui/approvals")
        token = csrf_from(client.get("/ui/approvals").text)
        done = client.post(action, data={"csrf": token, "decision": "approve"}, follow_redirects=False)
        assert done.status_code == 303
        page = client.get(f"/ui/runs/{run['run_id']}").text
        decider = re.search(r'<td class="decider">(.*?)</td>', page, re.S)
        assert decider is not None
        assert "rev" in decider.group(1) and "key_" + reviewer.split("_")[1] in decider.group(1)


def test_the_cli_refuses_the_runs_own_user_and_records_no_key(cli: Cli, example_project: Path) -> None:
    project = str(example_project)
    run = cli.json("run", "--project", project, "--user", "u1", "I want a refund for order 12346")
    assert run["status"] == "waiting_for_approval"

    refused = cli("approve", run["run_id"], "--project", project, "--by", "u1", expect=2)
    assert "four-eyes rule" in refused.output and "'u1' asked for this run" in refused.output

    done = cli.json("approve", run["run_id"], "--project", project, "--by", "supervisor")
    assert done["status"] == "succeeded"
    decided = cli.json("runs", "show", run["run_id"], "--project", project)["approvals"][0]
    assert decided["decided_by"] == "supervisor" and decided["decided_by_key"] is None
