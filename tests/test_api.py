"""The HTTP API end to end, through HTTP only: keys and scopes, runs, approvals, event streams,
feedback, threads, readiness, rate limits and budgets, and bad input.

Every app is built with `create_app` and driven by FastAPI's `TestClient` as a context manager, so
the lifespan runs and (unless a test says otherwise) an embedded worker executes the runs. Waits
are bounded polls; nothing asserts how long anything took.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Cli
from fastapi.testclient import TestClient
from timing import wait_until

from tether.api.app import ServiceOptions, create_app
from tether.api.auth import issue_key
from tether.settings import Settings
from tether.store.repository import Store

STATUS_QUESTION = "Where is my order 12345?"
REFUND_REQUEST = "I want a refund for order 12346"
TRACKING = "1Z999AA10123456784"
FINAL = frozenset({"succeeded", "failed", "cancelled", "escalated", "budget_exhausted"})
RW = ("runs:write", "runs:read")


# --------------------------------------------------------------------------- helpers


def issue(user: str = "u1", tenant: str = "t1", scopes: tuple[str, ...] = RW) -> str:
    """A new API key in the test database (the one TETHER_DATABASE_URL names)."""

    async def create() -> str:
        store = await Store.open(os.environ["TETHER_DATABASE_URL"])
        try:
            _, plaintext = await issue_key(store, user_id=user, tenant_id=tenant, scopes=list(scopes))
        finally:
            await store.close()
        return plaintext

    return asyncio.run(create())


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@contextmanager
def serve(project: Path, *, workers: int = 2, raise_errors: bool = False) -> Iterator[TestClient]:
    """The service with settings read from the environment now; `workers=0` runs no worker."""
    app = create_app(
        ServiceOptions(project=project, embedded_worker_concurrency=workers, settings=Settings())
    )
    with TestClient(app, raise_server_exceptions=raise_errors) as client:
        yield client


def problem(response: httpx.Response, status: int) -> str:
    """Assert a clean JSON error with this status; return its detail as text."""
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    assert response.status_code < 500
    assert response.headers.get("content-type", "").startswith("application/json"), (
        f"not JSON: {response.headers.get('content-type')!r} {response.text!r}"
    )
    body = response.json()
    assert isinstance(body, dict) and body.get("detail"), body
    return json.dumps(body["detail"])


def create(client: TestClient, key: str, text: str = STATUS_QUESTION, **extra: Any) -> dict[str, Any]:
    response = client.post("/v1/runs", json={"input": text, **extra}, headers=bearer(key))
    assert response.status_code in (200, 202), response.text
    run: dict[str, Any] = response.json()
    return run


def finished(client: TestClient, key: str, run_id: str) -> dict[str, Any]:
    """Poll the run until it is final (bounded: fails rather than hangs)."""
    seen: dict[str, Any] = {}

    def final() -> dict[str, Any] | None:
        response = client.get(f"/v1/runs/{run_id}", headers=bearer(key))
        assert response.status_code == 200, response.text
        seen.update(response.json())
        return seen if seen["status"] in FINAL else None

    return wait_until(final, message=lambda: f"run {run_id} finishes; last status {seen.get('status')}")


def succeeded_run(client: TestClient, key: str, text: str = STATUS_QUESTION, **extra: Any) -> dict[str, Any]:
    response = client.post("/v1/runs", json={"input": text, "wait": 60, **extra}, headers=bearer(key))
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()
    assert run["status"] == "succeeded", run
    return run


def parked_refund(client: TestClient, key: str) -> dict[str, Any]:
    response = client.post("/v1/runs", json={"input": REFUND_REQUEST, "wait": 60}, headers=bearer(key))
    assert response.status_code == 202, response.text
    run: dict[str, Any] = response.json()
    assert run["status"] == "waiting_for_approval", run
    return run


def parse_sse(text: str) -> list[dict[str, Any]]:
    """Server-sent events as dicts with id (int), event and data (decoded JSON); comments skipped."""
    events: list[dict[str, Any]] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value
        if fields:
            events.append(
                {
                    "id": int(fields["id"]) if "id" in fields else None,
                    "event": fields.get("event"),
                    "data": json.loads(fields["data"]) if "data" in fields else None,
                }
            )
    return events


def read_stream(
    client: TestClient, key: str, run_id: str, *, headers: dict[str, Any] | None = None, **params: Any
) -> tuple[int, str, str]:
    """Open the run's event stream and read it to its end: (status, content type, body).

    The reading happens on a helper thread that the test waits for (boundedly), so a stream that
    never ends fails the test instead of hanging it.
    """
    result: dict[str, Any] = {}

    with client.stream(
        "GET", f"/v1/runs/{run_id}/events", headers={**bearer(key), **(headers or {})}, params=params
    ) as response:

        def consume() -> None:
            try:
                result["body"] = "".join(response.iter_text())
            except Exception as exc:  # reported by the assertion below
                result["error"] = exc

        reader = threading.Thread(target=consume, daemon=True)
        reader.start()
        reader.join(60)
        assert not reader.is_alive(), "the event stream did not end by itself"
        assert "error" not in result, result.get("error")
        return response.status_code, response.headers.get("content-type", ""), result["body"]


@pytest.fixture
def client(example_project: Path) -> Iterator[TestClient]:
    """The service with an embedded worker (two runs at a time)."""
    with serve(example_project) as service:
        yield service


@pytest.fixture
def idle(example_project: Path) -> Iterator[TestClient]:
    """The service without any worker: runs stay queued."""
    with serve(example_project, workers=0) as service:
        yield service


# --------------------------------------------------------------------------- 1. authentication


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/runs"),
        ("POST", "/v1/runs"),
        ("GET", "/v1/runs/run_x"),
        ("GET", "/v1/runs/run_x/events"),
        ("GET", "/v1/approvals"),
        ("GET", "/v1/releases"),
        ("POST", "/v1/threads"),
    ],
)
def test_no_key_is_401_with_a_bearer_challenge(idle: TestClient, method: str, path: str) -> None:
    response = idle.request(method, path, json={"input": "hi"} if method == "POST" else None)
    assert "API key" in problem(response, 401)
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_malformed_unknown_wrong_secret_and_revoked_keys_are_401(
    idle: TestClient, cli: Cli, example_project: Path
) -> None:
    made = cli.json(
        "keys",
        "create",
        "--user",
        "u1",
        "--tenant",
        "t1",
        "--scopes",
        "runs:read",
        "--project",
        example_project,
    )
    key: str = made["key"]
    assert idle.get("/v1/runs", headers=bearer(key)).status_code == 200
    assert idle.get("/v1/runs", headers={"X-API-Key": key}).status_code == 200

    prefix, _, secret = key.rpartition("_")
    wrong_secret = f"{prefix}_{'A' * len(secret)}"
    unknown = f"tk_{'0' * 16}_{secret}"
    for presented in ("nope", "tk_", key[:-1] + "!", f"{key} extra", unknown, wrong_secret, key.upper()):
        for headers in (bearer(presented), {"X-API-Key": presented}):
            response = idle.get("/v1/runs", headers=headers)
            problem(response, 401)
            assert response.headers["WWW-Authenticate"] == "Bearer"
    problem(idle.get("/v1/runs", headers={"Authorization": f"Basic {key}"}), 401)

    cli("keys", "revoke", made["key_id"], "--project", example_project)
    # Another process revoked it: this API process forgets the verified key once its live
    # configuration sees the revision the revocation bumped (TETHER_LIVE_POLL_S; api/key_cache.py).
    wait_until(
        lambda: idle.get("/v1/runs", headers=bearer(key)).status_code == 401,
        message="the revoked key is refused",
    )
    problem(idle.get("/v1/runs", headers=bearer(key)), 401)
    problem(idle.get("/v1/runs", headers={"X-API-Key": key}), 401)


def test_health_endpoints_need_no_key(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "checks": {}}
    assert client.get("/readyz").status_code in (200, 503)  # answered, not refused (see readiness tests)
    assert client.get("/openapi.json").status_code == 200


def test_missing_scope_is_403(client: TestClient) -> None:
    owner = issue("u1", "t1", RW)
    writer = issue("u1", "t1", ("runs:write",))
    reader = issue("u1", "t1", ("runs:read",))
    approver = issue("rev", "t1", ("approvals",))
    run = parked_refund(client, owner)
    decide = f"/v1/runs/{run['run_id']}/approvals/{run['pending_approval']['approval_id']}"

    assert "approvals" in problem(client.get("/v1/approvals", headers=bearer(writer)), 403)
    problem(client.post(decide, json={"decision": "approve"}, headers=bearer(writer)), 403)
    problem(client.post(decide, json={"decision": "approve"}, headers=bearer(reader)), 403)
    assert "runs:write" in problem(
        client.post("/v1/runs", json={"input": STATUS_QUESTION}, headers=bearer(reader)), 403
    )
    problem(client.post(f"/v1/runs/{run['run_id']}/cancel", headers=bearer(reader)), 403)
    problem(client.post("/v1/threads", json={}, headers=bearer(reader)), 403)
    problem(client.get("/v1/runs", headers=bearer(approver)), 403)
    problem(client.post("/v1/runs", json={"input": STATUS_QUESTION}, headers=bearer(approver)), 403)

    after = client.get(f"/v1/runs/{run['run_id']}", headers=bearer(owner)).json()
    assert after["status"] == "waiting_for_approval"  # none of the refused calls changed anything
    assert after["pending_approval"]["status"] == "pending"


@pytest.fixture
def foreign_runs(client: TestClient) -> dict[str, Any]:
    """A finished run and a run parked for approval, both u1's in tenant t1."""
    owner = issue("u1", "t1", RW)
    return {
        "client": client,
        "owner": owner,
        "done": succeeded_run(client, owner),
        "parked": parked_refund(client, owner),
    }


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/runs/{done}", None),
        ("GET", "/v1/runs/{done}/steps", None),
        ("GET", "/v1/runs/{done}/events", None),
        ("POST", "/v1/runs/{done}/feedback", {"score": 1}),
        ("POST", "/v1/runs/{parked}/cancel", None),
        ("POST", "/v1/runs/{parked}/approvals/{approval}", {"decision": "approve"}),
    ],
)
def test_another_tenants_run_is_404(
    foreign_runs: dict[str, Any], method: str, path: str, body: dict[str, Any] | None
) -> None:
    client: TestClient = foreign_runs["client"]
    done, parked = foreign_runs["done"], foreign_runs["parked"]
    url = path.format(
        done=done["run_id"], parked=parked["run_id"], approval=parked["pending_approval"]["approval_id"]
    )
    outsider = issue("u1", "t2", ("admin",))  # same user name, other tenant, every scope

    problem(client.request(method, url, json=body, headers=bearer(outsider)), 404)

    owner = foreign_runs["owner"]
    after = client.get(f"/v1/runs/{parked['run_id']}", headers=bearer(owner)).json()
    assert after["status"] == "waiting_for_approval"
    assert after["pending_approval"]["status"] == "pending"
    listed = client.get("/v1/runs", headers=bearer(outsider)).json()
    assert listed == {"runs": [], "next_cursor": None}
    assert client.get("/v1/approvals", headers=bearer(outsider)).json() == []


def test_writers_see_only_their_own_runs_readers_see_the_tenants(idle: TestClient) -> None:
    u1 = issue("u1", "t1", ("runs:write",))
    u2 = issue("u2", "t1", ("runs:write",))
    mine = create(idle, u1)
    theirs = create(idle, u2)
    elsewhere = create(idle, issue("u1", "t2", ("runs:write",)))

    listed = idle.get("/v1/runs", headers=bearer(u1)).json()["runs"]
    assert [r["run_id"] for r in listed] == [mine["run_id"]]
    assert idle.get(f"/v1/runs/{mine['run_id']}", headers=bearer(u1)).status_code == 200
    problem(idle.get(f"/v1/runs/{theirs['run_id']}", headers=bearer(u1)), 404)
    problem(idle.get(f"/v1/runs/{theirs['run_id']}/steps", headers=bearer(u1)), 404)
    problem(idle.post(f"/v1/runs/{theirs['run_id']}/cancel", headers=bearer(u1)), 404)
    problem(idle.post(f"/v1/runs/{theirs['run_id']}/feedback", json={"score": 1}, headers=bearer(u1)), 404)
    assert "runs:read" in problem(idle.get("/v1/runs", params={"user": "u2"}, headers=bearer(u1)), 403)
    own = idle.get("/v1/runs", params={"user": "u1"}, headers=bearer(u1)).json()["runs"]
    assert [r["run_id"] for r in own] == [mine["run_id"]]

    for scopes in (("runs:read",), ("admin",)):
        reader = issue("boss", "t1", scopes)
        seen = {r["run_id"] for r in idle.get("/v1/runs", headers=bearer(reader)).json()["runs"]}
        assert seen == {mine["run_id"], theirs["run_id"]}, scopes
        assert idle.get(f"/v1/runs/{theirs['run_id']}", headers=bearer(reader)).status_code == 200
        problem(idle.get(f"/v1/runs/{elsewhere['run_id']}", headers=bearer(reader)), 404)
        only_u2 = idle.get("/v1/runs", params={"user": "u2"}, headers=bearer(reader)).json()["runs"]
        assert [r["run_id"] for r in only_u2] == [theirs["run_id"]]


def test_admin_scope_implies_every_other(client: TestClient) -> None:
    admin = issue("ops", "t1", ("admin",))
    run = create(client, admin, wait=30)
    assert run["user_id"] == "ops" and run["tenant_id"] == "t1"
    assert client.get("/v1/approvals", headers=bearer(admin)).status_code == 200
    assert client.get(f"/v1/runs/{run['run_id']}/steps", headers=bearer(admin)).status_code == 200
    assert client.post("/v1/threads", json={}, headers=bearer(admin)).status_code == 201
    assert client.get("/v1/releases", headers=bearer(admin)).status_code == 200

    parked = parked_refund(client, issue("u1", "t1", RW))
    approval = parked["pending_approval"]["approval_id"]
    decided = client.post(
        f"/v1/runs/{parked['run_id']}/approvals/{approval}",
        json={"decision": "approve"},
        headers=bearer(admin),
    )
    assert decided.status_code == 200, decided.text
    assert decided.json()["decided_by"] == "ops"


# --------------------------------------------------------------------------- 2. runs


def test_create_run_answers_202_with_the_queued_record(idle: TestClient) -> None:
    key = issue("u1", "t1", RW)
    response = idle.post(
        "/v1/runs", json={"input": STATUS_QUESTION, "metadata": {"ticket": "T-1"}}, headers=bearer(key)
    )
    assert response.status_code == 202, response.text
    run = response.json()
    assert run["run_id"].startswith("run_")
    assert run["status"] == "queued"
    assert run["release_version"].startswith("support-agent-wc-")
    assert (run["user_id"], run["tenant_id"], run["input"]) == ("u1", "t1", STATUS_QUESTION)
    assert run["thread_id"] and run["metadata"] == {"ticket": "T-1"}
    assert run["output"] is None and run["error"] is None and run["pending_approval"] is None
    assert run["steps_used"] == 0 and run["started_at"] is None and run["finished_at"] is None
    assert datetime.fromisoformat(run["created_at"]).tzinfo is not None

    fetched = idle.get(f"/v1/runs/{run['run_id']}", headers=bearer(key))
    assert fetched.status_code == 200 and fetched.json() == run
    assert idle.get(f"/v1/runs/{run['run_id']}/steps", headers=bearer(key)).json() == []


def test_the_embedded_worker_is_woken_by_a_new_run_and_by_a_decision(
    example_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An idle worker polls only every 10 minutes here: the runs below finish within `wait` only because
    # accepting a run and deciding an approval wake it.
    monkeypatch.setenv("TETHER_WORKER_POLL_S", "600")
    with serve(example_project, workers=1) as client:
        key, reviewer = issue("u1", "t1", RW), issue("rev", "t1", ("approvals",))
        # The worker is up (it starts its first look at the empty queue before its first heartbeat).
        wait_until(lambda: client.get("/readyz").status_code == 200, message="the worker is up")
        succeeded_run(client, key)
        parked = parked_refund(client, key)
        approval = parked["pending_approval"]["approval_id"]
        decided = client.post(
            f"/v1/runs/{parked['run_id']}/approvals/{approval}",
            json={"decision": "approve", "reason": "receipt checked"},
            headers=bearer(reviewer),
        )
        assert decided.status_code == 200, decided.text
        wait_until(
            lambda: (
                client.get(f"/v1/runs/{parked['run_id']}", headers=bearer(key)).json()["status"]
                == "succeeded"
            ),
            message="the approved run finishes",
        )


def test_create_run_with_wait_answers_200_with_the_finished_run(client: TestClient) -> None:
    key = issue("u1", "t1", RW)
    run = succeeded_run(client, key)
    assert TRACKING in run["output"]
    assert run["tools_called"] == ["lookup_order"]
    assert run["steps_used"] == 3 and run["input_tokens"] > 0 and run["estimated_cost_usd"] > 0
    assert run["started_at"] and run["finished_at"]
    assert client.get(f"/v1/runs/{run['run_id']}", headers=bearer(key)).json() == run

    steps = client.get(f"/v1/runs/{run['run_id']}/steps", headers=bearer(key))
    assert steps.status_code == 200
    assert [(s["index"], s["kind"], s["name"]) for s in steps.json()] == [
        (0, "model_call", "scripted:support-v1"),
        (1, "tool_call", "lookup_order"),
        (2, "model_call", "scripted:support-v1"),
    ]
    assert all(s["status"] == "succeeded" and s["run_id"] == run["run_id"] for s in steps.json())
    assert TRACKING in steps.json()[1]["result"]


def test_another_customers_order_stays_private_over_http(client: TestClient) -> None:
    run = succeeded_run(client, issue("u2", "t1", RW))
    assert TRACKING not in run["output"]


def test_list_filters_by_status_release_user_and_since(client: TestClient) -> None:
    u1, u2 = issue("u1", "t1", RW), issue("u2", "t1", RW)
    first = succeeded_run(client, u1)
    parked = parked_refund(client, u1)
    other = succeeded_run(client, u2)

    def ids(**params: Any) -> list[str]:
        response = client.get("/v1/runs", params=params, headers=bearer(u1))
        assert response.status_code == 200, response.text
        return [r["run_id"] for r in response.json()["runs"]]

    everything = [other["run_id"], parked["run_id"], first["run_id"]]  # newest first
    assert ids() == everything
    assert ids(status="succeeded") == [other["run_id"], first["run_id"]]
    assert ids(status="waiting_for_approval") == [parked["run_id"]]
    assert ids(status="queued") == []
    assert ids(release=first["release_version"]) == everything
    assert ids(release="support-agent-v999") == []
    assert ids(user="u2") == [other["run_id"]]
    assert ids(user="u1", status="succeeded") == [first["run_id"]]

    created = datetime.fromisoformat(parked["created_at"])
    in_tokyo = created.astimezone(timezone(timedelta(hours=9))).isoformat()
    in_new_york = created.astimezone(timezone(timedelta(hours=-5))).isoformat()
    assert ids(since=in_tokyo) == [other["run_id"], parked["run_id"]]
    assert ids(since=in_new_york) == [other["run_id"], parked["run_id"]]
    assert ids(since=parked["created_at"].replace("+00:00", "Z")) == [other["run_id"], parked["run_id"]]
    later = (datetime.fromisoformat(other["created_at"]) + timedelta(seconds=1)).isoformat()
    assert ids(since=later) == []


def test_cursor_pagination_returns_every_run_exactly_once(idle: TestClient) -> None:
    key = issue("u1", "t1", RW)
    created = [create(idle, key, f"Where is my order 1234{i}?")["run_id"] for i in range(5)]

    seen: list[str] = []
    sizes: list[int] = []
    cursor: str | None = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = idle.get("/v1/runs", params=params, headers=bearer(key))
        assert page.status_code == 200, page.text
        body = page.json()
        seen += [r["run_id"] for r in body["runs"]]
        sizes.append(len(body["runs"]))
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert sizes == [2, 2, 1]
    assert seen == created[::-1]  # newest first, each exactly once

    whole = idle.get("/v1/runs", params={"limit": 5}, headers=bearer(key)).json()
    assert whole["next_cursor"] is None and len(whole["runs"]) == 5


def test_cancelling_a_queued_run_means_it_never_starts(example_project: Path) -> None:
    with serve(example_project, workers=0) as idle:
        key = issue("u1", "t1", RW)
        queued = create(idle, key)
        assert queued["status"] == "queued"
        cancelled = idle.post(f"/v1/runs/{queued['run_id']}/cancel", headers=bearer(key))
        assert cancelled.status_code == 202, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        problem(idle.post(f"/v1/runs/{queued['run_id']}/cancel", headers=bearer(key)), 409)

    with serve(example_project, workers=2) as client:  # now a worker serves the same database
        later = succeeded_run(client, key)  # proves the queue is being worked
        run = client.get(f"/v1/runs/{queued['run_id']}", headers=bearer(key)).json()
        assert run["status"] == "cancelled"
        assert run["started_at"] is None and run["steps_used"] == 0 and run["output"] is None
        assert client.get(f"/v1/runs/{queued['run_id']}/steps", headers=bearer(key)).json() == []
        assert later["run_id"] != queued["run_id"]


def test_cancelling_a_finished_run_is_409(client: TestClient) -> None:
    key = issue("u1", "t1", RW)
    run = succeeded_run(client, key)
    assert "already ended" in problem(
        client.post(f"/v1/runs/{run['run_id']}/cancel", headers=bearer(key)), 409
    )
    assert client.get(f"/v1/runs/{run['run_id']}", headers=bearer(key)).json()["status"] == "succeeded"


def test_cancelling_a_run_waiting_for_approval_withdraws_the_approval(client: TestClient) -> None:
    key, reviewer = issue("u1", "t1", RW), issue("rev", "t1", ("approvals", "runs:read"))
    run = parked_refund(client, key)
    cancelled = client.post(f"/v1/runs/{run['run_id']}/cancel", headers=bearer(key))
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
    assert client.get("/v1/approvals", headers=bearer(reviewer)).json() == []
    approval = run["pending_approval"]["approval_id"]
    problem(
        client.post(
            f"/v1/runs/{run['run_id']}/approvals/{approval}",
            json={"decision": "approve"},
            headers=bearer(reviewer),
        ),
        409,
    )


# --------------------------------------------------------------------------- 3. approvals


def test_refund_waits_for_approval_and_resumes_when_approved(client: TestClient) -> None:
    key, reviewer = issue("u1", "t1", RW), issue("rev", "t1", ("approvals", "runs:read"))
    run = parked_refund(client, key)
    pending = run["pending_approval"]
    assert pending["tool"] == "issue_refund" and pending["status"] == "pending"
    assert pending["arguments"]["order_id"] == "12346" and pending["run_id"] == run["run_id"]
    assert "issue_refund" not in run["tools_called"]

    inbox = client.get("/v1/approvals", headers=bearer(reviewer))
    assert inbox.status_code == 200
    assert [a["approval_id"] for a in inbox.json()] == [pending["approval_id"]]

    url = f"/v1/runs/{run['run_id']}/approvals/{pending['approval_id']}"
    decided = client.post(url, json={"decision": "approve", "reason": "looks fine"}, headers=bearer(reviewer))
    assert decided.status_code == 200, decided.text
    assert decided.json()["status"] == "approved" and decided.json()["decided_by"] == "rev"

    done = finished(client, key, run["run_id"])
    assert done["status"] == "succeeded"
    assert "issue_refund" in done["tools_called"]
    assert "refund" in done["output"] and "12346" in done["output"]
    assert done["pending_approval"] is None

    assert "already decided" in problem(
        client.post(url, json={"decision": "reject", "reason": "too late"}, headers=bearer(reviewer)), 409
    )
    assert client.get("/v1/approvals", headers=bearer(reviewer)).json() == []


def test_rejected_refund_ends_with_an_answer_that_gives_the_reason(client: TestClient) -> None:
    key, reviewer = issue("u1", "t1", RW), issue("rev", "t1", ("approvals", "runs:read"))
    run = parked_refund(client, key)
    url = f"/v1/runs/{run['run_id']}/approvals/{run['pending_approval']['approval_id']}"
    reason = "the item was a final-sale clearance purchase"
    for silent in ({"decision": "reject"}, {"decision": "reject", "reason": "  "}):  # one rule: say why
        assert "needs a reason" in problem(client.post(url, json=silent, headers=bearer(reviewer)), 422)
    decided = client.post(url, json={"decision": "reject", "reason": reason}, headers=bearer(reviewer))
    assert decided.status_code == 200, decided.text
    assert decided.json()["status"] == "rejected" and decided.json()["decision_reason"] == reason

    done = finished(client, key, run["run_id"])
    assert done["status"] in FINAL and done["status"] != "failed"
    assert reason in done["output"]
    assert "declined" in done["output"]
    problem(client.post(url, json={"decision": "approve"}, headers=bearer(reviewer)), 409)


def test_unknown_or_mismatched_approval_id_is_404(client: TestClient) -> None:
    key, reviewer = issue("u1", "t1", RW), issue("rev", "t1", ("approvals", "runs:read"))
    run = parked_refund(client, key)
    other = parked_refund(client, key)
    approval = run["pending_approval"]["approval_id"]

    problem(
        client.post(
            f"/v1/runs/{run['run_id']}/approvals/apr_nope",
            json={"decision": "approve"},
            headers=bearer(reviewer),
        ),
        404,
    )
    problem(  # an approval of another run
        client.post(
            f"/v1/runs/{other['run_id']}/approvals/{approval}",
            json={"decision": "approve"},
            headers=bearer(reviewer),
        ),
        404,
    )
    problem(
        client.post(
            f"/v1/runs/run_nope/approvals/{approval}", json={"decision": "approve"}, headers=bearer(reviewer)
        ),
        404,
    )
    assert (
        client.get(f"/v1/runs/{run['run_id']}", headers=bearer(key)).json()["status"]
        == "waiting_for_approval"
    )


def test_a_reviewer_with_only_the_approvals_scope_can_decide_what_their_inbox_lists(
    client: TestClient,
) -> None:
    """GET /v1/approvals shows every pending approval of the tenant to an `approvals` key, so the
    decision endpoint must accept that same key for those approvals (it is the reviewer's job)."""
    key, reviewer = issue("u1", "t1", RW), issue("rev", "t1", ("approvals",))
    run = parked_refund(client, key)
    inbox = client.get("/v1/approvals", headers=bearer(reviewer)).json()
    assert [a["approval_id"] for a in inbox] == [run["pending_approval"]["approval_id"]]

    decided = client.post(
        f"/v1/runs/{run['run_id']}/approvals/{inbox[0]['approval_id']}",
        json={"decision": "approve"},
        headers=bearer(reviewer),
    )
    assert decided.status_code == 200, decided.text
    assert finished(client, key, run["run_id"])["status"] == "succeeded"


# --------------------------------------------------------------------------- 4. server-sent events


def test_event_stream_replays_a_finished_run_and_ends(client: TestClient) -> None:
    key = issue("u1", "t1", RW)
    run = succeeded_run(client, key)
    status, content_type, body = read_stream(client, key, run["run_id"])
    assert status == 200 and content_type.startswith("text/event-stream")

    events = parse_sse(body)
    ids = [e["id"] for e in events]
    assert ids == list(range(1, len(ids) + 1))  # increasing, none missing
    kinds = [e["event"] for e in events]
    assert {"status", "step_started", "step_finished", "final_output"} <= set(kinds)
    assert events[0] == {"id": 1, "event": "status", "data": {"status": "queued"}}
    assert kinds.count("step_started") == kinds.count("step_finished") == 3
    final_output = next(e for e in events if e["event"] == "final_output")
    assert TRACKING in final_output["data"]["output"]
    assert events[-1]["event"] == "status" and events[-1]["data"]["status"] == "succeeded"


def test_event_stream_follows_a_live_run_to_its_end(client: TestClient) -> None:
    key = issue("u1", "t1", RW)
    run = create(client, key)  # no wait: the stream opens while the run is queued or running
    status, _, body = read_stream(client, key, run["run_id"])
    assert status == 200
    events = parse_sse(body)
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["event"] == "status" and events[-1]["data"]["status"] == "succeeded"
    assert any(e["event"] == "final_output" and TRACKING in e["data"]["output"] for e in events)


def test_event_stream_resumes_after_last_event_id(client: TestClient) -> None:
    key = issue("u1", "t1", RW)
    run = succeeded_run(client, key)
    everything = parse_sse(read_stream(client, key, run["run_id"])[2])
    assert len(everything) > 6

    _, _, body = read_stream(client, key, run["run_id"], headers={"Last-Event-ID": "5"})
    resumed = parse_sse(body)
    assert resumed == [e for e in everything if e["id"] > 5]

    _, _, body = read_stream(client, key, run["run_id"], after=5)
    assert parse_sse(body) == resumed

    last = everything[-1]["id"]
    status, _, body = read_stream(client, key, run["run_id"], headers={"Last-Event-ID": str(last)})
    assert status == 200 and parse_sse(body) == []


def test_event_stream_includes_approval_and_feedback_events(client: TestClient) -> None:
    key, reviewer = issue("u1", "t1", RW), issue("rev", "t1", ("approvals", "runs:read"))
    run = parked_refund(client, key)
    url = f"/v1/runs/{run['run_id']}/approvals/{run['pending_approval']['approval_id']}"
    assert client.post(url, json={"decision": "approve"}, headers=bearer(reviewer)).status_code == 200
    finished(client, key, run["run_id"])
    assert (
        client.post(f"/v1/runs/{run['run_id']}/feedback", json={"score": 1}, headers=bearer(key)).status_code
        == 201
    )

    kinds = [e["event"] for e in parse_sse(read_stream(client, key, run["run_id"])[2])]
    assert kinds.index("approval_requested") < kinds.index("approval_decided") < kinds.index("final_output")
    assert "feedback" in kinds


@pytest.mark.parametrize("last_event_id", [b"abc", b"-1", b"1.5", b"\xb2"])
def test_a_non_numeric_last_event_id_is_400(client: TestClient, last_event_id: bytes) -> None:
    key = issue("u1", "t1", RW)
    run = succeeded_run(client, key)
    response = client.get(
        f"/v1/runs/{run['run_id']}/events", headers={**bearer(key), "Last-Event-ID": last_event_id}
    )
    problem(response, 400)


def test_events_of_an_unknown_run_are_404(client: TestClient) -> None:
    key = issue("u1", "t1", RW)
    problem(client.get("/v1/runs/run_nope/events", headers=bearer(key)), 404)


@pytest.mark.parametrize(
    ("headers", "params"),
    [({"Last-Event-ID": "9" * 20}, {}), ({}, {"after": 10**20})],
    ids=["last-event-id", "after"],
)
def test_a_resume_point_beyond_any_event_id_never_breaks_the_stream(
    example_project: Path, headers: dict[str, str], params: dict[str, Any]
) -> None:
    """Either refused as a client error or answered with an empty stream, never a server error
    (the id is bound into the database query, where SQLite and PostgreSQL stop at 2**63 - 1)."""
    with serve(example_project, raise_errors=True) as client:
        key = issue("u1", "t1", RW)
        run = succeeded_run(client, key)
        response = client.get(
            f"/v1/runs/{run['run_id']}/events", headers={**bearer(key), **headers}, params=params
        )
        if response.status_code == 200:
            assert parse_sse(response.text) == []
        else:
            assert 400 <= response.status_code < 500
            problem(response, response.status_code)


# --------------------------------------------------------------------------- 5. feedback, threads, releases


def test_feedback_thumbs_up_and_down(client: TestClient) -> None:
    key = issue("u1", "t1", RW)
    run = succeeded_run(client, key)
    url = f"/v1/runs/{run['run_id']}/feedback"

    up = client.post(url, json={"score": 1}, headers=bearer(key))
    assert up.status_code == 201, up.text
    assert up.json()["score"] == 1 and up.json()["run_id"] == run["run_id"] and up.json()["comment"] is None
    down = client.post(url, json={"score": -1, "comment": "too slow"}, headers=bearer(key))
    assert down.status_code == 201
    assert down.json()["score"] == -1 and down.json()["comment"] == "too slow"
    assert down.json()["feedback_id"] != up.json()["feedback_id"]

    for bad in (
        {"score": 0},
        {"score": 2},
        {"score": "1"},
        {},
        {"score": 1, "stars": 5},
        {"score": 1, "comment": "x" * 4001},
    ):
        problem(client.post(url, json=bad, headers=bearer(key)), 422)
    problem(client.post("/v1/runs/run_nope/feedback", json={"score": 1}, headers=bearer(key)), 404)


def test_threads_carry_the_conversation_and_belong_to_their_user(client: TestClient) -> None:
    u1 = issue("u1", "t1", RW)
    made = client.post("/v1/threads", json={}, headers=bearer(u1))
    assert made.status_code == 201, made.text
    assert made.json()["thread_id"].startswith("thr_") and made.json()["user_id"] == "u1"

    named = client.post("/v1/threads", json={"thread_id": "conv-1"}, headers=bearer(u1))
    assert named.status_code == 201 and named.json()["thread_id"] == "conv-1"
    problem(client.post("/v1/threads", json={"thread_id": "conv-1"}, headers=bearer(u1)), 409)
    problem(client.post("/v1/threads", json={"thread_id": "has space"}, headers=bearer(u1)), 422)
    listed = {t["thread_id"] for t in client.get("/v1/threads", headers=bearer(u1)).json()}
    assert {"conv-1", made.json()["thread_id"]} <= listed

    first = succeeded_run(client, u1, STATUS_QUESTION, thread_id="conv-1")
    assert first["thread_id"] == "conv-1"
    follow_up = succeeded_run(client, u1, "When will it arrive?", thread_id="conv-1")
    assert follow_up["thread_id"] == "conv-1"
    assert follow_up["tools_called"] == ["lookup_order"]
    assert TRACKING in follow_up["output"]

    fresh = succeeded_run(client, u1, "When will it arrive?", thread_id=made.json()["thread_id"])
    assert fresh["tools_called"] == []  # without the earlier turn there is no order to look up

    for stranger in (issue("u2", "t1", RW), issue("u1", "t2", RW)):
        response = client.post(
            "/v1/runs",
            json={"input": "When will it arrive?", "thread_id": "conv-1"},
            headers=bearer(stranger),
        )
        assert "conv-1" in problem(response, 404)
    ids = [
        r["run_id"] for r in client.get("/v1/runs", params={"user": "u2"}, headers=bearer(u1)).json()["runs"]
    ]
    assert ids == []


def test_a_run_on_a_new_thread_id_creates_that_thread(client: TestClient) -> None:
    key = issue("u1", "t1", RW)
    run = succeeded_run(client, key, thread_id="brand-new")
    assert run["thread_id"] == "brand-new"
    assert "brand-new" in {t["thread_id"] for t in client.get("/v1/threads", headers=bearer(key)).json()}


def test_releases_show_the_one_serving_new_runs(client: TestClient) -> None:
    key = issue("u1", "t1", RW)
    run = create(client, key)
    response = client.get("/v1/releases", headers=bearer(key))
    assert response.status_code == 200
    serving = [r for r in response.json() if r["serving"]]
    assert len(serving) == 1
    assert serving[0]["version"] == run["release_version"]
    assert serving[0]["model"] == "scripted:support-v1"
    assert len(serving[0]["content_hash"]) == 64


# --------------------------------------------------------------------------- 6. readiness


def test_ready_with_a_live_worker(client: TestClient) -> None:
    # The worker's first heartbeat lands just after startup.
    wait_until(lambda: client.get("/readyz").status_code == 200, message="/readyz answers 200")
    response = client.get("/readyz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"] == "ok" and body["checks"]["migrations"] == "current"
    assert int(body["checks"]["workers"]) >= 1


def test_not_ready_without_a_worker_heartbeat(idle: TestClient) -> None:
    response = idle.get("/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok" and body["checks"]["migrations"] == "current"
    assert "heartbeat" in body["checks"]["workers"]
    assert idle.get("/healthz").status_code == 200  # alive, just not ready


# --------------------------------------------------------------------------- 7. rate limits and budgets


def retry_after(response: httpx.Response) -> int:
    value = response.headers.get("Retry-After")
    assert value is not None and value.isdigit(), f"Retry-After {value!r}"
    assert int(value) >= 1
    return int(value)


def test_requests_per_minute_per_key(example_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TETHER_REQUESTS_PER_MINUTE_PER_KEY", "3")
    with serve(example_project, workers=0) as idle:
        key, other = issue("u1", "t1", RW), issue("u1", "t1", RW)
        for _ in range(3):
            assert idle.get("/v1/runs", headers=bearer(key)).status_code == 200
        refused = idle.get("/v1/runs", headers=bearer(key))
        assert "rate limit" in problem(refused, 429)
        assert retry_after(refused) <= 60
        problem(idle.post("/v1/runs", json={"input": STATUS_QUESTION}, headers=bearer(key)), 429)
        assert idle.get("/v1/runs", headers=bearer(other)).status_code == 200  # per key, not per user
        assert idle.get("/healthz").status_code == 200


def test_new_runs_per_minute_per_user(example_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TETHER_RUNS_PER_MINUTE_PER_USER", "2")
    with serve(example_project, workers=0) as idle:
        key, second_key = issue("u1", "t1", RW), issue("u1", "t1", RW)
        create(idle, key)
        create(idle, key)
        refused = idle.post("/v1/runs", json={"input": STATUS_QUESTION}, headers=bearer(key))
        assert "runs per minute" in problem(refused, 429)
        retry_after(refused)
        problem(idle.post("/v1/runs", json={"input": STATUS_QUESTION}, headers=bearer(second_key)), 429)
        assert idle.get("/v1/runs", headers=bearer(key)).status_code == 200  # reading is not limited
        create(idle, issue("u2", "t1", RW))  # another user has their own allowance
        assert len(idle.get("/v1/runs", headers=bearer(key)).json()["runs"]) == 3


def test_user_daily_budget(example_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TETHER_USER_DAILY_BUDGET_USD", "0.0001")
    with serve(example_project) as client:
        key = issue("u1", "t1", RW)
        spent = succeeded_run(client, key)
        assert spent["estimated_cost_usd"] > 0.0001
        refused = client.post("/v1/runs", json={"input": STATUS_QUESTION}, headers=bearer(key))
        detail = problem(refused, 402)
        assert "daily budget" in detail and "u1" in detail
        retry_after(refused)
        create(client, issue("u2", "t1", RW))  # the budget is per user
        runs = client.get("/v1/runs", params={"user": "u1"}, headers=bearer(key)).json()["runs"]
        assert [r["run_id"] for r in runs] == [spent["run_id"]]


def test_tenant_monthly_budget(example_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TETHER_TENANT_MONTHLY_BUDGET_USD", "0.0001")
    with serve(example_project) as client:
        succeeded_run(client, issue("u1", "t1", RW))
        refused = client.post(
            "/v1/runs", json={"input": STATUS_QUESTION}, headers=bearer(issue("u2", "t1", RW))
        )
        detail = problem(refused, 402)
        assert "monthly budget" in detail and "t1" in detail
        retry_after(refused)
        create(client, issue("u1", "t2", RW))  # another tenant has its own budget


def test_the_per_key_limit_is_shared_across_api_nodes_through_redis(
    example_project: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> None:
    monkeypatch.setenv("TETHER_REDIS_URL", redis_url)
    monkeypatch.setenv("TETHER_REQUESTS_PER_MINUTE_PER_KEY", "3")
    with serve(example_project, workers=0) as one, serve(example_project, workers=0) as two:
        key = issue("u1", "t1", RW)
        assert one.get("/v1/runs", headers=bearer(key)).status_code == 200
        assert two.get("/v1/runs", headers=bearer(key)).status_code == 200
        assert one.get("/v1/runs", headers=bearer(key)).status_code == 200
        refused = two.get("/v1/runs", headers=bearer(key))
        problem(refused, 429)
        retry_after(refused)
        problem(one.get("/v1/runs", headers=bearer(key)), 429)


# --------------------------------------------------------------------------- 8. bad input


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b'{"input": "hi"', 422),  # malformed JSON
        (b"not json at all", 422),
        (b'["input", "hi"]', 422),
        (b'{"input": 5}', 422),
        (b'{"input": null}', 422),
        (b'{"input": ["a"]}', 422),
        (b"{}", 422),
        (b'{"input": "hi", "surprise": 1}', 422),
        (b'{"input": ""}', 422),
        (b'{"input": "   \\n\\t "}', 422),
        (b'{"input": "hi", "wait": 61}', 422),
        (b'{"input": "hi", "wait": -1}', 422),
        (b'{"input": "hi", "wait": "soon"}', 422),
        (b'{"input": "hi", "metadata": [1]}', 422),
        (b'{"input": "hi", "thread_id": "' + b"x" * 41 + b'"}', 422),
    ],
    ids=[
        "truncated-json",
        "not-json",
        "array",
        "input-number",
        "input-null",
        "input-list",
        "missing-input",
        "extra-field",
        "empty-input",
        "blank-input",
        "wait-over-60",
        "wait-negative",
        "wait-string",
        "metadata-list",
        "thread-id-too-long",
    ],
)
def test_bad_run_bodies_are_clean_client_errors(idle: TestClient, body: bytes, status: int) -> None:
    key = issue("u1", "t1", RW)
    response = idle.post(
        "/v1/runs", content=body, headers={**bearer(key), "Content-Type": "application/json"}
    )
    problem(response, status)
    assert idle.get("/v1/runs", headers=bearer(key)).json()["runs"] == []  # nothing was queued


def test_a_nan_wait_is_a_clean_client_error(idle: TestClient) -> None:
    """Python's JSON parser accepts the non-standard NaN; the 422 about it must still be valid JSON."""
    key = issue("u1", "t1", RW)
    body = b'{"input": "hi", "wait": NaN}'
    response = idle.post(
        "/v1/runs", content=body, headers={**bearer(key), "Content-Type": "application/json"}
    )
    problem(response, 422)


def test_input_over_the_character_limit_is_413(
    example_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TETHER_MAX_INPUT_CHARS", "50")
    with serve(example_project, workers=0) as idle:
        key = issue("u1", "t1", RW)
        assert "50" in problem(idle.post("/v1/runs", json={"input": "x" * 51}, headers=bearer(key)), 413)
        assert idle.post("/v1/runs", json={"input": "x" * 50}, headers=bearer(key)).status_code == 202


def test_a_body_over_the_byte_limit_is_413_json(
    example_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TETHER_MAX_BODY_BYTES", "2000")
    with serve(example_project, workers=0) as idle:
        key = issue("u1", "t1", RW)
        response = idle.post("/v1/runs", json={"input": "x" * 5000}, headers=bearer(key))
        assert "content-length" in {name.lower() for name in response.request.headers}
        problem(response, 413)


def test_a_streamed_body_over_the_byte_limit_is_413_json(
    example_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TETHER_MAX_BODY_BYTES", "2000")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must hold while reading
        yield b'{"input": "'
        for _ in range(50):
            yield b"x" * 100
        yield b'"}'

    with serve(example_project, workers=0) as idle:
        key = issue("u1", "t1", RW)
        response = idle.post(
            "/v1/runs", content=chunks(), headers={**bearer(key), "Content-Type": "application/json"}
        )
        problem(response, 413)
        assert idle.get("/v1/runs", headers=bearer(key)).json()["runs"] == []


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/runs/run_nope", None),
        ("GET", "/v1/runs/run_nope/steps", None),
        ("POST", "/v1/runs/run_nope/cancel", None),
        ("POST", "/v1/runs/run_nope/feedback", {"score": 1}),
        ("POST", "/v1/runs/run_nope/approvals/apr_nope", {"decision": "approve"}),
        ("GET", "/v1/runs/" + "x" * 300, None),
    ],
)
def test_unknown_run_ids_are_404(
    idle: TestClient, method: str, path: str, body: dict[str, Any] | None
) -> None:
    admin = issue("ops", "t1", ("admin",))
    assert "no run" in problem(idle.request(method, path, json=body, headers=bearer(admin)), 404)


def _cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"cursor": "not-a-cursor"}, 400),
        ({"cursor": _cursor("2026-01-01T00:00:00|run_x")}, 400),  # no time zone
        ({"cursor": _cursor("yesterday|run_x")}, 400),
        ({"cursor": _cursor("2026-01-01T00:00:00+00:00|")}, 400),
        ({"cursor": "x" * 501}, 422),
        ({"since": "2026-01-01T00:00:00"}, 400),
        ({"since": "yesterday"}, 422),
        ({"limit": 0}, 422),
        ({"limit": 201}, 422),
        ({"limit": "ten"}, 422),
        ({"status": "done"}, 422),
        ({"user": "u" * 201}, 422),
    ],
    ids=[
        "cursor-garbage",
        "cursor-without-zone",
        "cursor-bad-time",
        "cursor-without-run",
        "cursor-too-long",
        "since-without-zone",
        "since-not-a-time",
        "limit-0",
        "limit-201",
        "limit-not-a-number",
        "unknown-status",
        "user-too-long",
    ],
)
def test_bad_list_parameters_are_clean_client_errors(
    idle: TestClient, params: dict[str, Any], status: int
) -> None:
    admin = issue("ops", "t1", ("admin",))
    create(idle, admin)
    problem(idle.get("/v1/runs", params=params, headers=bearer(admin)), status)


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": _cursor("0001-01-01T00:00:00+14:00|run_x")},
        {"cursor": _cursor("9999-12-31T23:59:59-14:00|run_x")},
        {"since": "0001-01-01T00:00:00+14:00"},
        {"since": "9999-12-31T23:59:59-14:00"},
    ],
    ids=["cursor-before-year-1", "cursor-after-year-9999", "since-before-year-1", "since-after-year-9999"],
)
def test_times_that_leave_the_utc_range_are_client_errors(idle: TestClient, params: dict[str, str]) -> None:
    """Valid, zoned timestamps whose UTC equivalent falls outside year 1..9999: a 4xx, not a 500."""
    admin = issue("ops", "t1", ("admin",))
    create(idle, admin)
    response = idle.get("/v1/runs", params=params, headers=bearer(admin))
    assert response.status_code < 500, f"{response.status_code}: {response.text}"
    if response.status_code != 200:
        problem(response, response.status_code)


@pytest.mark.parametrize(
    ("method", "path", "params", "body"),
    [
        ("POST", "/v1/runs", None, b'{"input": "hi \\u0000 there"}'),
        ("POST", "/v1/runs", None, b'{"input": "hi", "thread_id": "a\\u0000b"}'),
        ("POST", "/v1/runs", None, b'{"input": "hi", "metadata": {"x": NaN}}'),
        ("GET", "/v1/runs/run%00x", None, None),
        ("GET", "/v1/runs", {"user": "u\x001"}, None),
    ],
    ids=["nul-in-input", "nul-in-thread-id", "nan-in-metadata", "nul-in-run-id", "nul-in-user-filter"],
)
def test_values_postgresql_cannot_store_are_client_errors(
    example_project: Path,
    postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    path: str,
    params: dict[str, str] | None,
    body: bytes | None,
) -> None:
    """NUL characters (and NaN inside JSON) are fine for SQLite but not for PostgreSQL text/JSON:
    they must be refused as bad input there, not reach the database and come back as a 500."""
    monkeypatch.setenv("TETHER_DATABASE_URL", postgres_url)
    monkeypatch.setenv("TETHER_UI_SESSION_SECRET", "a-shared-secret-for-postgresql-nodes")
    with serve(example_project, workers=0) as idle:
        admin = issue("ops", "t1", ("admin",))
        headers = {**bearer(admin), "Content-Type": "application/json"}
        response = idle.request(method, path, params=params, content=body, headers=headers)
        assert response.status_code < 500, f"{response.status_code}: {response.text}"
        if response.status_code >= 400:
            problem(response, response.status_code)


def test_every_error_body_is_json_with_a_detail(idle: TestClient) -> None:
    """404 for an unknown path and 405 for a wrong method are framework answers; still JSON."""
    key = issue("u1", "t1", RW)
    problem(idle.get("/v1/nowhere", headers=bearer(key)), 404)
    problem(idle.delete("/v1/runs", headers=bearer(key)), 405)
    problem(idle.post("/v1/runs", json={"input": 5}, headers=bearer(key)), 422)
