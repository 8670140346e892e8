"""GET /metrics: who may read it, what it says after real runs, and a real Prometheus scraping it."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from conftest import SERVICES_REQUIRED, ProjectFactory
from fastapi.testclient import TestClient
from observe_agent import POLICY, PRICES, TOOLS
from prometheus_client.parser import text_string_to_metric_families
from timing import wait_until

from tether.api.app import ServiceOptions, create_app
from tether.api.auth import issue_key
from tether.observe.service import Telemetry
from tether.rollout.releases import working_copy_release
from tether.runtime.service import Runtime
from tether.settings import Settings
from tether.store.records import RunOrigin
from tether.store.repository import Store

FINAL = frozenset({"succeeded", "failed", "cancelled", "escalated", "budget_exhausted"})


def issue(scopes: list[str], user: str = "ops", tenant: str = "t1") -> str:
    async def create() -> str:
        store = await Store.open(os.environ["TETHER_DATABASE_URL"])
        try:
            _, plaintext = await issue_key(store, user_id=user, tenant_id=tenant, scopes=scopes)
        finally:
            await store.close()
        return plaintext

    return asyncio.run(create())


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def project(make_project: ProjectFactory) -> Path:
    return make_project(tools=TOOLS, policy=POLICY, name="obs-agent", extra=PRICES)


@contextmanager
def serve(project: Path, *, client: tuple[str, int] = ("testclient", 50000)) -> Iterator[TestClient]:
    app = create_app(ServiceOptions(project=project, embedded_worker_concurrency=2, settings=Settings()))
    with TestClient(app, client=client) as test_client:
        yield test_client


def run_to_end(client: TestClient, key: str, text: str) -> dict[str, Any]:
    response = client.post("/v1/runs", json={"input": text}, headers=bearer(key))
    assert response.status_code == 202, response.text
    run_id = response.json()["run_id"]

    def settled() -> dict[str, Any] | None:
        run: dict[str, Any] = client.get(f"/v1/runs/{run_id}", headers=bearer(key)).json()
        return run if run["status"] in FINAL or run["status"] == "waiting_for_approval" else None

    return wait_until(settled, message=f"run {run_id} settles")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, keyed by (name, sorted labels); parsing fails on bad syntax."""
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def declared(text: str) -> set[str]:
    """Every series name an exposition declares, also for metrics without samples yet."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    return {
        family.name + suffix
        for family in text_string_to_metric_families(text)
        for suffix in suffixes.get(family.type, ("",))
    }


def value(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_need_a_key_with_the_metrics_or_admin_scope(project: Path) -> None:
    runner, metrics_key, admin = issue(["runs:read", "runs:write"]), issue(["metrics"]), issue(["admin"])
    with serve(project) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers=bearer(runner)).status_code == 403
        for key in (metrics_key, admin):
            response = client.get("/metrics", headers=bearer(key))
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        # The metrics scope reads metrics and nothing else.
        assert client.get("/v1/runs", headers=bearer(metrics_key)).status_code == 403


def test_metrics_access_can_be_opened_to_loopback_clients_or_everyone(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TETHER_METRICS_ACCESS", "localhost")
    with serve(project, client=("127.0.0.1", 50000)) as client:
        assert client.get("/metrics").status_code == 200
    with serve(project, client=("10.1.2.3", 50000)) as client:
        assert client.get("/metrics").status_code == 401
    monkeypatch.setenv("TETHER_METRICS_ACCESS", "open")
    with serve(project, client=("10.1.2.3", 50000)) as client:
        assert client.get("/metrics").status_code == 200


def test_metrics_count_what_the_runs_did(project: Path) -> None:
    key, metrics_key = issue(["runs:read", "runs:write", "approvals"]), issue(["metrics"])
    with serve(project) as client:
        ok = run_to_end(client, key, 'lookup {"order": "1"}')
        run_to_end(client, key, 'lookup {"order": "2"}')
        run_to_end(client, key, 'explode {"reason": "x"}')
        run_to_end(client, key, "escalate")
        parked = run_to_end(client, key, 'refund {"order": "3"}')
        assert parked["status"] == "waiting_for_approval"
        feedback = client.post(f"/v1/runs/{ok['run_id']}/feedback", json={"score": -1}, headers=bearer(key))
        assert feedback.status_code == 201
        text = client.get("/metrics", headers=bearer(metrics_key)).text

    found = samples(text)
    release = ok["release_version"]
    assert value(found, "tether_runs_started_total", release=release) == 5
    assert value(found, "tether_runs_finished_total", release=release, status="succeeded") == 3
    assert value(found, "tether_runs_finished_total", release=release, status="escalated") == 1
    assert value(found, "tether_escalations_total", release=release) == 1
    assert value(found, "tether_run_steps_count", release=release) == 4
    assert value(found, "tether_run_steps_sum", release=release) == 3 + 3 + 3 + 2
    assert value(found, "tether_tool_calls_total", tool="lookup", status="succeeded") == 2
    assert value(found, "tether_tool_calls_total", tool="explode", status="failed") == 1
    assert value(found, "tether_tool_calls_total", tool="escalate_to_human", status="handed_off") == 1
    assert value(found, "tether_tool_errors_total", tool="explode") == 1
    assert value(found, "tether_tool_latency_seconds_count", tool="lookup", status="succeeded") == 2
    model = "scripted:test-v1"
    assert value(found, "tether_model_latency_seconds_count", model=model, outcome="ok") == 2 + 2 + 2 + 1 + 1
    assert value(found, "tether_model_tokens_total", release=release, model=model, type="input") > 0
    assert value(found, "tether_model_cost_usd_total", release=release, model=model) > 0
    assert value(found, "tether_approvals_requested_total", kind="gate", tool="refund") == 1
    # Gauges read from the database at scrape time.
    assert value(found, "tether_approvals_pending") == 1
    assert value(found, "tether_runs_in_progress", status="waiting_for_approval") == 1
    assert value(found, "tether_queue_depth") == 0
    assert value(found, "tether_workers") == 1
    assert value(found, "tether_feedback_total", release=release, score="-1") == 1
    assert value(found, "tether_feedback_score_mean", release=release) == -1
    assert any(name == "tether_worker_heartbeat_age_seconds" for name, _ in found)
    # Every series the Grafana dashboard plots is one this endpoint exposes.
    assert dashboard_metrics() <= declared(text), dashboard_metrics() - declared(text)


def test_known_series_exist_at_zero_before_the_first_run(project: Path) -> None:
    """`rate()` and `increase()` need a sample before the first increment, so the first failure,
    refusal or approval an alert watches for is not read as 0."""
    metrics_key = issue(["metrics"])
    with serve(project) as client:
        found = samples(client.get("/metrics", headers=bearer(metrics_key)).text)
    (release,) = {dict(labels)["release"] for name, labels in found if name == "tether_runs_started_total"}
    present = set(found)

    def zero(name: str, **labels: str) -> bool:
        key = (name, tuple(sorted(labels.items())))
        return key in present and found[key] == 0.0

    assert zero("tether_runs_started_total", release=release)
    for status in ("succeeded", "failed", "cancelled", "escalated", "budget_exhausted"):
        assert zero("tether_runs_finished_total", release=release, status=status), status
    assert zero("tether_escalations_total", release=release)
    for tool in ("lookup", "explode", "refund"):
        assert zero("tether_tool_refusals_total", release=release, tool=tool), tool
        assert zero("tether_tool_errors_total", tool=tool), tool
        for status in ("succeeded", "failed", "refused"):
            assert zero("tether_tool_calls_total", tool=tool, status=status), (tool, status)
    assert zero("tether_tool_calls_total", tool="escalate_to_human", status="handed_off")
    assert zero("tether_approvals_requested_total", kind="gate", tool="refund")
    assert zero("tether_approvals_requested_total", kind="retry", tool="refund")  # a write, not idempotent
    assert ("tether_approvals_requested_total", (("kind", "gate"), ("tool", "lookup"))) not in present
    assert zero("tether_model_tokens_total", release=release, model="scripted:test-v1", type="input")
    assert zero("tether_model_cost_usd_total", release=release, model="scripted:test-v1")


DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "tether-dashboard.json"


def dashboard_queries() -> list[str]:
    """The dashboard's PromQL, with Grafana's interval variable made concrete."""
    board = json.loads(DASHBOARD.read_text())
    return [t["expr"].replace("$__rate_interval", "1m") for p in board["panels"] for t in p["targets"]]


def dashboard_metrics() -> set[str]:
    return {name for query in dashboard_queries() for name in re.findall(r"\btether_[a-z_]+", query)}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def real_server(project: Path) -> Iterator[str]:
    """The service on a real port (uvicorn in a thread), as Prometheus needs."""
    app = create_app(ServiceOptions(project=project, embedded_worker_concurrency=2, settings=Settings()))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: server.started or not thread.is_alive(), message="the server starts")
        assert server.started, "the server did not start"
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


class Prometheus:
    """A real Prometheus scraping the given targets every second."""

    def __init__(self, binary: str, tmp_path: Path, targets: list[str], key: str) -> None:
        self.port = _free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            json.dumps(  # JSON is YAML
                {
                    # A scrape may take seconds on a busy machine; a timed-out one would read as down.
                    "global": {"scrape_interval": "5s", "scrape_timeout": "5s"},
                    "scrape_configs": [
                        {
                            "job_name": "tether",
                            "authorization": {"type": "Bearer", "credentials": key},
                            "static_configs": [{"targets": targets}],
                        }
                    ],
                }
            )
        )
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def query(self, promql: str) -> dict[str, Any]:
        answer: dict[str, Any] = httpx.get(
            f"http://127.0.0.1:{self.port}/api/v1/query", params={"query": promql}, timeout=60
        ).json()
        return answer

    def wait_for(self, promql: str, check: Any, what: str) -> list[Any]:
        """The query's result once `check(result)` holds (a generous deadline: scrapes are slow when
        the machine is busy)."""
        last: list[Any] = []

        def shown() -> list[Any] | None:
            nonlocal last
            try:
                last = self.query(promql)["data"]["result"]
            except (httpx.HTTPError, KeyError, ValueError):
                last = []
            return last if check(last) else None

        found: list[Any] = wait_until(
            shown, timeout=240, interval=0.2, message=lambda: f"Prometheus shows {what}: {promql} -> {last}"
        )
        return found

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def _values(result: list[Any], label: str) -> dict[str, float]:
    return {r["metric"].get(label, ""): float(r["value"][1]) for r in result}


def test_a_real_prometheus_scrapes_two_nodes_and_the_dashboard_reads_right(
    project: Path, tmp_path: Path
) -> None:
    """Two API nodes on one database: counters sum, database gauges count once, and the series
    alerts watch exist at zero before their first increment."""
    binary = shutil.which("prometheus")
    if binary is None:
        if SERVICES_REQUIRED:
            pytest.fail("prometheus is required (TETHER_REQUIRE_SERVICES=1): apt-get install -y prometheus")
        pytest.skip("no prometheus binary (Debian package `prometheus`)")
    key, metrics_key = issue(["runs:read", "runs:write"]), issue(["metrics"])
    reviewer = issue(["runs:read", "approvals"], user="reviewer")
    with real_server(project) as first, real_server(project) as second:
        targets = [url.removeprefix("http://") for url in (first, second)]
        prometheus = Prometheus(binary, tmp_path, targets, metrics_key)
        try:
            # Created at zero at start-up on both nodes, before any run (item: rate() sees the first one).
            refusals = 'tether_tool_refusals_total{job="tether",tool="refund"}'
            prometheus.wait_for(
                refusals, lambda r: sorted(_values(r, "instance").values()) == [0.0, 0.0], "refusals at 0"
            )
            with httpx.Client(base_url=first, headers=bearer(key), timeout=60) as http:
                created = http.post("/v1/runs", json={"input": 'lookup {"order": "9"}', "wait": 30})
                assert created.status_code == 200, created.text
                ok = created.json()
                release = ok["release_version"]
                parked = http.post("/v1/runs", json={"input": 'refund {"order": "3"}', "wait": 30}).json()
                assert parked["status"] == "waiting_for_approval", parked
                feedback = http.post(f"/v1/runs/{ok['run_id']}/feedback", json={"score": 1})
                assert feedback.status_code == 201, feedback.text
            with httpx.Client(base_url=second, headers=bearer(reviewer), timeout=60) as http:
                (pending,) = [a for a in http.get("/v1/approvals").json() if a["run_id"] == parked["run_id"]]
                decided = http.post(
                    f"/v1/runs/{parked['run_id']}/approvals/{pending['approval_id']}",
                    json={"decision": "reject", "reason": "not today"},
                )
                assert decided.status_code < 300, decided.text
            # The first refusal shows in increase(), as an alert on it needs.
            prometheus.wait_for(
                'sum(increase(tether_tool_refusals_total{tool="refund"}[1m]))',
                lambda r: bool(r) and float(r[0]["value"][1]) > 0,
                "an increase of the refusals",
            )
            finished = prometheus.wait_for(
                'tether_runs_finished_total{job="tether",status="succeeded"}',
                lambda r: sum(_values(r, "instance").values()) >= 2,
                "two succeeded runs",
            )
            assert {r["metric"]["release"] for r in finished} == {release}
            up = prometheus.query("up")["data"]["result"]
            assert [float(r["value"][1]) for r in up if r["metric"]["job"] == "tether"] == [1.0, 1.0]
            queries = dashboard_queries()
            for promql in queries:  # Prometheus accepts every query the dashboard plots
                assert prometheus.query(promql)["status"] == "success", promql
            # "Feedback given": each node reports the same database count; one feedback reads 1, not 2.
            (given,) = [q for q in queries if "tether_feedback_total" in q]
            feedback_series = prometheus.wait_for(given, bool, "feedback")
            assert [(r["metric"], float(r["value"][1])) for r in feedback_series] == [
                ({"release": release, "score": "1"}, 1.0)
            ]
            # "Tool error rate": 0 %, not "No data", before the first error.
            (error_rate,) = [q for q in queries if "tether_tool_errors_total" in q]
            rates = _values(prometheus.wait_for(error_rate, bool, "a tool error rate"), "tool")
            assert rates["lookup"] == 0.0
        finally:
            prometheus.close()


async def test_a_worker_serves_its_own_counters_and_tracing_can_be_switched_off(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TETHER_TRACING", "false")
    settings = Settings()
    store = await Store.open(str(settings.database_url))
    telemetry = Telemetry(store, settings)
    try:
        release = await working_copy_release(store, project)
        runtime = Runtime(store, settings, data_dir=tmp_path, observer=telemetry.observer)
        run = await runtime.submit(release, origin=RunOrigin.API, user_id="u", input='lookup {"order": "4"}')
        assert (await runtime.execute(run.id)).status == "succeeded"
        port = _free_port()
        telemetry.serve_metrics(port)
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
        found = samples(text)
        assert value(found, "tether_runs_finished_total", release=release.version, status="succeeded") == 1
        assert value(found, "tether_tool_calls_total", tool="lookup", status="succeeded") == 1
        assert await store.telemetry.list_spans(run_id=run.id) == []  # TETHER_TRACING=false
    finally:
        await telemetry.close()
        await store.close()
