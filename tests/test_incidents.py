"""Incidents (issue 14 item 4): opened by hand and by firing alerts, a timeline assembled from
what is recorded, linked runs turned into regression cases, a postmortem draft in Markdown."""

from __future__ import annotations

from pathlib import Path

from conftest import Cli, ProjectFactory
from observe_agent import POLICY, PRICES, TOOLS
from sqlalchemy import select
from test_api import RW, bearer, issue, problem, serve

from tether.store.repository import Store
from tether.store.tables import WebhookEventRow

RULES = """
[[alerts]]
name = "completion low"
metric = "completion_rate"
below = 0.9
window = "15m"
min_runs = 2
severity = "critical"
"""


def test_a_firing_alert_opens_an_incident_once_with_its_evidence(
    cli: Cli, make_project: ProjectFactory
) -> None:
    project = make_project(tools=TOOLS, policy=POLICY, extra=PRICES + RULES)
    escalated = [cli.json("run", "--project", project, "--user", "u1", "escalate") for _ in range(2)]
    cli.json("alerts", "check", "--project", project)
    cli.json("alerts", "check", "--project", project)  # still firing: no second incident
    incidents = cli.json("incident", "list", "--project", project)
    assert len(incidents) == 1
    incident = incidents[0]
    assert incident["source"] == "alert" and incident["severity"] == "critical"
    assert "completion low" in incident["title"] and incident["opened_by"] == "alerts"

    shown = cli.json("incident", "show", incident["id"], "--project", project)
    assert sorted(shown["runs"]) == sorted(r["run_id"] for r in escalated)
    sources = [m["source"] for m in shown["timeline"]]
    assert "alert" in sources and "incident" in sources and sources.count("run") == 2


def test_the_incident_lifecycle_from_open_to_postmortem(
    cli: Cli, make_project: ProjectFactory, tmp_path: Path
) -> None:
    project = make_project(tools=TOOLS, policy=POLICY, extra=PRICES)
    bad = cli.json("run", "--project", project, "--user", "u1", 'explode {"reason": "db"}')
    opened = cli.json(
        "incident",
        "open",
        "refunds failing",
        "--severity",
        "high",
        "--run",
        bad["run_id"],
        "--project",
        project,
    )
    control = cli.json(
        "control", "set", "disable_tool", "explode", "--reason", "stop the bleeding", "--project", project
    )
    cli("incident", "note", opened["id"], "disabled explode while we look", "--project", project)
    other = cli.json("run", "--project", project, "--user", "u2", 'lookup {"order": "7"}')
    cli("incident", "note", opened["id"], "--run", other["run_id"], "--project", project)

    shown = cli.json("incident", "show", opened["id"], "--project", project)
    texts = [m["text"] for m in shown["timeline"]]
    assert any(f"set {control['id']} disable_tool=explode @all: stop the bleeding" in t for t in texts)
    assert any("disabled explode while we look" in t for t in texts)
    assert any(t.startswith(f"run {bad['run_id']} linked") for t in texts)
    assert any(m["source"] == "release" for m in shown["timeline"])  # the working copy's release

    captured = cli.json(
        "incident", "cases", opened["id"], "--expect", "tools_not_called=explode", "--project", project
    )
    assert len(captured["cases"]) == 2 and captured["skipped"] == []
    suite = Path(captured["file"])
    assert suite.parent == project / "evals" and f"{opened['id']}-" in suite.read_text()
    assert "explode" in suite.read_text()

    cli("incident", "close", opened["id"], "--resolution", "rolled back the db change", "--project", project)
    report = tmp_path / "postmortem.md"
    cli("incident", "report", opened["id"], "--output", report, "--project", project)
    text = report.read_text()
    assert text.startswith("# Postmortem draft: refunds failing")
    assert "## Timeline (UTC)" in text and "stop the bleeding" in text and bad["run_id"] in text
    assert "rolled back the db change" in text

    again = cli("incident", "close", opened["id"], "--resolution", "x", "--project", project, expect=2)
    assert "already closed" in again.output
    missing = cli("incident", "show", "inc_nope", "--project", project, expect=2)
    assert "no incident 'inc_nope'" in missing.output
    no_run = cli("incident", "note", opened["id"], "--run", "run_nope", "--project", project, expect=2)
    assert "no run 'run_nope'" in no_run.output


def test_incidents_over_http_need_the_operator_scope(example_project: Path) -> None:
    writer = issue("u1", "t1", RW)
    operator = issue("oncall", "t1", ("operator",))
    with serve(example_project, workers=0) as client:
        assert client.get("/v1/incidents", headers=bearer(writer)).status_code == 403
        made = client.post("/v1/incidents", json={"title": "slow answers"}, headers=bearer(operator))
        assert made.status_code == 201, made.text
        incident = made.json()
        noted = client.post(
            f"/v1/incidents/{incident['id']}/notes", json={"text": "looking"}, headers=bearer(operator)
        )
        assert noted.status_code == 201 and noted.json()[0]["kind"] == "note"
        empty = client.post(f"/v1/incidents/{incident['id']}/notes", json={}, headers=bearer(operator))
        assert "give a note" in problem(empty, 400)
        detail = client.get(f"/v1/incidents/{incident['id']}", headers=bearer(operator)).json()
        assert [m["source"] for m in detail["timeline"]].count("note") == 1
        report = client.get(f"/v1/incidents/{incident['id']}/report", headers=bearer(operator))
        assert report.headers["content-type"].startswith("text/markdown") and "slow answers" in report.text
        closed = client.post(
            f"/v1/incidents/{incident['id']}/close", json={"resolution": "fixed"}, headers=bearer(operator)
        )
        assert closed.json()["status"] == "closed"
        problem(client.get("/v1/incidents/inc_nope", headers=bearer(operator)), 404)
        problem(client.post("/v1/incidents", json={"title": ""}, headers=bearer(operator)), 422)


def test_a_rollback_opens_an_incident_with_its_deployment_history(tmp_path: Path, cli: Cli) -> None:
    from test_ui_pages import serve as serve_shop
    from ui_helpers import write_shop_project

    project = write_shop_project(tmp_path / "shop")
    cli("release", "create", "--project", project, "--version", "v1")
    (project / "prompts" / "system.md").write_text("You are a concise shop assistant.")
    cli("release", "create", "--project", project, "--version", "v2")
    ops = issue("ops", "default", ("operator",))
    with serve_shop(project) as client:
        for version in ("v1", "v2"):
            body = {"release": version, "override": True, "reason": f"to {version}"}
            assert client.post("/v1/rollout/switch", json=body, headers=bearer(ops)).status_code == 200
        back = client.post("/v1/rollout/rollback", json={"reason": "v2 is slow"}, headers=bearer(ops))
        assert back.status_code == 200, back.text
        incidents = client.get("/v1/incidents", headers=bearer(ops)).json()
        assert len(incidents) == 1 and incidents[0]["source"] == "rollback"
        assert "rolled back from v2 to v1" in incidents[0]["title"] and "v2 is slow" in incidents[0]["title"]
        detail = client.get(f"/v1/incidents/{incidents[0]['id']}", headers=bearer(ops)).json()
        deployments = [m["text"] for m in detail["timeline"] if m["source"] == "deployment"]
        assert [t.split(": ")[1].split(" by ")[0] for t in deployments] == ["switch", "switch", "rollback"]


async def test_opening_an_incident_puts_incident_opened_in_the_webhook_outbox(store: Store) -> None:
    tenant = await store.incidents.open(
        title="Refunds misfiring", severity="critical", opened_by="ops", tenant_id="acme"
    )
    platform = await store.incidents.open(
        title="Error rate", severity="high", opened_by="alerts", source="alert", source_key="rule-1"
    )
    again = await store.incidents.open(
        title="Error rate", severity="high", opened_by="alerts", source="alert", source_key="rule-1"
    )
    assert tenant is not None and platform is not None and again is None
    async with store.engine.connect() as conn:
        events = (await conn.execute(select(WebhookEventRow))).all()
    opened = sorted((e.type, e.tenant_id, e.data["incident_id"]) for e in events)
    # One event per incident actually opened (the duplicate rolled back with its event), in the
    # incident's tenant, or the default tenant's for a platform-wide one.
    assert opened == sorted(
        [("incident.opened", "acme", tenant.id), ("incident.opened", "default", platform.id)]
    )
