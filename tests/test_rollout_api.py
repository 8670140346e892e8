"""Rollout through the HTTP API (issue 13 items 1-4, 6 and 9): each run gets its release from the live
deployment and records why; changes need the operator scope and a passing gate or an audited
override; shadow copies never execute a write."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Cli
from fastapi.testclient import TestClient
from test_ui_pages import issue, serve, settled
from timing import wait_until
from ui_helpers import write_shop_project

from tether.rollout.events import RollbackEvent, on_rollback, remove_rollback_hook


@pytest.fixture
def shop(tmp_path: Path, cli: Cli) -> Path:
    project = write_shop_project(tmp_path / "shop")
    cli("release", "create", "--project", project, "--version", "v1")
    (project / "prompts" / "system.md").write_text("You are a concise shop assistant.")
    cli("release", "create", "--project", project, "--version", "v2")
    return project


@pytest.fixture
def keys() -> dict[str, str]:
    return {
        "ops": issue("ops", "default", ["operator", "runs:write", "runs:read"]),
        "user": issue("ana", "default", ["runs:write", "runs:read"]),
    }


@pytest.fixture
def client(shop: Path) -> Iterator[TestClient]:
    with serve(shop) as served:
        yield served


def call(client: TestClient, key: str, method: str, path: str, **body: Any) -> Any:
    headers = {"Authorization": f"Bearer {key}"}
    if method == "GET":
        return client.get(path, headers=headers, params=body)
    return client.post(path, headers=headers, json=body)


def run(client: TestClient, key: str, text: str = "hi there", **extra: Any) -> dict[str, Any]:
    answer = call(client, key, "POST", "/v1/runs", input=text, **extra)
    assert answer.status_code in (200, 202), answer.text
    return dict(answer.json())


def test_without_a_deployment_runs_use_the_served_release(client: TestClient, keys: dict[str, str]) -> None:
    made = run(client, keys["user"])
    assert made["release_version"] == "v2" and made["stage"] is None and made["assignment"] is None
    status = call(client, keys["ops"], "GET", "/v1/rollout").json()
    assert status["revision"] == 0 and status["entries"] == []


def test_changes_need_the_operator_scope_and_a_passing_gate_or_an_audited_override(
    client: TestClient, keys: dict[str, str]
) -> None:
    assert call(client, keys["user"], "POST", "/v1/rollout/switch", release="v1").status_code == 403
    assert call(client, keys["ops"], "POST", "/v1/rollout/switch", release="v9").status_code == 404
    refused = call(client, keys["ops"], "POST", "/v1/rollout/switch", release="v1")
    assert refused.status_code == 409 and "gate" in refused.json()["detail"]
    no_reason = call(client, keys["ops"], "POST", "/v1/rollout/switch", release="v1", override=True)
    assert no_reason.status_code == 409 and "reason" in no_reason.json()["detail"]
    switched = call(
        client, keys["ops"], "POST", "/v1/rollout/switch", release="v1", override=True, reason="hotfix"
    )
    assert switched.status_code == 200, switched.text
    assert switched.json()["revision"] == 1
    made = run(client, keys["user"])
    assert made["release_version"] == "v1" and made["stage"] == "live"
    assert made["assignment"]["revision"] == 1 and 0 <= made["assignment"]["bucket"] < 10_000
    history = call(client, keys["ops"], "GET", "/v1/rollout").json()["history"]
    assert history[0]["override"] is True and history[0]["reason"] == "hotfix"
    assert history[0]["actor"].startswith("ops")


def test_a_canary_takes_its_share_pause_holds_it_and_pins_need_the_operator(
    client: TestClient, keys: dict[str, str]
) -> None:
    ops, user = keys["ops"], keys["user"]
    call(client, ops, "POST", "/v1/rollout/switch", release="v1", override=True, reason="start")
    started = call(
        client, ops, "POST", "/v1/rollout/start", release="v2", steps=[100], override=True, reason="try v2"
    )
    assert started.status_code == 200, started.text
    assert {e["version"]: e["weight"] for e in started.json()["entries"]} == {"v1": 0.0, "v2": 100.0}
    made = run(client, user)
    assert made["release_version"] == "v2" and made["stage"] == "canary"
    call(client, ops, "POST", "/v1/rollout/pause", reason="hold")
    assert run(client, user)["release_version"] == "v1"  # weight 0 at once, no restart
    assert call(client, user, "POST", "/v1/runs", input="hi", release="v2").status_code == 403
    assert call(client, ops, "POST", "/v1/runs", input="hi", release="nope").status_code == 404
    pinned = run(client, ops, release="v2")
    assert pinned["stage"] == "pin" and pinned["release_version"] == "v2"
    assert pinned["assignment"]["pinned_by"].startswith("ops")
    promoted = call(client, ops, "POST", "/v1/rollout/promote", reason="looks good").json()
    assert promoted["canary"] is None and promoted["previous_live"] is not None
    assert run(client, user)["stage"] == "live"


def test_shadow_copies_skip_writes_and_never_reach_the_user(client: TestClient, keys: dict[str, str]) -> None:
    ops, user = keys["ops"], keys["user"]
    call(client, ops, "POST", "/v1/rollout/switch", release="v2", override=True, reason="start")
    shadow = call(client, ops, "POST", "/v1/rollout/start", release="v1", stage="shadow", share=1.0)
    assert shadow.status_code == 200, shadow.text
    live = run(client, user, "refund 77")
    settled(client, user, live["run_id"], {"waiting_for_approval"})  # the live run asks a human

    def shadow_run() -> dict[str, Any] | None:
        runs = call(client, ops, "GET", "/v1/runs", origin="shadow").json()["runs"]
        done = [r for r in runs if r["metadata"].get("shadow_of") == live["run_id"] and r["finished_at"]]
        return done[0] if done else None

    copy = wait_until(shadow_run, message="the shadow copy finishes")
    assert copy["release_version"] == "v1" and copy["status"] == "succeeded"
    steps = call(client, ops, "GET", f"/v1/runs/{copy['run_id']}/steps").json()
    refund = next(s for s in steps if s["name"] == "issue_refund")
    assert refund["result"].startswith("not executed in shadow")
    assert refund["attempts"] == 0  # no user code ran
    production = call(client, ops, "GET", "/v1/runs").json()["runs"]
    assert copy["run_id"] not in {r["run_id"] for r in production}
    report = call(client, ops, "GET", "/v1/rollout/report").json()
    assert report["candidate"] == "v1" and report["shadow_writes_skipped"] == 1
    assert {m["name"] for m in report["measures"]} >= {"latency_p95_ms", "cost_per_run_usd", "escalated_rate"}


def test_rollback_returns_to_the_previous_live_release_and_tells_subscribers(
    client: TestClient, keys: dict[str, str]
) -> None:
    ops = keys["ops"]
    heard: list[RollbackEvent] = []

    async def listen(event: RollbackEvent) -> None:
        heard.append(event)

    on_rollback(listen)
    try:
        call(client, ops, "POST", "/v1/rollout/switch", release="v1", override=True, reason="one")
        call(client, ops, "POST", "/v1/rollout/switch", release="v2", override=True, reason="two")
        back = call(client, ops, "POST", "/v1/rollout/rollback", reason="v2 is slow")
        assert back.status_code == 200, back.text
        live = [e["version"] for e in back.json()["entries"] if e["stage"] == "live"]
        assert live == ["v1"]
    finally:
        remove_rollback_hook(listen)
    assert [(e.from_release, e.to_release, e.reason) for e in heard] == [("v2", "v1", "v2 is slow")]
    assert run(client, keys["user"])["release_version"] == "v1"
