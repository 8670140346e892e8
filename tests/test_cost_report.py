"""Cost attribution: spend by user, tag, tenant, model and tier in the store, the CLI and the API;
Prometheus spend and cache series; budget alerts per tenant or tag."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import Cli, ProjectFactory
from test_observe_metrics import bearer, issue, run_to_end, samples, serve, value

from tether.agent.config import BudgetAlert
from tether.observe.alerts import AlertEvaluator
from tether.rollout.releases import working_copy_release
from tether.runtime.service import Runtime
from tether.settings import Settings
from tether.store.records import RunOrigin
from tether.store.repository import Store, utc_now

TOOLS = '''
from tether import tool

@tool
def ping() -> str:
    """Ping."""
    return "pong"
'''

POLICY = """
def respond(turn):
    return f"{turn.model} says hi to: {turn.user_input}"
"""

EXTRA = """
[prices."scripted:small"]
input_per_mtok = 1.0
output_per_mtok = 1.0

[prices."scripted:large"]
input_per_mtok = 100.0
output_per_mtok = 100.0

[routing]
default = "large"

[routing.tiers]
small = ["scripted:small"]

[[routing.rules]]
tier = "small"
input_max_chars = 10
"""


async def _seed(project: Path, data: Path) -> Store:
    store = await Store.open(os.environ["TETHER_DATABASE_URL"])
    runtime = Runtime(store, Settings(), data_dir=data)
    release = await working_copy_release(store, project)
    asks = [
        ("t1", "ann", "hi", {"tag": "search"}, RunOrigin.API),
        ("t1", "ann", "a much longer question", {"tag": "chat"}, RunOrigin.API),
        ("t1", "bob", "hello", {"tag": "search"}, RunOrigin.CLI),
        ("t2", "cy", "a much longer question", {}, RunOrigin.API),
        ("t1", "eve", "an eval run, not production", {"tag": "search"}, RunOrigin.EVAL),
    ]
    for tenant, user, text, metadata, origin in asks:
        run = await runtime.submit(
            release, origin=origin, user_id=user, input=text, tenant_id=tenant, metadata=metadata
        )
        await runtime.execute(run.id)
    return store


async def test_spend_is_grouped_by_user_tag_tenant_model_and_tier(
    make_project: ProjectFactory, isolated_env: Path
) -> None:
    project = make_project(tools=TOOLS, policy=POLICY, model='primary = "scripted:large"', extra=EXTRA)
    store = await _seed(project, isolated_env / "data")
    try:
        since = utc_now().replace(year=2000)
        by_user = {line.key: line for line in await store.costs.report("user", since=since, tenant_id="t1")}
        assert set(by_user) == {"ann", "bob"}  # eve's run was an eval: not production
        assert by_user["ann"].runs == 2
        by_tag = {line.key: line.runs for line in await store.costs.report("tag", since=since)}
        assert by_tag == {"search": 2, "chat": 1, "(none)": 1}
        by_tenant = {line.key: line.runs for line in await store.costs.report("tenant", since=since)}
        assert by_tenant == {"t1": 3, "t2": 1}
        by_tier = {line.key: line for line in await store.costs.report("tier", since=since)}
        assert by_tier["small"].calls == 2 and by_tier["large"].calls == 2
        assert by_tier["large"].cost_usd > 10 * by_tier["small"].cost_usd  # large is 100x the price
        by_model = [line.key for line in await store.costs.report("model", since=since)]
        assert by_model == ["scripted:large", "scripted:small"]  # largest spend first
        everything = await store.costs.report("user", since=since, origins=None)
        assert "eve" in {line.key for line in everything}
        tags = {
            line.key: line.cost_usd for line in await store.costs.report("tag", since=since, tenant_id="t1")
        }
        assert await store.costs.spent(since=since, tenant_id="t1", tag="search") == pytest.approx(
            tags["search"]
        )
    finally:
        await store.close()


async def test_budget_alert_fires_for_a_tag_at_its_share_and_resolves(
    make_project: ProjectFactory, isolated_env: Path
) -> None:
    project = make_project(tools=TOOLS, policy=POLICY, model='primary = "scripted:large"', extra=EXTRA)
    store = await _seed(project, isolated_env / "data")
    try:
        spent = await store.costs.spent(since=utc_now().replace(year=2000), tag="search")
        assert spent > 0
        rule = BudgetAlert(name="search budget", tag="search", budget_usd=spent / 0.9, at=0.8, window="7d")
        evaluator = AlertEvaluator(store, [], budgets=[rule])
        (fired,) = await evaluator.check()
        assert fired.state == "firing" and fired.alert.tenant_id == "*"
        assert "tag search spent" in fired.alert.message and "90% of its" in fired.alert.message
        assert await evaluator.check() == []  # still firing: no new episode
        evaluator.budgets = [rule.model_copy(update={"budget_usd": spent * 10})]
        (resolved,) = await evaluator.check()
        assert resolved.state == "resolved"
        quiet = AlertEvaluator(store, [], budgets=[BudgetAlert(name="t2", tenant="t2", budget_usd=1000)])
        assert await quiet.check() == []
    finally:
        await store.close()


def test_cli_cost_report(cli: Cli, make_project: ProjectFactory) -> None:
    project = make_project(tools=TOOLS, policy=POLICY, model='primary = "scripted:large"', extra=EXTRA)
    for text in ("hi", "a much longer question"):
        cli("run", "--project", project, "--user", "ann", text)
    lines = cli.json("cost", "report", "--by", "tier", "--since", "7d", "--project", project)
    assert [line["key"] for line in lines] == ["large", "small"]
    table = cli("cost", "report", "--by", "user", "--project", project).stdout
    assert "ann" in table and "total $" in table
    assert (
        "choose from user, thread"
        in cli("cost", "report", "--by", "color", "--project", project, expect=2).output
    )
    assert "not a duration" in cli("cost", "report", "--since", "soon", "--project", project, expect=2).output


def test_api_cost_report_is_per_tenant_and_prometheus_has_spend_by_tier(
    make_project: ProjectFactory,
) -> None:
    project = make_project(tools=TOOLS, policy=POLICY, model='primary = "scripted:large"', extra=EXTRA)
    writer, reader, other = (
        issue(["runs:write"], user="ann"),
        issue(["runs:read"]),
        issue(["runs:read"], tenant="t9"),
    )
    metrics_key = issue(["metrics"])
    with serve(project) as client:
        for text in ("hi", "a much longer question"):
            assert run_to_end(client, writer, text)["status"] == "succeeded"
        report = client.get("/v1/cost/report?by=tier&since=1d", headers=bearer(reader)).json()
        assert [line["key"] for line in report["lines"]] == ["large", "small"]
        assert report["tenant_id"] == "t1" and report["total_usd"] > 0
        assert client.get("/v1/cost/report?by=tier", headers=bearer(other)).json()["lines"] == []
        assert client.get("/v1/cost/report?by=color", headers=bearer(reader)).status_code == 422
        assert client.get("/v1/cost/report?since=soon", headers=bearer(reader)).status_code == 400
        assert client.get("/v1/cost/report", headers=bearer(writer)).status_code == 403
        assert client.get("/v1/cost/breakers", headers=bearer(reader)).json() == []
        found = samples(client.get("/metrics", headers=bearer(metrics_key)).text)
    release = next(labels for (name, labels) in found if name == "tether_spend_usd_total")
    version = dict(release)["release"]
    assert value(found, "tether_spend_usd_total", release=version, tenant="t1", tier="small", tag="") > 0
    assert value(found, "tether_spend_usd_total", release=version, tenant="t1", tier="large", tag="") > 0
    assert value(found, "tether_cache_lookups_total", release=version, cache="exact", outcome="hit") == 0
