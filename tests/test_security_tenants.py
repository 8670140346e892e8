"""Tools tell tenants apart (issue 10 item 1): the context carries the tenant and the caller's
scopes, and the example agent keeps each tenant's customers, orders and refunds apart.

Two tenants each have a user `u1`. Through the API, neither reads the other's order nor refunds it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from conftest import ProjectFactory
from fastapi.testclient import TestClient
from test_api import RW, bearer, finished, issue, parked_refund, serve

T1_TRACKING = "T1-ONLY-TRACKING-0001"


@pytest.fixture
def client(example_project: Path) -> Iterator[TestClient]:
    with serve(example_project) as service:
        yield service


def _ask(client: TestClient, key: str, text: str) -> dict[str, object]:
    response = client.post("/v1/runs", json={"input": text, "wait": 30}, headers=bearer(key))
    assert response.status_code == 200, response.text
    run: dict[str, object] = response.json()
    assert run["status"] == "succeeded", run
    return run


def _refunds(shop: Path) -> list[str]:
    with closing(sqlite3.connect(shop / "support.db")) as conn:
        return [row[0] for row in conn.execute("SELECT order_id FROM refunds ORDER BY id")]


def test_two_tenants_with_the_same_user_id_never_see_or_refund_each_others_orders(
    client: TestClient, isolated_env: Path
) -> None:
    data = isolated_env / "data"
    t1_user, t2_user = issue("u1", "t1", RW), issue("u1", "t2", RW)
    t1_reviewer = issue("rev", "t1", ("approvals", "runs:read"))

    # Each tenant's first run opens (and seeds) its own shop; then t1's order 12345 gets a
    # tracking number that exists nowhere else.
    _ask(client, t1_user, "Where is my order 12345?")
    _ask(client, t2_user, "Where is my order 12345?")
    with closing(sqlite3.connect(data / "tenants" / "t1" / "support.db")) as conn, conn:
        conn.execute("UPDATE orders SET tracking_number = ? WHERE id = '12345'", (T1_TRACKING,))

    assert T1_TRACKING in str(_ask(client, t1_user, "Where is my order 12345?")["output"])
    assert T1_TRACKING not in str(_ask(client, t2_user, "Where is my order 12345?")["output"])

    # t1's u1 is refunded order 12346 after t1's reviewer approves it ...
    run = parked_refund(client, t1_user)
    url = f"/v1/runs/{run['run_id']}/approvals/{run['pending_approval']['approval_id']}"
    decided = client.post(url, json={"decision": "approve", "reason": "ok"}, headers=bearer(t1_reviewer))
    assert decided.status_code == 200, decided.text
    assert finished(client, t1_user, run["run_id"])["status"] == "succeeded"
    assert "12346" in _refunds(data / "tenants" / "t1")

    # ... which is written in t1's shop only: t2's order 12346 is untouched and still refundable.
    assert "12346" not in _refunds(data / "tenants" / "t2")
    assert not (data / "support.db").exists()  # the default tenant's shop was never even opened
    t2_run = parked_refund(client, t2_user)
    assert t2_run["pending_approval"]["arguments"]["order_id"] == "12346"


ECHO_TOOLS = """
from tether import ToolContext, tool

@tool
def whoami(ctx: ToolContext) -> dict:
    \"\"\"Who the run acts for.\"\"\"
    return {"tenant": ctx.tenant_id, "user": ctx.user_id, "scopes": sorted(ctx.scopes)}
"""

ECHO_POLICY = """
from tether.models.scripted import ScriptedTurn

def respond(turn: ScriptedTurn):
    if turn.observations:
        return turn.observations[-1].content
    return turn.call("whoami")
"""


def test_the_tool_context_carries_the_callers_tenant_and_scopes(make_project: ProjectFactory) -> None:
    project = make_project(tools=ECHO_TOOLS, policy=ECHO_POLICY)
    key = issue("u1", "acme", ("runs:write", "approvals"))
    with serve(project) as service:
        run = _ask(service, key, "who am I?")
    assert run["output"] == '{"scopes": ["approvals", "runs:write"], "tenant": "acme", "user": "u1"}'
