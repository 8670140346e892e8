"""Alert rules from tether.toml: evaluated on real runs, stored, and delivered from the webhooks outbox
to the operator's TETHER_ALERT_WEBHOOK_URL (a real local receiver), signed."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import Cli, ProjectFactory
from fastapi.testclient import TestClient
from observe_agent import POLICY, PRICES, TOOLS

from tether.agent.config import ConfigError, ProjectConfig, load_config
from tether.api.app import ServiceOptions, create_app
from tether.api.auth import issue_key
from tether.observe.alerts import AlertEvaluator, default_rules, rules_for
from tether.observe.metrics import Metrics
from tether.observe.observer import TelemetryObserver
from tether.observe.tracing import Tracing
from tether.rollout.releases import working_copy_release
from tether.settings import Settings
from tether.store.records import RunOrigin
from tether.store.repository import Store, utc_now
from tether.store.webhooks import new_secret
from tether.webhooks import signing
from tether.webhooks.dispatcher import Dispatcher
from tether.webhooks.service import keep_alert_endpoint

RULES = """
[[alerts]]
name = "completion low"
metric = "completion_rate"
below = 0.9
window = "15m"
min_runs = 2

[[alerts]]
name = "tools failing"
metric = "tool_error_rate"
above = 0.05
min_runs = 1
severity = "critical"

[[alerts]]
name = "slow"
metric = "p95_latency_s"
above = 600
min_runs = 1
"""


class Webhook:
    """A local HTTP server that records every JSON body POSTed to it (and the raw request)."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.raw: list[tuple[dict[str, str], bytes]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                assert self.headers["Content-Type"] == "application/json"
                hook.raw.append(({k.lower(): v for k, v in self.headers.items()}, body))
                hook.received.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/tether"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


SECRET = new_secret()


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[Webhook]:
    hook = Webhook()
    monkeypatch.setenv("TETHER_ALERT_WEBHOOK_URL", hook.url)  # loopback: trusted, being the operator's
    monkeypatch.setenv("TETHER_ALERT_WEBHOOK_SECRET", SECRET)
    try:
        yield hook
    finally:
        hook.close()


def deliver() -> list[str]:
    """What a worker does: keep the operator endpoint the settings name, relay and send once."""

    async def tick() -> list[str]:
        store = await Store.open(os.environ["TETHER_DATABASE_URL"])
        settings = Settings()
        try:
            await keep_alert_endpoint(store, settings)
            dispatcher = Dispatcher(store, settings)
            try:
                return [d.status for d in await dispatcher.tick()]
            finally:
                await dispatcher.close()
        finally:
            await store.close()

    return asyncio.run(tick())


def test_rules_fire_and_resolve_stored_and_sent_to_the_webhook(
    cli: Cli, make_project: ProjectFactory, webhook: Webhook
) -> None:
    project = make_project(tools=TOOLS, policy=POLICY, extra=PRICES + RULES)
    assert (
        cli.json("run", "--project", project, "--user", "u1", 'lookup {"order": "1"}')["status"]
        == "succeeded"
    )
    assert (
        cli.json("run", "--project", project, "--user", "u1", 'explode {"reason": "x"}')["status"]
        == "succeeded"
    )
    assert cli.json("run", "--project", project, "--user", "u1", "escalate")["status"] == "escalated"

    checked = cli.json("alerts", "check", "--project", project)
    fired = {c["rule"]: c for c in checked["changed"]}
    # 2 of 3 succeeded (67% < 90%); 1 of 2 executed tool calls failed (50% > 5%); nothing is slow.
    assert set(fired) == {"completion low", "tools failing"}
    assert fired["completion low"]["state"] == "firing" and fired["completion low"]["tenant_id"] == "default"
    assert fired["completion low"]["value"] == pytest.approx(2 / 3)
    assert fired["tools failing"]["severity"] == "critical" and fired["tools failing"]["threshold"] == 0.05
    assert webhook.received == []  # nothing is POSTed by the evaluator: the events wait in the outbox
    assert deliver() == ["succeeded", "succeeded"]
    assert sorted((w["type"], w["data"]["rule"], w["data"]["state"]) for w in webhook.received) == [
        ("alert.fired", "completion low", "firing"),
        ("alert.fired", "tools failing", "firing"),
    ]
    for headers, body in webhook.raw:  # signed like every delivery, with the configured secret
        assert signing.verify(SECRET, headers, body, now=int(time.time()))

    again = cli.json("alerts", "check", "--project", project)  # still firing: nothing new is sent
    assert again["changed"] == [] and len(again["firing"]) == 2
    assert deliver() == [] and len(webhook.received) == 2

    async def an_hour_later() -> list[str]:
        store = await Store.open(os.environ["TETHER_DATABASE_URL"])
        try:
            rules = rules_for(load_config(project / "tether.toml"))
            evaluator = AlertEvaluator(store, rules)
            changes = await evaluator.check(now=utc_now() + timedelta(hours=1))
            return sorted(f"{c.alert.rule}:{c.state}" for c in changes)
        finally:
            await store.close()

    assert asyncio.run(an_hour_later()) == ["completion low:resolved", "tools failing:resolved"]
    assert deliver() == ["succeeded", "succeeded"]
    assert [w["data"]["state"] for w in webhook.received[2:]] == ["resolved", "resolved"]
    assert all(w["data"]["resolved_at"] is not None for w in webhook.received[2:])

    history = cli.json("alerts", "list", "--project", project)
    assert sorted((a["rule"], a["state"]) for a in history) == [
        ("completion low", "resolved"),
        ("tools failing", "resolved"),
    ]


def test_the_service_evaluates_alerts_and_lists_them_per_tenant(
    cli: Cli, make_project: ProjectFactory, webhook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = make_project(tools=TOOLS, policy=POLICY, extra=PRICES + RULES)
    cli.json("run", "--project", project, "--user", "u1", "escalate")
    cli.json("run", "--project", project, "--user", "u1", "escalate")
    monkeypatch.setenv("TETHER_ALERT_INTERVAL_S", "0.1")

    async def keys() -> tuple[str, str, str]:
        store = await Store.open(os.environ["TETHER_DATABASE_URL"])
        try:
            _, mine = await issue_key(store, user_id="ops", tenant_id="default", scopes=["runs:read"])
            _, other = await issue_key(store, user_id="ops", tenant_id="elsewhere", scopes=["runs:read"])
            _, writer = await issue_key(store, user_id="app", tenant_id="default", scopes=["runs:write"])
            return mine, other, writer
        finally:
            await store.close()

    mine, other, writer = asyncio.run(keys())
    # With a worker: it sends the outbox's events (the API process only evaluates and records).
    options = ServiceOptions(project=project, settings=Settings(), embedded_worker_concurrency=1)
    with TestClient(create_app(options)) as client:
        for _ in range(300):
            if webhook.received:
                break
            threading.Event().wait(0.05)
        listed = client.get("/v1/alerts", headers={"Authorization": f"Bearer {mine}"})
        firing = client.get("/v1/alerts?state=firing", headers={"Authorization": f"Bearer {mine}"})
        hidden = client.get("/v1/alerts", headers={"Authorization": f"Bearer {other}"})
        assert client.get("/v1/alerts").status_code == 401
        assert client.get("/v1/alerts", headers={"Authorization": f"Bearer {writer}"}).status_code == 403
    assert [w["data"]["rule"] for w in webhook.received] == ["completion low"]  # via the embedded worker
    assert [a["rule"] for a in listed.json()["alerts"]] == ["completion low"]
    assert firing.json()["alerts"][0]["message"] == "completion_rate over 15m is 0.0% (fires below 0.9)"
    assert hidden.json() == {"alerts": []}


def test_default_rules_and_bad_rules(make_project: ProjectFactory, tmp_path: Path) -> None:
    project = make_project(tools=TOOLS, policy=POLICY, limits="max_cost_usd_per_run = 0.10")
    config = load_config(project / "tether.toml")
    assert config.alerts is None
    rules = {r.name: r for r in rules_for(config)}
    assert rules == {r.name: r for r in default_rules(config)}
    assert rules["completion rate low"].below == 0.85 and rules["completion rate low"].window == "15m"
    assert rules["p95 latency high"].above == 5.0
    assert rules["tool error rate high"].above == 0.05
    assert rules["cost per run high"].above == pytest.approx(0.08)
    assert rules["safety incident"].above == 0 and rules["safety incident"].severity == "critical"
    assert rules_for(ProjectConfig.model_validate({**config.model_dump(), "alerts": []})) == []

    for bad, why in (
        ('name = "x"\nmetric = "completion_rate"', "exactly one of above or below"),
        ('name = "x"\nmetric = "completion_rate"\nabove = 1\nbelow = 0', "exactly one of above or below"),
        ('name = "x"\nmetric = "vibes"\nabove = 1', "alerts.0.metric"),
        ('name = "x"\nmetric = "completion_rate"\nabove = 1\nwindow = "soon"', "alerts.0.window"),
    ):
        toml = tmp_path / "tether.toml"
        toml.write_text((project / "tether.toml").read_text() + f"\n[[alerts]]\n{bad}\n")
        with pytest.raises(ConfigError, match=why):
            load_config(toml)


async def test_a_guardrail_block_fires_the_default_safety_alert(
    make_project: ProjectFactory, store: Store
) -> None:
    project = make_project(tools=TOOLS, policy=POLICY, extra=PRICES)
    release = await working_copy_release(store, project)
    run = await store.create_run(
        origin=RunOrigin.API, release=release, user_id="u1", input="hello", tenant_id="t9"
    )
    claimed = await store.claim_run("w", 30, run_id=run.id)
    assert claimed is not None
    evaluator = AlertEvaluator(store, rules_for(load_config(project / "tether.toml")))
    assert await evaluator.check() == []  # one harmless run: nothing to say

    observation = TelemetryObserver(store, tracing=Tracing(), metrics=Metrics()).start(claimed, release)
    observation.guardrail(
        name="injection", stage="tool_result", decision="block", reason="instructions in data"
    )
    await observation.close(claimed)

    (fired,) = await evaluator.check()
    assert fired.state == "firing" and fired.alert.rule == "safety incident"
    assert fired.alert.severity == "critical" and fired.alert.tenant_id == "t9" and fired.alert.value == 1
