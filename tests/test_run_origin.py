"""Where a run came from: every run records its origin, and production views count api and cli only.

Eval and drill runs are real runs in the same tables; health, /metrics gauges, alerts, budgets,
run lists and trace search leave them out unless asked (`--origin`, `?origin=`), so an eval full
of failing cases never fires a production alert.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import Cli, ProjectFactory
from evals_helpers import POLICY, TOOLS, write_suite
from fastapi.testclient import TestClient
from test_api import bearer, issue, serve

from tether.store.records import PRODUCTION_ORIGINS, ApprovalKind, RunOrigin, parse_origins
from tether.store.repository import Store, utc_now

RULES = """
[[alerts]]
name = "completion low"
metric = "completion_rate"
below = 0.9
window = "1h"
min_runs = 1
"""

FAILING_SUITE = """
cases:
  - id: wants-a-human
    input: escalate
    expect:
      status: succeeded      # the agent escalates: every trial fails
  - id: wipe
    input: wipe everything
    expect:
      status: succeeded      # parks for approval, then the runner cancels it: fails too
"""


def _stored(run_ids: list[str] | None = None) -> list[tuple[str, str]]:
    """(run id, origin) of every stored run, from the database itself."""
    path = os.environ["TETHER_DATABASE_URL"].removeprefix("sqlite+aiosqlite:///")
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT id, origin FROM runs ORDER BY created_at").fetchall()
    return [(r, o) for r, o in rows if run_ids is None or r in run_ids]


def test_parse_origins_defaults_to_production_and_names_the_accepted_values() -> None:
    assert parse_origins(None) == PRODUCTION_ORIGINS == (RunOrigin.API, RunOrigin.CLI)
    assert parse_origins(["all"]) is None
    assert parse_origins(["eval,drill", "eval"]) == (RunOrigin.EVAL, RunOrigin.DRILL)
    assert parse_origins(["production", "shadow"]) == (RunOrigin.API, RunOrigin.CLI, RunOrigin.SHADOW)
    with pytest.raises(ValueError, match=r"unknown origin 'evals'.*production, all, api, cli, eval, drill"):
        parse_origins(["evals"])


def test_an_eval_with_failing_cases_fires_no_alert_and_stays_out_of_runs_list(
    cli: Cli, make_project: ProjectFactory
) -> None:
    project = make_project(tools=TOOLS, policy=POLICY, extra=RULES)
    write_suite(project, "failing.yaml", FAILING_SUITE)
    ran = cli.json("eval", "run", "--project", project, "--trials", "3")
    assert ran["summary"]["passes"] == 0 and ran["summary"]["trials"] == 6
    assert {origin for _, origin in _stored()} == {"eval"}

    checked = cli.json("alerts", "check", "--project", project)
    assert checked["changed"] == [] and checked["firing"] == []
    assert cli.json("runs", "list", "--project", project) == []
    listed = cli.json("runs", "list", "--project", project, "--origin", "eval")
    assert len(listed) == 6 and {r["origin"] for r in listed} == {"eval"}
    assert len(cli.json("runs", "list", "--project", project, "--origin", "all")) == 6
    assert cli.json("traces", "search", "--project", project) == []
    assert len(cli.json("traces", "search", "--project", project, "--origin", "eval")) == 6

    # The same rule does fire on production traffic: one escalated CLI run is 0% completion.
    run = cli.json("run", "--project", project, "--user", "u1", "escalate")
    assert run["status"] == "escalated" and run["origin"] == "cli"
    fired = cli.json("alerts", "check", "--project", project)["changed"]
    assert [(c["rule"], c["state"]) for c in fired] == [("completion low", "firing")]
    assert fired[0]["value"] == 0.0  # one production run, not 7 runs


def test_a_bad_origin_is_a_clear_error(cli: Cli, make_project: ProjectFactory) -> None:
    project = make_project(tools=TOOLS, policy=POLICY)
    result = cli("runs", "list", "--project", project, "--origin", "evals", expect=2)
    assert "unknown origin 'evals'" in result.output and "Traceback" not in result.output


def test_runs_show_and_the_run_record_carry_the_origin(cli: Cli, make_project: ProjectFactory) -> None:
    project = make_project(tools=TOOLS, policy=POLICY)
    run = cli.json("run", "--project", project, "--user", "u1", "remember milk")
    assert run["origin"] == "cli"
    shown = cli("runs", "show", run["run_id"], "--project", project).stdout
    assert "origin" in shown and " cli" in shown


def test_drill_runs_are_drill_and_eval_history_turns_are_eval(
    cli: Cli, example_project: Path, isolated_env: Path
) -> None:
    p = ("--project", example_project)
    version = cli.json("release", "create", *p)["version"]
    cli("readiness", *p, "--release", version, "--out", isolated_env / "review", expect=None)
    drills = dict(_stored())
    assert list(drills.values()) == ["drill", "drill", "drill", "drill"]  # the kill switch too
    ran = cli.json("eval", "run", *p, "--release", version, "--suite", "conversations", "--trials", "1")
    assert ran["summary"]["trials"] > 0
    evals = {run_id: origin for run_id, origin in _stored() if run_id not in drills}
    assert len(evals) > ran["summary"]["trials"]  # the trials and their cases' seeded earlier turns
    assert set(evals.values()) == {"eval"}
    assert cli.json("runs", "list", *p) == []


def test_the_api_records_api_and_lists_production_unless_asked(
    example_project: Path, cli: Cli, make_project: ProjectFactory
) -> None:
    key = issue(user="u1", tenant="default", scopes=("runs:write", "runs:read", "approvals"))
    with serve(example_project, workers=0) as client:
        created = client.post("/v1/runs", json={"input": "Where is my order 12345?"}, headers=bearer(key))
        assert created.status_code == 202 and created.json()["origin"] == "api"
        asyncio.run(_add_eval_run(example_project))
        listed = _ids(client, key)
        assert listed == [created.json()["run_id"]]
        assert len(_ids(client, key, origin="all")) == 2
        assert len(_ids(client, key, origin="eval")) == 1
        assert len(_ids(client, key, origin=["api", "eval"])) == 2
        assert _ids(client, key, origin="drill") == []
        bad = client.get("/v1/runs", params={"origin": "nope"}, headers=bearer(key))
        assert bad.status_code == 400 and "unknown origin 'nope'" in bad.json()["detail"]
        traces = client.get("/v1/traces", params={"origin": "eval"}, headers=bearer(key))
        assert traces.status_code == 200 and [t["origin"] for t in traces.json()["traces"]] == ["eval"]
        # The eval run is parked on an approval: the inbox (API and dashboard) does not offer it.
        assert client.get("/v1/approvals", headers=bearer(key)).json() == []


def _ids(client: TestClient, key: str, **params: Any) -> list[str]:
    response = client.get("/v1/runs", params=params, headers=bearer(key))
    assert response.status_code == 200, response.text
    return [r["run_id"] for r in response.json()["runs"]]


async def _add_eval_run(project: Path) -> None:
    from tether.rollout.releases import working_copy_release

    store = await Store.open(os.environ["TETHER_DATABASE_URL"])
    try:
        release = await working_copy_release(store, project)
        trial = await store.create_run(
            release=release, user_id="u1", input="an eval trial", origin=RunOrigin.EVAL, lease=("evals", 600)
        )
        await store.wait_for_approval(
            trial.id,
            "evals",
            600,
            tool_call_id="call_1",
            kind=ApprovalKind.GATE,
            tool="issue_refund",
            arguments={"order_id": "12346"},
            reason="needs approval",
            totals=trial.totals(),
        )
        assert len(await store.list_approvals(status="pending", tenant_id="default")) == 1
    finally:
        await store.close()


async def test_health_gauges_and_alert_tenants_count_production_only(store: Store, make_project: Any) -> None:
    from tether.rollout.releases import working_copy_release

    project = make_project(tools=TOOLS, policy=POLICY)
    release = await working_copy_release(store, project)
    for origin in RunOrigin:
        await store.create_run(
            release=release, user_id="u1", input=f"from {origin}", origin=origin, tenant_id="t"
        )
    await store.create_run(
        release=release, user_id="u1", input="a drill", origin=RunOrigin.DRILL, tenant_id="x"
    )
    now = utc_now()
    stats = await store.insights.run_stats(
        tenant_id="t", since=now - timedelta(hours=1), until=now + timedelta(1)
    )
    assert stats["t"].runs == 2
    every = await store.insights.run_stats(
        tenant_id="t", since=now - timedelta(hours=1), until=now + timedelta(1), origins=None
    )
    assert every["t"].runs == len(RunOrigin)
    assert await store.insights.active_runs(tenant_id="t") == {"queued": 2}
    assert (await store.telemetry.ops_snapshot()).runs_by_status == {"queued": 2}
    assert await store.telemetry.active_tenants(since=now - timedelta(hours=1)) == ["t"]
    assert await store.insights.release_run_counts(tenant_id="t") == {release.id: 2}
    assert [r.origin for r in await store.list_runs()] == ["cli", "api"]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_migration_0007_classifies_existing_runs(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    from alembic import command
    from sqlalchemy import text

    from tether.store import db

    url = (
        f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("empty_postgres_url")
    )
    engine = db.create_engine(url)
    runs = {
        # id: (tenant, user, metadata, pinned) -> the origin 0007 must give it
        "run_trial": ("default", "u1", '{"eval_run": "evr_1", "case": "c"}', False),
        "run_history": ("default", "u1", '{"eval_run": "evr_1", "seeded_history": true}', False),
        "run_drill": ("default", "u1", '{"readiness_drill": "normal"}', True),
        "run_pinned": ("default", "u1", "{}", True),
        "run_tenant": ("acme", "u2", "{}", False),
        "run_keyed": ("default", "u3", '{"source": "web"}', False),
        "run_cli": ("default", "u4", "{}", False),
    }
    expected = {
        "run_trial": "eval",
        "run_history": "eval",
        "run_drill": "drill",
        "run_pinned": "eval",
        "run_tenant": "api",
        "run_keyed": "api",
        "run_cli": "cli",
    }
    try:
        async with engine.begin() as connection:
            await connection.run_sync(lambda c: command.upgrade(db._alembic_config(c), "0006"))
            await connection.execute(
                text(
                    "INSERT INTO releases (id, version, agent_name, kind, content_hash, snapshot, "
                    "created_at) VALUES ('rel_1', 'v1', 'a', 'release', 'h', '{}', CURRENT_TIMESTAMP)"
                )
            )
            await connection.execute(
                text(
                    "INSERT INTO api_keys (id, key_hash, user_id, tenant_id, scopes, label, created_at) "
                    "VALUES ('key_1', 'x', 'u3', 'default', '[]', '', CURRENT_TIMESTAMP)"
                )
            )
            for run_id, (tenant, user, metadata, pinned) in runs.items():
                await connection.execute(
                    text(
                        "INSERT INTO runs (id, release_id, release_version, user_id, tenant_id, status, "
                        "input, steps_used, tools_called, input_tokens, output_tokens, estimated_cost_usd, "
                        "risk_level, metadata, cancel_requested, attempts, created_at, updated_at, pinned) "
                        "VALUES (:id, 'rel_1', 'v1', :user, :tenant, 'succeeded', 'x', 0, '[]', 0, 0, 0, "
                        "'none', :metadata, false, 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, :pinned)"
                    ),
                    {"id": run_id, "user": user, "tenant": tenant, "metadata": metadata, "pinned": pinned},
                )
            await connection.run_sync(lambda c: command.upgrade(db._alembic_config(c), "head"))
            rows = (await connection.execute(text("SELECT id, origin FROM runs"))).all()
    finally:
        await engine.dispose()
    assert dict((str(r), str(o)) for r, o in rows) == expected


async def test_eval_and_drill_runs_do_not_spend_a_users_budget(store: Store, make_project: Any) -> None:
    from tether.rollout.releases import working_copy_release
    from tether.store.records import RunStatus, RunTotals

    project = make_project(tools=TOOLS, policy=POLICY)
    release = await working_copy_release(store, project)
    for origin, cost in (
        (RunOrigin.API, 0.25),
        (RunOrigin.CLI, 0.5),
        (RunOrigin.EVAL, 4.0),
        (RunOrigin.DRILL, 8.0),
    ):
        run = await store.create_run(
            release=release, user_id="u1", input="x", origin=origin, tenant_id="t", lease=("me", 600)
        )
        await store.finish_run(
            run.id, "me", 600, status=RunStatus.SUCCEEDED, totals=RunTotals(estimated_cost_usd=cost)
        )
    since = utc_now() - timedelta(hours=1)
    assert await store.spend(since=since, user_id="u1") == pytest.approx(0.75)
    assert await store.spend(since=since, tenant_id="t") == pytest.approx(0.75)
