"""Trace search over the API and the CLI: every filter, combined, tenant-scoped."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import Cli, ProjectFactory
from fastapi.testclient import TestClient
from observe_agent import POLICY, PRICES, TOOLS

from tether.api.app import ServiceOptions, create_app
from tether.api.auth import issue_key
from tether.observe.metrics import Metrics
from tether.observe.observer import TelemetryObserver
from tether.observe.tracing import Tracing
from tether.rollout.releases import create_release
from tether.settings import Settings
from tether.store.records import (
    ReleaseRecord,
    RunOrigin,
    RunRecord,
    RunStatus,
    RunTotals,
    StepDraft,
    StepKind,
    StepOutcome,
    StepStatus,
)
from tether.store.repository import Store


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC) - timedelta(hours=3)

    def __call__(self) -> datetime:
        return self.now


async def record_run(
    store: Store,
    release: ReleaseRecord,
    *,
    user: str = "u1",
    tenant: str = "t1",
    tools: tuple[tuple[str, bool], ...] = (),
    status: RunStatus = RunStatus.SUCCEEDED,
    error: str | None = None,
    cost: float = 0.001,
    clock: Clock,
    seconds: float = 1.0,
) -> RunRecord:
    """A run written through the store's own calls: claimed, its tool steps, finished."""
    run = await store.create_run(
        origin=RunOrigin.API, release=release, user_id=user, input="task", tenant_id=tenant
    )
    await store.claim_run("w", 60, run_id=run.id)
    totals = RunTotals(estimated_cost_usd=cost)
    for index, (tool, ok) in enumerate(tools):
        await store.begin_step(run.id, "w", 60, StepDraft(index=index, kind=StepKind.TOOL_CALL, name=tool))
        outcome = StepOutcome(
            status=StepStatus.SUCCEEDED if ok else StepStatus.FAILED, error=None if ok else "x"
        )
        totals.tools_called.append(tool)
        await store.finish_step(run.id, "w", 60, index, outcome, totals)
    clock.now += timedelta(seconds=seconds)
    finished = await store.finish_run(run.id, "w", 60, status=status, totals=totals, error=error)
    clock.now += timedelta(seconds=1)
    return finished


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_search_runs_by_every_filter_over_the_api_and_the_cli(
    cli: Cli, make_project: ProjectFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    project: Path = make_project(tools=TOOLS, policy=POLICY, name="obs-agent", extra=PRICES)
    url = os.environ["TETHER_DATABASE_URL"]
    clock = Clock()

    async def seed() -> dict[str, Any]:
        store = await Store.open(url, clock=clock)
        try:
            v3 = (await create_release(store, project, version="v3")).release
            (project / "prompts" / "system.md").write_text("You are a changed agent.")
            v4 = (await create_release(store, project, version="v4")).release
            ids: dict[str, Any] = {}
            ids["old_fail"] = await record_run(
                store,
                v3,
                tools=(("refund", True),),
                status=RunStatus.FAILED,
                error="model call failed: 503",
                clock=clock,
            )
            clock.now += timedelta(hours=2, minutes=30)  # everything below is "in the last hour"
            ids["fail_refund"] = await record_run(
                store,
                v3,
                tools=(("lookup", True), ("refund", False)),
                status=RunStatus.FAILED,
                error="model call failed: timeout",
                clock=clock,
                seconds=8,
                cost=0.02,
            )
            ids["fail_other"] = await record_run(
                store,
                v3,
                tools=(("lookup", True),),
                status=RunStatus.FAILED,
                error="internal error: bug",
                clock=clock,
            )
            ids["ok_refund_v3"] = await record_run(
                store, v3, tools=(("refund", True),), clock=clock, user="u2"
            )
            ids["fail_refund_v4"] = await record_run(
                store,
                v4,
                tools=(("refund", True),),
                status=RunStatus.FAILED,
                error="model call failed: x",
                clock=clock,
            )
            ids["budget"] = await record_run(
                store,
                v4,
                status=RunStatus.BUDGET_EXHAUSTED,
                error="budget exhausted: steps",
                clock=clock,
                cost=0.3,
            )
            ids["other_tenant"] = await record_run(
                store,
                v3,
                tools=(("refund", True),),
                status=RunStatus.FAILED,
                error="model call failed: y",
                clock=clock,
                tenant="t2",
            )
            thread = await store.create_thread("u1", tenant_id="t1")
            threaded = await store.create_run(
                origin=RunOrigin.API, release=v4, user_id="u1", input="t", thread_id=thread.id, tenant_id="t1"
            )
            ids["thread"] = thread.id
            ids["threaded"] = threaded
            await store.add_feedback(ids["ok_refund_v3"].id, user_id="u2", score=-1, comment=None)
            # A guardrail blocked something in the budget run (recorded through the observer's hook).
            claimed = await store.claim_run("w", 60, run_id=threaded.id)
            assert claimed is not None
            observation = TelemetryObserver(store, tracing=Tracing(), metrics=Metrics()).start(claimed, v4)
            observation.guardrail(name="pii", stage="output", decision="block")
            await observation.close(claimed)
            _, ids["reader"] = await issue_key(store, user_id="ops", tenant_id="t1", scopes=["runs:read"])
            _, ids["own"] = await issue_key(store, user_id="u2", tenant_id="t1", scopes=["runs:write"])
            return ids
        finally:
            await store.close()

    ids = asyncio.run(seed())
    app = create_app(ServiceOptions(project=project, release="v4", settings=Settings()))
    with TestClient(app) as client:

        def search(query: str, key: str = ids["reader"]) -> list[str]:
            response = client.get(f"/v1/traces?{query}", headers=bearer(key))
            assert response.status_code == 200, response.text
            return [t["run_id"] for t in response.json()["traces"]]

        def name(*keys: str) -> list[str]:
            return [ids[k].id for k in keys]

        # The headline query, in one request.
        assert search("release=v3&status=failed&tool=refund&last=1h") == name("fail_refund")
        assert search("release=v3&status=failed&tool=refund") == name("fail_refund", "old_fail")
        assert search("error_type=model_error") == name("fail_refund_v4", "fail_refund", "old_fail")
        assert search("error_type=internal_error") == name("fail_other")
        assert search("error_type=budget_exhausted") == name("budget")
        assert search("tool_failed=true") == name("fail_refund")
        assert search("user=u2") == name("ok_refund_v3")
        assert search(f"thread={ids['thread']}") == [ids["threaded"].id]
        assert search("min_latency_ms=5000") == name("fail_refund")
        assert search("max_latency_ms=2000&release=v3&last=1h") == name("ok_refund_v3", "fail_other")
        assert search("min_cost_usd=0.01&max_cost_usd=0.1") == name("fail_refund")
        assert search("feedback=negative") == name("ok_refund_v3")
        assert search("feedback=positive") == []
        assert search("guardrail=any") == [ids["threaded"].id]
        assert search("guardrail=pii&release=v4") == [ids["threaded"].id]
        assert ids["other_tenant"].id not in search("tool=refund")  # tenants never mix
        # Without runs:read a caller finds only their own runs.
        assert search("tool=refund", key=ids["own"]) == name("ok_refund_v3")
        assert client.get("/v1/traces?user=u1", headers=bearer(ids["own"])).status_code == 403

        page = client.get("/v1/traces?release=v3&limit=2", headers=bearer(ids["reader"])).json()
        assert len(page["traces"]) == 2 and page["next_cursor"]
        rest = client.get(
            f"/v1/traces?release=v3&limit=2&cursor={page['next_cursor']}", headers=bearer(ids["reader"])
        )
        assert [t["run_id"] for t in page["traces"]] == name("ok_refund_v3", "fail_other")
        assert [t["run_id"] for t in rest.json()["traces"]] == name("fail_refund", "old_fail")

        shown = client.get(
            "/v1/traces?error_type=model_error&release=v3&last=1h", headers=bearer(ids["reader"])
        ).json()
        (trace,) = shown["traces"]
        assert trace["trace_id"] == ids["fail_refund"].id.removeprefix("run_")
        assert trace["error_type"] == "model_error" and trace["latency_ms"] == pytest.approx(8000, abs=1)
        assert trace["tools_called"] == ["lookup", "refund"]

        spans = client.get(f"/v1/traces/{ids['threaded'].id}", headers=bearer(ids["reader"])).json()
        assert {s["operation"] for s in spans["spans"]} == {"execution", "guardrail"}  # run not ended
        assert (
            client.get(f"/v1/traces/{ids['other_tenant'].id}", headers=bearer(ids["reader"])).status_code
            == 404
        )

        for bad in (
            "last=soon",
            "error_type=vibes",
            "since=2026-01-01T00:00:00",
            "last=99999999999d",
            "cursor=zz",
        ):
            response = client.get(f"/v1/traces?{bad}", headers=bearer(ids["reader"]))
            assert response.status_code in (400, 422), (bad, response.text)
            assert "detail" in response.json()

    monkeypatch.setenv("COLUMNS", "200")
    found = cli.json(
        "traces",
        "search",
        "--project",
        project,
        "--tenant",
        "t1",
        "--release",
        "v3",
        "--status",
        "failed",
        "--tool",
        "refund",
        "--last",
        "1h",
    )
    assert [t["run_id"] for t in found] == name_ids(ids, "fail_refund")
    table = cli(
        "traces", "search", "--project", project, "--tenant", "t1", "--error-type", "budget_exhausted"
    )
    assert ids["budget"].id in table.stdout and "1 run(s)" in table.stdout
    refused = cli("traces", "search", "--project", project, "--last", "whenever", expect=2)
    assert "not a duration" in refused.stderr


def name_ids(ids: dict[str, Any], *keys: str) -> list[str]:
    return [ids[k].id for k in keys]
