"""Webhooks against a real HTTP receiver: signatures, the outbox, retries with backoff on a clock the
test moves, dead letters and replay, internal destinations refused, and the HTTP API and CLI.

The receiver is a small threaded HTTP server on 127.0.0.1 (allowed explicitly with
TETHER_WEBHOOK_ALLOW_CIDRS, as an operator would). "Down" means nothing listens on its port.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import Cli, bare_release
from fastapi.testclient import TestClient
from timing import TestClock, wait_until

from tether.api.app import ServiceOptions, create_app
from tether.settings import Settings
from tether.store.records import ReleaseRecord, RunOrigin, RunStatus, RunTotals
from tether.store.repository import Store
from tether.store.webhooks import Pruned
from tether.webhooks import signing
from tether.webhooks.destinations import DestinationPolicy, DestinationRefused
from tether.webhooks.dispatcher import Dispatcher

LOCAL = "127.0.0.1/32"


class Receiver:
    """A real HTTP server recording every request; `answer` is the status it replies with."""

    def __init__(self, port: int = 0) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.answer = 200
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}/hook"

    def up(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(receiver.answer)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        self._port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def down(self) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
        self._server = None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    if server._server is not None:
        server.down()


def settings(**extra: Any) -> Settings:
    return Settings(webhook_allow_cidrs=LOCAL, webhook_backoff_s=5, webhook_max_attempts=4, **extra)


async def release_of(store: Store) -> ReleaseRecord:
    found = await store.find_release(content_hash="0" * 64)
    return found if found is not None else await bare_release(store)


async def ended_run(store: Store, status: RunStatus = RunStatus.SUCCEEDED, tenant: str = "t1") -> str:
    release = await release_of(store)
    run = await store.create_run(
        release=release, user_id="u", input="hi", origin=RunOrigin.API, tenant_id=tenant
    )
    claimed = await store.claim_run("w", 60, run_id=run.id)
    assert claimed is not None
    await store.finish_run(run.id, "w", 60, status=status, totals=RunTotals(), output="done")
    return run.id


# --------------------------------------------------------------------------- signing and destinations


def test_signature_matches_the_standard_webhooks_reference_vector() -> None:
    # The test vector of the Standard Webhooks reference libraries.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    assert (
        signing.sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )
    headers = signing.headers(secret, "msg_1", 1000, body)
    assert signing.verify(secret, headers, body, now=1010)
    assert not signing.verify(secret, headers, body + b" ", now=1010)
    assert not signing.verify(secret, headers, body, now=1000 + signing.TOLERANCE_S + 1)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x",
        "http://localhost:8080/x",
        "http://10.1.2.3/x",
        "http://192.168.0.5/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/x",
        "http://[::ffff:127.0.0.1]/x",
        "http://0.0.0.0/x",
    ],
)
async def test_internal_destinations_are_refused_unless_allowed(url: str) -> None:
    with pytest.raises(DestinationRefused, match="internal address"):
        await DestinationPolicy().resolve(url)
    assert (await DestinationPolicy(allow_private=True).resolve(url)).address


@pytest.mark.parametrize(
    "url", ["ftp://example.com/x", "http://user:pw@example.com/x", "not a url", "http://"]
)
async def test_malformed_destinations_are_refused(url: str) -> None:
    with pytest.raises(DestinationRefused):
        await DestinationPolicy(allow_private=True).resolve(url)


async def test_an_allow_list_admits_only_its_networks() -> None:
    policy = DestinationPolicy.of(False, "127.0.0.1/32, 10.9.0.0/16")
    assert (await policy.resolve("http://127.0.0.1:9/x")).address == "127.0.0.1"
    assert (await policy.resolve("http://10.9.3.4/x")).address == "10.9.3.4"
    with pytest.raises(DestinationRefused):
        await policy.resolve("http://10.8.0.1/x")
    with pytest.raises(ValueError, match="not an address or CIDR"):
        DestinationPolicy.of(False, "10.0.0.0/99")


async def test_a_host_name_is_checked_by_the_address_it_resolves_to() -> None:
    # `localhost` is a name, not an address: refused because of what DNS answers at delivery time.
    with pytest.raises(DestinationRefused, match="localhost resolves to"):
        await DestinationPolicy().resolve("http://localhost:1234/x")
    target = await DestinationPolicy.of(False, LOCAL).resolve("http://localhost:1234/x")
    assert target.connect_url().startswith("http://127.0.0.1:1234/")
    assert target.host_header() == "localhost:1234"


# --------------------------------------------------------------------------- outbox and delivery


async def test_a_run_event_is_delivered_signed_with_a_stable_event_id(
    store: Store, receiver: Receiver
) -> None:
    endpoint = await store.webhooks.add_endpoint(
        tenant_id="t1", url=receiver.url, events=["run.*"], created_by="test"
    )
    other_tenant = await store.webhooks.add_endpoint(
        tenant_id="t2", url=receiver.url, events=["*"], created_by="test"
    )
    run_id = await ended_run(store)
    dispatcher = Dispatcher(store, settings())
    try:
        sent = await dispatcher.tick()
    finally:
        await dispatcher.close()
    assert [d.status for d in sent] == ["succeeded"]
    assert sent[0].endpoint_id == endpoint.id != other_tenant.id
    [(headers, body)] = receiver.requests
    assert signing.verify(endpoint.secret, headers, body, now=int(time.time()))
    document = json.loads(body)
    assert document["type"] == "run.succeeded"
    assert document["data"]["run_id"] == run_id and document["data"]["output"] == "done"
    assert headers["webhook-id"] == document["id"] == sent[0].event_id


async def test_eval_runs_and_unsubscribed_events_send_nothing(store: Store, receiver: Receiver) -> None:
    await store.webhooks.add_endpoint(tenant_id="t1", url=receiver.url, events=["run.failed"], created_by="t")
    await ended_run(store, RunStatus.SUCCEEDED)  # not subscribed: the event is dropped
    release = await release_of(store)
    run = await store.create_run(
        release=release, user_id="u", input="x", origin=RunOrigin.EVAL, tenant_id="t1", lease=("w", 60)
    )
    await store.finish_run(run.id, "w", 60, status=RunStatus.FAILED, totals=RunTotals())
    dispatcher = Dispatcher(store, settings())
    try:
        assert await dispatcher.tick() == []
    finally:
        await dispatcher.close()
    assert await store.webhooks.pending_events() == []
    assert receiver.requests == []


async def test_a_receiver_that_is_down_for_a_while_gets_the_event_when_it_comes_back(
    store: Store, receiver: Receiver, clock: TestClock
) -> None:
    endpoint = await store.webhooks.add_endpoint(
        tenant_id="t1", url=receiver.url, events=["run.failed"], created_by="test"
    )
    receiver.down()
    await ended_run(store, RunStatus.FAILED)
    dispatcher = Dispatcher(store, settings())
    try:
        [first] = await dispatcher.tick()
        assert first.status == "pending" and first.attempts == 1 and first.last_error
        wait = (first.next_attempt_at - clock()).total_seconds()
        assert 0 < wait <= 10  # 5 s, plus up to 5 s of jitter
        assert await dispatcher.tick() == []  # not due yet: nothing is attempted early
        clock.advance(11)
        [second] = await dispatcher.tick()
        assert second.attempts == 2 and second.status == "pending"
        assert 0 < (second.next_attempt_at - clock()).total_seconds() <= 15  # 10 s + jitter: it grows
        receiver.up()  # back, on the same port
        clock.advance(16)
        [third] = await dispatcher.tick()
    finally:
        await dispatcher.close()
    assert third.status == "succeeded" and third.attempts == 3 and third.last_status_code == 200
    [(headers, body)] = receiver.requests
    assert signing.verify(endpoint.secret, headers, body, now=int(clock().timestamp()))


async def test_retries_end_in_a_dead_letter_that_replay_sends_again(
    store: Store, receiver: Receiver, clock: TestClock
) -> None:
    await store.webhooks.add_endpoint(tenant_id="t1", url=receiver.url, events=["*"], created_by="t")
    receiver.answer = 500
    await ended_run(store)
    dispatcher = Dispatcher(store, settings())
    try:
        outcomes = []
        for _ in range(4):
            outcomes.extend(await dispatcher.tick())
            clock.advance(3600)
        assert [d.status for d in outcomes] == ["pending", "pending", "pending", "dead"]
        dead = outcomes[-1]
        assert dead.attempts == 4 and dead.last_status_code == 500
        assert await dispatcher.tick() == []  # dead stays dead
        [(listed, event_type)] = await store.webhooks.list_deliveries(status="dead")
        assert listed.id == dead.id and event_type == "run.succeeded"
        receiver.answer = 204
        replayed = await store.webhooks.replay(dead.id)
        assert replayed.status == "pending" and replayed.attempts == 0
        [delivered] = await dispatcher.tick()
    finally:
        await dispatcher.close()
    assert delivered.status == "succeeded"
    ids = {headers["webhook-id"] for headers, _ in receiver.requests}
    assert len(receiver.requests) == 5 and ids == {dead.event_id}  # one event id across every attempt


async def test_a_sender_that_dies_mid_delivery_leaves_it_due_again(
    store: Store, receiver: Receiver, clock: TestClock
) -> None:
    await store.webhooks.add_endpoint(tenant_id="t1", url=receiver.url, events=["*"], created_by="t")
    await ended_run(store)
    dispatcher = Dispatcher(store, settings())
    try:
        await dispatcher.relay()
        [claimed] = await store.webhooks.claim_due(limit=10, claim_s=30)  # ... and the process dies
        assert await store.webhooks.claim_due(limit=10, claim_s=30) == []  # nobody else takes it meanwhile
        clock.advance(31)
        [delivered] = await dispatcher.send_due()
    finally:
        await dispatcher.close()
    assert delivered.id == claimed.delivery.id and delivered.status == "succeeded"


async def test_approvals_and_alerts_are_events_too(store: Store, receiver: Receiver) -> None:
    from tether.store.records import ApprovalKind

    await store.webhooks.add_endpoint(
        tenant_id="t1",
        url=receiver.url,
        events=["run.waiting_for_approval", "approval.decided", "alert.fired"],
        created_by="t",
    )
    release = await bare_release(store)
    run = await store.create_run(
        release=release, user_id="u", input="x", origin=RunOrigin.API, tenant_id="t1"
    )
    assert await store.claim_run("w", 60, run_id=run.id) is not None
    approval = await store.wait_for_approval(
        run.id,
        "w",
        60,
        tool_call_id="c1",
        kind=ApprovalKind.GATE,
        tool="refund",
        arguments={"order": "1"},
        reason="write",
        totals=RunTotals(),
    )
    await store.decide_approval(approval.id, approve=True, decided_by="ops", reason="fine")
    await store.telemetry.fire_alert(
        alert_id="alr_1",
        rule="completion rate low",
        tenant_id="t1",
        severity="warning",
        metric="completion_rate",
        value=0.5,
        threshold=0.85,
        message="low",
    )
    dispatcher = Dispatcher(store, settings())
    try:
        sent = await dispatcher.tick()
    finally:
        await dispatcher.close()
    assert len(sent) == 3 and {d.status for d in sent} == {"succeeded"}
    types = sorted(json.loads(body)["type"] for _, body in receiver.requests)
    assert types == ["alert.fired", "approval.decided", "run.waiting_for_approval"]


async def test_a_removed_endpoint_gets_nothing_more(store: Store, receiver: Receiver) -> None:
    endpoint = await store.webhooks.add_endpoint(
        tenant_id="t1", url=receiver.url, events=["*"], created_by="t"
    )
    await ended_run(store)
    dispatcher = Dispatcher(store, settings())
    try:
        await dispatcher.relay()
        await store.webhooks.disable_endpoint(endpoint.id)
        [delivery] = await dispatcher.send_due()
    finally:
        await dispatcher.close()
    assert delivery.status == "dead" and delivery.last_error == "the endpoint was removed"
    assert receiver.requests == []


# --------------------------------------------------------------------------- HTTP API and CLI


def _admin_key(tenant: str = "t1") -> str:
    import asyncio
    import os

    from tether.api.auth import issue_key

    async def create() -> str:
        store = await Store.open(os.environ["TETHER_DATABASE_URL"])
        try:
            _, plaintext = await issue_key(store, user_id="ops", tenant_id=tenant, scopes=["admin"])
        finally:
            await store.close()
        return plaintext

    return asyncio.run(create())


def test_the_api_manages_webhooks_and_sends_per_run_callbacks(
    example_project: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = _admin_key()
    auth = {"Authorization": f"Bearer {key}"}
    refused = Settings(webhook_poll_s=0.05)
    with TestClient(
        create_app(ServiceOptions(project=example_project, embedded_worker_concurrency=0, settings=refused))
    ) as client:
        answer = client.post("/v1/webhooks", headers=auth, json={"url": receiver.url, "events": ["run.*"]})
        assert answer.status_code == 400 and "internal address" in answer.json()["detail"]
        answer = client.post(
            "/v1/runs", headers=auth, json={"input": "Where is my order 12345?", "callback_url": receiver.url}
        )
        assert answer.status_code == 400 and "callback_url" in answer.json()["detail"]
    allowed = Settings(webhook_allow_cidrs=LOCAL, webhook_poll_s=0.05)
    app = create_app(ServiceOptions(project=example_project, embedded_worker_concurrency=2, settings=allowed))
    with TestClient(app) as client:
        answer = client.post(
            "/v1/webhooks", headers=auth, json={"url": receiver.url, "events": ["nonsense.event"]}
        )
        assert answer.status_code == 400 and "unknown event type" in answer.json()["detail"]
        created = client.post(
            "/v1/webhooks", headers=auth, json={"url": receiver.url, "events": ["run.succeeded"]}
        )
        assert created.status_code == 201, created.text
        webhook = created.json()
        assert webhook["secret"].startswith("whsec_")
        listed = client.get("/v1/webhooks", headers=auth).json()
        assert [w["webhook_id"] for w in listed] == [webhook["webhook_id"]] and listed[0]["secret"] is None
        run = client.post(
            "/v1/runs", headers=auth, json={"input": "Where is my order 12345?", "callback_url": receiver.url}
        ).json()
        assert run["callback_secret"].startswith("whsec_")
        # Both the tenant's endpoint and the run's callback hear the run succeed, each with its own secret.
        wait_until(lambda: len(receiver.requests) >= 2, message=lambda: f"received {receiver.requests}")
        secrets = {webhook["secret"], run["callback_secret"]}
        for headers, body in receiver.requests:
            assert json.loads(body)["data"]["run_id"] == run["run_id"]
            assert [s for s in secrets if signing.verify(s, headers, body, now=int(time.time()))]

        def delivered() -> list[dict[str, Any]]:
            listed = client.get("/v1/webhooks/deliveries", headers=auth).json()
            return listed if {d["status"] for d in listed} == {"succeeded"} else []

        deliveries = wait_until(delivered)  # the receiver answered; the outcome commits just after
        assert len(deliveries) == 2
        replayed = client.post(f"/v1/webhooks/deliveries/{deliveries[0]['delivery_id']}/replay", headers=auth)
        assert replayed.status_code == 202
        wait_until(lambda: len(receiver.requests) >= 3)
        test = client.post(f"/v1/webhooks/{webhook['webhook_id']}/test", headers=auth)
        assert test.status_code == 202 and test.json()["event_type"] == "webhook.test"
        wait_until(lambda: len(receiver.requests) >= 4)
        assert client.delete(f"/v1/webhooks/{webhook['webhook_id']}", headers=auth).status_code == 200
        assert client.get("/v1/webhooks", headers=auth).json() == []
        # Another tenant's admin sees none of it.
        other = {"Authorization": f"Bearer {_admin_key('t2')}"}
        assert client.get(f"/v1/webhooks/{webhook['webhook_id']}", headers=other).status_code == 404
        assert client.get("/v1/webhooks/deliveries", headers=other).json() == []
        writer_only = client.get("/v1/webhooks", headers={"Authorization": "Bearer nope"})
        assert writer_only.status_code == 401


def test_the_cli_adds_tests_lists_and_removes_webhooks(
    example_project: Path, receiver: Receiver, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = ("--project", example_project)
    refused = cli("webhook", "add", receiver.url, "--event", "run.*", *p, expect=2)
    assert "internal address" in refused.stderr
    monkeypatch.setenv("TETHER_WEBHOOK_ALLOW_CIDRS", LOCAL)
    bad = cli("webhook", "add", receiver.url, "--event", "run.nope", *p, expect=2)
    assert "unknown event type" in bad.stderr
    endpoint = cli.json(
        "webhook", "add", receiver.url, "-e", "run.*", "-e", "alert.fired", "--tenant", "t1", *p
    )
    assert endpoint["secret"].startswith("whsec_")
    sent = cli.json("webhook", "test", endpoint["id"], *p)
    assert sent["status"] == "succeeded" and sent["last_status_code"] == 200
    [(headers, body)] = receiver.requests
    assert signing.verify(endpoint["secret"], headers, body, now=int(time.time()))
    assert endpoint["id"] in cli("webhook", "list", *p).stdout
    [delivery] = cli.json("webhook", "deliveries", "--status", "succeeded", *p)
    assert delivery["event_type"] == "webhook.test"
    assert "queued again" in cli("webhook", "replay", delivery["id"], *p).stdout
    receiver.down()
    failed = cli("webhook", "test", endpoint["id"], *p, expect=1)
    assert "not delivered" in failed.stdout
    assert cli("webhook", "remove", endpoint["id"], *p).stdout.startswith("removed webhook")
    assert cli.json("webhook", "list", *p) == []
    assert "no webhook endpoint" in cli("webhook", "remove", "whe_missing", *p, expect=2).stderr


async def test_cancelling_a_queued_run_is_an_event_too(store: Store, receiver: Receiver) -> None:
    endpoint = await store.webhooks.add_endpoint(
        tenant_id="t1", url=receiver.url, events=["run.cancelled"], created_by="t"
    )
    release = await release_of(store)
    run = await store.create_run(
        release=release, user_id="u", input="x", origin=RunOrigin.API, tenant_id="t1"
    )
    await store.request_cancel(run.id)
    dispatcher = Dispatcher(store, settings())
    try:
        [delivered] = await dispatcher.tick()
    finally:
        await dispatcher.close()
    assert delivered.status == "succeeded" and delivered.endpoint_id == endpoint.id
    [(_, body)] = receiver.requests
    assert json.loads(body)["data"] | {"run_id": run.id, "status": "cancelled"} == json.loads(body)["data"]


# --------------------------------------------------------------------------- retention


async def test_pruning_deletes_finished_history_and_keeps_what_is_pending(
    store: Store, receiver: Receiver, clock: TestClock
) -> None:
    from datetime import timedelta

    from tether.webhooks.events import CALLBACK_EVENTS

    endpoint = await store.webhooks.add_endpoint(
        tenant_id="t1", url=receiver.url, events=["*"], created_by="t"
    )
    release = await release_of(store)
    run = await store.create_run(
        release=release, user_id="u", input="hi", origin=RunOrigin.API, tenant_id="t1"
    )
    callback = await store.webhooks.add_endpoint(
        tenant_id="t1", url=receiver.url, events=list(CALLBACK_EVENTS), created_by="t", run_id=run.id
    )
    assert await store.claim_run("w", 60, run_id=run.id) is not None
    await store.finish_run(run.id, "w", 60, status=RunStatus.SUCCEEDED, totals=RunTotals())
    dispatcher = Dispatcher(store, settings(webhook_retention_days=30))
    try:
        delivered = await dispatcher.tick()
        assert sorted(d.endpoint_id for d in delivered) == sorted([endpoint.id, callback.id])
        receiver.answer = 500
        await ended_run(store)  # its delivery fails once and stays pending
        [pending] = await dispatcher.tick()
        assert pending.status == "pending"
        # Nothing is old enough yet.
        assert await dispatcher.prune_if_due() == Pruned()
        assert await dispatcher.prune_if_due() is None  # not due again within the interval
        clock.advance(31 * 86400)
        pruned = await store.webhooks.prune(older_than=timedelta(days=30))
    finally:
        await dispatcher.close()
    assert pruned == Pruned(deliveries=2, events=1, callbacks=1)
    assert [d.id for d, _ in await store.webhooks.list_deliveries()] == [pending.id]
    await store.webhooks.get_event(pending.event_id)  # the pending delivery's event stays
    with pytest.raises(LookupError):
        await store.webhooks.get_event(delivered[0].event_id)
    with pytest.raises(LookupError):
        await store.webhooks.get_endpoint(callback.id)
    await store.webhooks.get_endpoint(endpoint.id)  # a subscription is never pruned
    # Once it is dead (and as old), it goes too.
    await store.webhooks.record_attempt(pending.id, status="dead", status_code=500, error="HTTP 500")
    assert await store.webhooks.prune(older_than=timedelta(days=30)) == Pruned()
    clock.advance(31 * 86400)
    assert await store.webhooks.prune(older_than=timedelta(days=30)) == Pruned(deliveries=1, events=1)
    assert await store.webhooks.list_deliveries() == []


def test_the_cli_prunes_webhook_history(example_project: Path, cli: Cli) -> None:
    p = ("--project", example_project)
    pruned = cli.json("webhook", "prune", "--days", "7", *p)
    assert pruned == {"deliveries": 0, "events": 0, "callbacks": 0, "older_than_days": 7.0}
    assert "older than 30 days" in cli("webhook", "prune", *p).stdout  # the setting's default
    assert "--days" in cli("webhook", "prune", "--days", "-1", *p, expect=2).stderr


# --------------------------------------------------------------------------- the operator's endpoint


async def test_the_alert_webhook_setting_is_an_operator_endpoint_for_every_tenant(
    store: Store, receiver: Receiver
) -> None:
    from tether.store.webhooks import OPERATOR_TENANT
    from tether.webhooks.service import keep_alert_endpoint

    operator = Settings(alert_webhook_url=receiver.url, webhook_max_attempts=1)  # loopback, NOT allowed
    endpoint = await keep_alert_endpoint(store, operator)
    assert endpoint is not None and endpoint.tenant_id == OPERATOR_TENANT
    assert endpoint.events == ["alert.*", "rollout.*"] and endpoint.secret.startswith("whsec_")
    assert await keep_alert_endpoint(store, operator) == endpoint  # every worker start: the same one
    tenant = await store.webhooks.add_endpoint(tenant_id="t1", url=receiver.url, events=["*"], created_by="t")
    for index, tenant_id in enumerate(("t1", "t2")):
        await store.telemetry.fire_alert(
            alert_id=f"alr_{index}",
            rule="completion rate low",
            tenant_id=tenant_id,
            severity="warning",
            metric="completion_rate",
            value=0.5,
            threshold=0.85,
            message="low",
        )
    await store.webhooks.publish(type="rollout.rolled_back", tenant_id=OPERATOR_TENANT, data={"to": "v1"})
    await ended_run(store, tenant="t2")  # a run event: not the operator endpoint's business
    # The same loopback URL added by hand (not from the setting) is refused like any other.
    by_hand = await store.webhooks.add_endpoint(
        tenant_id=OPERATOR_TENANT, url=receiver.url.replace("/hook", "/other"), events=["*"], created_by="t"
    )
    dispatcher = Dispatcher(store, operator)
    try:
        sent = await dispatcher.tick()
    finally:
        await dispatcher.close()
    by_endpoint: dict[str, list[str]] = {}
    for delivery in sent:
        by_endpoint.setdefault(delivery.endpoint_id, []).append(delivery.status)
    assert by_endpoint[endpoint.id] == ["succeeded"] * 3  # t1's and t2's alerts, the rollback
    assert by_endpoint[tenant.id] == ["dead"]  # t1's own alert; loopback not allowed for a tenant
    assert set(by_endpoint[by_hand.id]) == {"dead"}
    dead = [d for d in sent if d.endpoint_id == by_hand.id]
    assert all("internal" in (d.last_error or "") for d in dead)
    paths = [headers for headers, _ in receiver.requests]
    types = sorted(json.loads(body)["type"] for _, body in receiver.requests)
    assert types == ["alert.fired", "alert.fired", "rollout.rolled_back"] and len(paths) == 3
    for headers, body in receiver.requests:
        assert signing.verify(endpoint.secret, headers, body, now=int(time.time()))
    # A tenant lists (and may replay) its own deliveries, never the operator's copy of its events.
    assert {d.endpoint_id for d, _ in await store.webhooks.list_deliveries(tenant_id="t1")} == {tenant.id}

    # Changing the setting moves the endpoint; unsetting it removes it.
    moved = await keep_alert_endpoint(store, Settings(alert_webhook_url=receiver.url + "/v2"))
    assert moved is not None and moved.id != endpoint.id
    assert (await store.webhooks.get_endpoint(endpoint.id)).disabled_at is not None
    assert await keep_alert_endpoint(store, Settings(alert_webhook_url=None)) is None
    assert (await store.webhooks.get_endpoint(moved.id)).disabled_at is not None
    with pytest.raises(ValueError, match="TETHER_ALERT_WEBHOOK_URL"):
        await keep_alert_endpoint(store, Settings(alert_webhook_url="ftp://alerts.example/hook"))
    with pytest.raises(ValueError, match="TETHER_ALERT_WEBHOOK_SECRET"):
        await keep_alert_endpoint(
            store, Settings(alert_webhook_url=receiver.url, alert_webhook_secret="nope")
        )


async def test_no_api_key_can_belong_to_the_operator_endpoint_tenant(store: Store) -> None:
    """Tenant `*` owns the operator-level endpoints: a key of that tenant would reach them over the API."""
    from tether.api.auth import issue_key

    with pytest.raises(ValueError, match="reserved"):
        await issue_key(store, user_id="ops", tenant_id="*", scopes=["operator"])
    record, _ = await issue_key(store, user_id="ops", tenant_id="acme", scopes=["operator"])
    assert record.tenant_id == "acme"
