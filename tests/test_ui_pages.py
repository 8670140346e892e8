"""The dashboard through HTTP (FastAPI's TestClient): login and sessions, scopes, tenants, CSRF,
every page rendering real data, the approvals inbox deciding runs, and the SQL aggregates behind
the health page on SQLite and PostgreSQL.

The end-to-end browser tests are in `test_ui_browser.py`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Cli
from fastapi.testclient import TestClient
from itsdangerous import URLSafeTimedSerializer
from timing import wait_until
from ui_helpers import TRAFFIC, csrf_from, write_shop_project

from tether.api.app import ServiceOptions, create_app
from tether.api.auth import issue_key
from tether.rollout.releases import working_copy_release
from tether.settings import Settings
from tether.store.records import RunOrigin, RunStatus, RunTotals, StepDraft, StepKind, StepOutcome, StepStatus
from tether.store.repository import Store
from tether.ui import session as sessions

FINAL = {"succeeded", "failed", "cancelled", "escalated", "budget_exhausted"}


# --------------------------------------------------------------------------- helpers


def issue(user: str, tenant: str, scopes: list[str]) -> str:
    async def create() -> str:
        store = await Store.open(os.environ["TETHER_DATABASE_URL"])
        try:
            _, plaintext = await issue_key(store, user_id=user, tenant_id=tenant, scopes=scopes)
        finally:
            await store.close()
        return plaintext

    return asyncio.run(create())


@pytest.fixture
def shop(tmp_path: Path, cli: Cli) -> Path:
    """The shop agent with two releases: v1 (a few CLI runs, tenant `default`) and v2 (served)."""
    project = write_shop_project(tmp_path / "shop")
    cli("release", "create", "--project", project, "--version", "v1")
    for text in ("lookup 1", "lookup broken"):
        cli("run", "--project", project, "--user", "u1", "--release", "v1", text)
    (project / "prompts" / "system.md").write_text("You are a concise shop assistant.")
    cli("release", "create", "--project", project, "--version", "v2")
    return project


@contextmanager
def serve(project: Path, *, workers: int = 2) -> Iterator[TestClient]:
    options = ServiceOptions(
        project=project, release="v2", embedded_worker_concurrency=workers, settings=Settings()
    )
    with TestClient(create_app(options), follow_redirects=False) as client:
        yield client


def login(client: TestClient, key: str, next_path: str = "/ui/health") -> httpx.Response:
    form = client.get("/ui/login", params={"next": next_path})
    assert form.status_code == 200
    return client.post("/ui/login", data={"key": key, "csrf": csrf_from(form.text), "next": next_path})


def submit(client: TestClient, key: str, text: str) -> dict[str, Any]:
    answer = client.post(
        "/v1/runs", json={"input": text, "wait": 60}, headers={"Authorization": f"Bearer {key}"}
    )
    assert answer.status_code in (200, 202), answer.text
    run: dict[str, Any] = answer.json()
    return run


def settled(client: TestClient, key: str, run_id: str, statuses: set[str]) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        run: dict[str, Any] = client.get(
            f"/v1/runs/{run_id}", headers={"Authorization": f"Bearer {key}"}
        ).json()
        return run if run["status"] in statuses else None

    return wait_until(reached, message=f"run {run_id} reaches {statuses}")


def traffic(client: TestClient, key: str) -> dict[str, dict[str, Any]]:
    """Every TRAFFIC input as a run, settled; keyed by input."""
    runs = {}
    for text, expected in TRAFFIC:
        run = submit(client, key, text)
        runs[text] = settled(client, key, run["run_id"], {expected})
    return runs


def set_session(client: TestClient, value: str) -> None:
    """Replace the session cookie in the client's jar (same domain and path as the server set it)."""
    cookie = next(c for c in client.cookies.jar if c.name == sessions.SESSION_COOKIE)
    client.cookies.set(cookie.name, value, domain=cookie.domain, path=cookie.path)


def card(html: str, label: str) -> str:
    """The value shown on one health card."""
    match = re.search(
        rf'data-card="{re.escape(label)}">\s*<span class="label">[^<]*</span>\s*<span class="value">([^<]*)<',
        html,
    )
    assert match, f"no card {label!r}"
    return match.group(1)


# --------------------------------------------------------------------------- login and sessions


def test_pages_redirect_to_login_and_a_key_logs_in(shop: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    key = issue("ops", "default", ["runs:read", "approvals"])
    with serve(shop, workers=0) as client:
        for page in ("/ui/health", "/ui/runs?status=failed", "/ui/approvals", "/ui/releases"):
            answer = client.get(page)
            assert answer.status_code == 303, page
            assert answer.headers["location"].startswith("/ui/login?next=")
        assert client.get("/ui").headers["location"] == "/ui/health"

        form = client.get("/ui/login")
        login_cookie = form.headers["set-cookie"]
        assert "HttpOnly" in login_cookie and "SameSite=strict" in login_cookie

        wrong = login(client, "tk_0123456789abcdef_notarealkeynotarealkey")
        assert wrong.status_code == 401
        assert "not valid" in wrong.text
        assert "tether_session" not in wrong.headers.get("set-cookie", "")

        done = login(client, key, "/ui/runs?status=failed")
        assert done.status_code == 303
        assert done.headers["location"] == "/ui/runs?status=failed"
        cookie = next(c for c in done.headers.get_list("set-cookie") if c.startswith("tether_session="))
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
        secret = key.split("_", 2)[2]
        assert secret not in cookie and key not in cookie  # the key never leaves the login form
        page = client.get("/ui/health")
        assert page.status_code == 200
        assert "Agent health" in page.text
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert "POST" in caplog.text and "/ui/login" in caplog.text  # the requests were logged...
    assert key.split("_", 2)[2] not in caplog.text  # ...without the key's secret


def test_login_refuses_open_redirects_and_forged_forms(shop: Path) -> None:
    key = issue("ops", "default", ["runs:read"])
    with serve(shop, workers=0) as client:
        for evil in ("https://evil.example/", "//evil.example/ui/", "/v1/runs", "/ui\\..\\x"):
            answer = login(client, key, evil)
            assert answer.headers["location"] == "/ui/health", evil
        client.cookies.clear()
        client.get("/ui/login")
        forged = client.post("/ui/login", data={"key": key, "csrf": "guess", "next": "/ui/health"})
        assert forged.status_code == 403
        assert "tether_session" not in forged.headers.get("set-cookie", "")


def test_tampered_or_revoked_sessions_go_back_to_login(shop: Path, cli: Cli) -> None:
    key = issue("ops", "default", ["runs:read"])
    with serve(shop, workers=0) as client:
        login(client, key)
        good = next(c.value for c in client.cookies.jar if c.name == sessions.SESSION_COOKIE)
        assert good
        payload, issued, signature = good.split(".")
        flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
        set_session(client, f"{payload}.{issued}.{flipped}")
        assert client.get("/ui/health").status_code == 303
        set_session(client, "garbage")
        assert client.get("/ui/health").status_code == 303

        set_session(client, good)
        assert client.get("/ui/health").status_code == 200
        key_id = "key_" + key.split("_")[1]
        cli("keys", "revoke", "--project", shop, key_id)
        assert client.get("/ui/health").status_code == 303
        polled = client.get("/ui/runs/whatever/live", headers={"HX-Request": "true"})
        assert polled.status_code == 401
        assert polled.headers["hx-redirect"].startswith("/ui/login")


async def test_sessions_need_the_server_secret_and_a_live_server_side_record(tmp_path: Path) -> None:
    now = [datetime(2026, 11, 30, 12, 0, tzinfo=UTC)]
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 's.db'}", clock=lambda: now[0])
    secret = "s3cret-s3cret-s3cret"
    try:
        record, _ = await issue_key(store, user_id="u", tenant_id="t", scopes=["runs:read"])
        cookie = await sessions.start(store, record, secret, lifetime_s=3600)
        found = await sessions.check(store, cookie, secret, max_age_s=3600)
        assert found is not None and found.caller.user_id == "u" and found.csrf_token
        assert await sessions.check(store, cookie, "another-secret-entirely", max_age_s=3600) is None
        # Correctly signed, but for a session the server never started: refused.
        minted = URLSafeTimedSerializer(secret, salt="tether.ui.session").dumps({"sid": "made-up"})
        assert await sessions.check(store, minted, secret, max_age_s=3600) is None
        now[0] += timedelta(seconds=3601)  # the server-side record expires by the store's clock
        assert await sessions.check(store, cookie, secret, max_age_s=3600) is None
        now[0] -= timedelta(seconds=3601)
        assert found == await sessions.check(store, cookie, secret, max_age_s=3600)
        await sessions.end(store, found)
        assert await sessions.check(store, cookie, secret, max_age_s=3600) is None
    finally:
        await store.close()


def test_scopes_decide_which_pages_open(shop: Path) -> None:
    writer = issue("app", "default", ["runs:write"])
    reader = issue("viewer", "default", ["runs:read"])
    with serve(shop, workers=0) as client:
        login(client, writer)
        answer = client.get("/ui/health")
        assert answer.status_code == 403
        assert "runs:read" in answer.text
        client.cookies.clear()
        login(client, reader)
        for page in ("/ui/health", "/ui/runs", "/ui/releases"):
            assert client.get(page).status_code == 200, page
        refused = client.get("/ui/approvals")
        assert refused.status_code == 403
        assert "approvals scope" in refused.text


# --------------------------------------------------------------------------- pages with data


def test_every_page_renders_real_data_and_drills_down(shop: Path) -> None:
    key = issue("ops", "default", ["runs:write", "runs:read", "approvals"])
    with serve(shop) as client:
        runs = traffic(client, key)
        login(client, key)

        health = client.get("/ui/health?window=24h")
        assert health.status_code == 200
        # 10 runs: 2 CLI runs on v1 (both succeed), 8 API runs on v2.
        assert card(health.text, "Runs") == "10"
        assert card(health.text, "Failed runs") == "1"
        assert card(health.text, "Completion rate") == "77.8%"  # 7 of 9 finished runs succeeded
        assert card(health.text, "Escalation rate") == "11.1%"
        assert card(health.text, "Active runs") == "1"  # the refund waiting for approval
        assert 'id="series"' in health.text
        for release in ("v1", "v2"):
            assert f'/ui/runs?release={release}&amp;window=24h">{release}</a>' in health.text
        assert client.get("/ui/health?window=2y").status_code == 400

        # Drill down: the failed-runs card links to the filtered runs page, which links to the run.
        failed_link = re.search(
            r'href="([^"]*status=failed[^"]*)" title="[^"]*" data-card="Failed runs"', health.text
        )
        assert failed_link
        listing = client.get(failed_link.group(1).replace("&amp;", "&"))
        assert listing.status_code == 200
        failed_id = runs["please help, outage?"]["run_id"]
        assert f"/ui/runs/{failed_id}" in listing.text
        assert listing.text.count('href="/ui/runs/run_') == 1

        trace = client.get(f"/ui/runs/{failed_id}")
        assert trace.status_code == 200
        assert "upstream model unavailable" in trace.text
        assert 'data-span="invoke_agent"' in trace.text and 'data-span="chat"' in trace.text
        assert "hx-get" not in trace.text  # final: no live refresh

        # The tool-error drill-down finds both runs whose lookup failed (v1 and v2).
        tool_errors = client.get("/ui/runs?window=24h&tool_failed=1")
        assert tool_errors.text.count('href="/ui/runs/run_') == 2
        broken = runs["lookup broken"]["run_id"]
        step_tree = client.get(f"/ui/runs/{broken}").text
        assert "order service unavailable (HTTP 503)" in step_tree
        assert "lookup_order" in step_tree and "s-failed" in step_tree
        assert 'data-span="execute_tool"' in step_tree

        parked = runs["refund 10042"]["run_id"]
        live = client.get(f"/ui/runs/{parked}")
        assert f'hx-get="/ui/runs/{parked}/live"' in live.text
        assert "waiting_for_approval" in live.text
        fragment = client.get(f"/ui/runs/{parked}/live")
        assert fragment.status_code == 200 and fragment.text.lstrip().startswith('<div id="run-live"')

        releases = client.get("/ui/releases")
        assert releases.status_code == 200
        assert re.search(r"<td>v2</a></td>|>v2</a>", releases.text)
        assert "scripted:shop-v1" in releases.text and "serving" in releases.text

        inbox = client.get("/ui/approvals")
        assert inbox.status_code == 200
        assert "issue_refund" in inbox.text and parked in inbox.text


def test_runs_search_filters_paginate_and_refuse_bad_input(shop: Path) -> None:
    key = issue("ops", "default", ["runs:write", "runs:read"])
    with serve(shop) as client:
        runs = traffic(client, key)
        login(client, key)

        def ids(query: str) -> list[str]:
            page = client.get("/ui/runs" + query)
            assert page.status_code == 200, page.text
            return re.findall(r'href="/ui/runs/(run_[0-9a-f]+)"', page.text)

        assert len(ids("")) == 10
        assert ids("?status=escalated") == [runs["I want a manager now"]["run_id"]]
        assert len(ids("?release=v1")) == 2
        assert len(ids("?tool=lookup_order")) == 6
        assert ids("?tool=lookup_order&tool_failed=1&release=v2") == [runs["lookup broken"]["run_id"]]
        assert ids("?user=nobody") == []
        assert len(ids("?min_cost=0.0000001")) == 9  # the failed run never got a model answer: free
        assert ids("?max_cost=0") == [runs["please help, outage?"]["run_id"]]
        assert len(ids("?min_latency_ms=0&status=succeeded")) == 7
        future = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
        assert ids(f"?since={future}") == []

        first = client.get("/ui/runs?limit=3&release=v2")
        page_one = re.findall(r'href="/ui/runs/(run_[0-9a-f]+)"', first.text)
        assert len(page_one) == 3
        following = re.search(r'href="(/ui/runs\?[^"]*cursor=[^"]+)" rel="next"', first.text)
        assert following
        second = client.get(following.group(1).replace("&amp;", "&"))
        page_two = re.findall(r'href="/ui/runs/(run_[0-9a-f]+)"', second.text)
        assert len(page_two) == 3 and not set(page_one) & set(page_two)

        for bad, message in (
            ("?min_cost=abc", "minimum cost must be a number"),
            ("?status=exploded", "unknown status"),
            ("?since=yesterday", "since must be a date"),
            ("?window=2y", "unknown time window"),
            ("?cursor=%25%25", "invalid cursor"),
            ("?limit=0", "limit"),
            ("?since=2026-01-02T00:00&until=2026-01-01T00:00", "since must be before until"),
        ):
            answer = client.get("/ui/runs" + bad)
            assert answer.status_code == 400, bad
            assert message in answer.text, (bad, answer.text[:500])


# --------------------------------------------------------------------------- approvals and CSRF


def test_approving_and_rejecting_from_the_inbox_resumes_the_run(shop: Path) -> None:
    key = issue("app", "default", ["runs:write", "runs:read"])
    reviewer = issue("ops", "default", ["runs:read", "approvals"])  # four eyes: not the run's own key
    with serve(shop) as client:
        first = submit(client, key, "refund 10042")
        second = submit(client, key, "refund 10043")
        for run in (first, second):
            settled(client, key, run["run_id"], {"waiting_for_approval"})
        login(client, reviewer, "/ui/approvals")
        inbox = client.get("/ui/approvals")
        token = csrf_from(inbox.text)
        approvals = dict(re.findall(r'action="/ui/approvals/(run_[0-9a-f]+)/(apr_[0-9a-f]+)"', inbox.text))
        assert set(approvals) == {first["run_id"], second["run_id"]}

        no_reason = client.post(
            f"/ui/approvals/{second['run_id']}/{approvals[second['run_id']]}",
            data={"csrf": token, "decision": "reject"},
        )
        assert no_reason.status_code == 400

        ok = client.post(
            f"/ui/approvals/{first['run_id']}/{approvals[first['run_id']]}",
            data={"csrf": token, "decision": "approve", "reason": "customer is a regular"},
        )
        assert ok.status_code == 303
        assert "outcome=approved" in ok.headers["location"]
        done = settled(client, key, first["run_id"], FINAL)
        assert done["status"] == "succeeded" and "refunded" in done["output"]

        no = client.post(
            f"/ui/approvals/{second['run_id']}/{approvals[second['run_id']]}",
            data={"csrf": token, "decision": "reject", "reason": "duplicate request"},
        )
        assert no.status_code == 303
        rejected = settled(client, key, second["run_id"], FINAL)
        assert rejected["status"] == "succeeded" and "refunded" not in rejected["output"]

        again = client.post(
            f"/ui/approvals/{first['run_id']}/{approvals[first['run_id']]}",
            data={"csrf": token, "decision": "approve"},
        )
        assert again.status_code == 409
        assert "already decided" in again.text
        page = client.get(f"/ui/runs/{second['run_id']}")
        assert "duplicate request" in page.text and "rejected" in page.text
        assert client.get("/ui/approvals").text.count("data-approval=") == 0
        health = client.get("/ui/health").text
        assert "Safety incidents" not in health  # nothing produces them until guardrails exist


def test_the_dashboard_counts_production_and_filters_runs_by_origin(shop: Path, cli: Cli) -> None:
    """Health and the runs page show api and cli runs; eval runs appear only when asked for."""
    suite = shop / "evals" / "smoke.yaml"
    suite.parent.mkdir(exist_ok=True)
    suite.write_text(
        "cases:\n  - {id: one, input: lookup 1, expect: {status: succeeded}}\n"
        "  - {id: two, input: lookup broken, expect: {status: succeeded}}\n"
    )
    ran = cli.json("eval", "run", "--project", shop, "--release", "v2", "--trials", "2")
    eval_runs = {run_id for case in ran["cases"] for run_id in case["run_ids"]}
    assert len(eval_runs) == 4
    key = issue("ops", "default", ["runs:read"])
    with serve(shop, workers=0) as client:
        login(client, key)
        health = client.get("/ui/health").text
        assert card(health, "Runs") == "2"  # the two CLI runs of the fixture, not the four eval trials
        runs = client.get("/ui/runs").text
        assert runs.count('href="/ui/runs/run_') == 2 and "<td>eval</td>" not in runs
        assert "<option selected>production</option>" in runs
        evals = client.get("/ui/runs", params={"origin": "eval"}).text
        assert evals.count('href="/ui/runs/run_') == 4 and evals.count("<td>eval</td>") == 4
        assert client.get("/ui/runs", params={"origin": "all"}).text.count('href="/ui/runs/run_') == 6
        bad = client.get("/ui/runs", params={"origin": "nightly"})
        assert bad.status_code == 400 and "unknown origin &#39;nightly&#39;" in bad.text
        one = re.search(r'href="/ui/runs/(run_[0-9a-f]+)"', evals)
        assert one is not None
        page = client.get(f"/ui/runs/{one[1]}").text
        assert one[1] in eval_runs and '<dd id="run-origin">eval</dd>' in page
        # Guardrail decisions show on the run page; the runs list offers no guardrail filter yet.
        assert 'name="guardrail"' not in runs and 'name="incident"' not in runs
        assert "safety incident" not in runs.lower() and ">blocked<" in runs  # a status to filter by
        assert 'id="no-guardrails"' in page and "incidents" not in health


def test_decisions_without_the_csrf_token_or_from_another_origin_are_refused(shop: Path) -> None:
    key = issue("app", "default", ["runs:write", "runs:read"])
    reviewer = issue("ops", "default", ["runs:read", "approvals"])  # four eyes: not the run's own key
    with serve(shop) as client:
        run = submit(client, key, "refund 10042")
        settled(client, key, run["run_id"], {"waiting_for_approval"})
        login(client, reviewer, "/ui/approvals")
        inbox = client.get("/ui/approvals")
        token = csrf_from(inbox.text)
        approval = re.findall(r'action="/ui/approvals/run_[0-9a-f]+/(apr_[0-9a-f]+)"', inbox.text)[0]
        url = f"/ui/approvals/{run['run_id']}/{approval}"
        for data, headers in (
            ({"decision": "approve"}, {}),
            ({"decision": "approve", "csrf": "x" * 64}, {}),
            ({"decision": "approve", "csrf": token}, {"Origin": "https://evil.example"}),
            ({"decision": "approve", "csrf": token}, {"Origin": "null"}),
        ):
            refused = client.post(url, data=data, headers=headers)
            assert refused.status_code == 403, (data, headers)
        assert client.post("/ui/logout", data={}).status_code == 403
        assert settled(client, key, run["run_id"], {"waiting_for_approval"})
        same_site = client.post(
            url, data={"decision": "approve", "csrf": token}, headers={"Origin": "http://testserver"}
        )
        assert same_site.status_code == 303
        out = client.post("/ui/logout", data={"csrf": token})
        assert out.status_code == 303
        assert client.get("/ui/health").status_code == 303


def test_tenants_see_only_their_own_runs_and_approvals(shop: Path) -> None:
    ours = issue("ops", "default", ["runs:write", "runs:read", "approvals"])
    theirs = issue("eve", "other", ["admin"])
    with serve(shop) as client:
        parked = submit(client, ours, "refund 10042")
        settled(client, ours, parked["run_id"], {"waiting_for_approval"})
        done = submit(client, ours, "lookup broken")
        login(client, ours, "/ui/approvals")
        approval = re.findall(
            r"/ui/approvals/run_[0-9a-f]+/(apr_[0-9a-f]+)", client.get("/ui/approvals").text
        )[0]
        client.cookies.clear()

        login(client, theirs)
        assert card(client.get("/ui/health").text, "Runs") == "0"
        assert "run_" not in client.get("/ui/runs").text.split('id="runs"')[1]
        for run_id in (parked["run_id"], done["run_id"]):
            assert client.get(f"/ui/runs/{run_id}").status_code == 404
            assert client.get(f"/ui/runs/{run_id}/live").status_code == 404
        assert "data-approval=" not in client.get("/ui/approvals").text
        token = csrf_from(client.get("/ui/approvals").text)
        stolen = client.post(
            f"/ui/approvals/{parked['run_id']}/{approval}", data={"csrf": token, "decision": "approve"}
        )
        assert stolen.status_code == 404
        assert settled(client, ours, parked["run_id"], {"waiting_for_approval"})


# --------------------------------------------------------------------------- aggregates in SQL


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
async def test_health_aggregates_are_exact_on_both_databases(
    dialect: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Runs with known durations, costs, tool errors and feedback give exactly the expected numbers."""
    url = (
        f"sqlite+aiosqlite:///{tmp_path / 'agg.db'}"
        if dialect == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    start = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    clock = Clock(start)
    store = await Store.open(url, clock=clock)
    try:
        project = write_shop_project(tmp_path / "p")
        release = await working_copy_release(store, project)
        # 20 runs in tenant t, one per minute, lasting 1..20 seconds; every 4th fails, every 5th has a
        # failed tool call, cost 0.01 each; plus one run in another tenant that must not count.
        for n in range(1, 21):
            clock.now = start + timedelta(minutes=n)
            run = await store.create_run(
                origin=RunOrigin.API, release=release, user_id="u", input=f"r{n}", tenant_id="t"
            )
            await store.claim_run("w", 30, run_id=run.id)
            step = await store.begin_step(
                run.id, "w", 30, StepDraft(index=0, kind=StepKind.TOOL_CALL, name="lookup_order")
            )
            outcome = StepStatus.FAILED if n % 5 == 0 else StepStatus.SUCCEEDED
            totals = RunTotals(steps_used=1, estimated_cost_usd=0.01)
            await store.finish_step(run.id, "w", 30, step.index, StepOutcome(status=outcome), totals)
            clock.now += timedelta(seconds=n)
            status = RunStatus.FAILED if n % 4 == 0 else RunStatus.SUCCEEDED
            await store.finish_run(run.id, "w", 30, status=status, totals=totals)
            if n <= 3:
                await store.add_feedback(run.id, user_id="u", score=1 if n < 3 else -1, comment=None)
        other = await store.create_run(
            origin=RunOrigin.API, release=release, user_id="x", input="elsewhere", tenant_id="other"
        )
        assert other.tenant_id == "other"

        insights = store.insights
        until = start + timedelta(hours=1)
        stats = (await insights.run_stats(tenant_id="t", since=start, until=until))["t"]
        assert (stats.runs, stats.finished, stats.succeeded, stats.failed) == (20, 20, 15, 5)
        assert stats.completion_rate == 0.75
        assert (stats.tool_calls, stats.tool_errors) == (20, 4)
        assert stats.cost_usd == pytest.approx(0.20)
        # Nearest rank over 1000..20000 ms: p50 = 10th, p95 = 19th, p99 = 20th value.
        assert stats.p50_ms == pytest.approx(10_000, abs=1)
        assert stats.p95_ms == pytest.approx(19_000, abs=1)
        assert stats.p99_ms == pytest.approx(20_000, abs=1)
        assert (stats.feedback, stats.feedback_positive) == (3, 2)

        buckets = await insights.run_stats(
            tenant_id="t", since=start, until=until, group_by="bucket", bucket_s=300
        )
        # Minutes 1-4 fall in bucket 0, 5-9 in bucket 1, ... 20 in bucket 4.
        assert {k: v.runs for k, v in buckets.items()} == {"0": 4, "1": 5, "2": 5, "3": 5, "4": 1}
        assert buckets["0"].p99_ms == pytest.approx(4_000, abs=1)

        by_release = await insights.run_stats(tenant_id="t", since=start, until=until, group_by="release")
        assert list(by_release) == [release.version] and by_release[release.version].runs == 20

        later = await insights.run_stats(tenant_id="t", since=until, until=until + timedelta(hours=1))
        assert later == {}
        assert await insights.active_runs(tenant_id="other") == {"queued": 1}

        from tether.store.insights import RunFilter

        slow = await insights.search_runs(RunFilter(tenant_id="t", min_latency_ms=18_500))
        assert [r.input for r in slow.runs] == ["r20", "r19"]
        failing_tools = await insights.search_runs(
            RunFilter(tenant_id="t", tool="lookup_order", tool_failed=True)
        )
        assert sorted(r.input for r in failing_tools.runs) == ["r10", "r15", "r20", "r5"]
        disliked = await insights.search_runs(RunFilter(tenant_id="t", feedback="negative"))
        assert [r.input for r in disliked.runs] == ["r3"]
    finally:
        await store.close()


def test_releases_show_gate_verdicts_and_health_shows_alerts(shop: Path) -> None:
    key = issue("ops", "default", ["runs:read"])

    async def record() -> None:
        store = await Store.open(os.environ["TETHER_DATABASE_URL"])
        try:
            v1, v2 = await store.get_release("v1"), await store.get_release("v2")
            for release, passed in ((v1, False), (v2, True)):
                evaluation = await store.create_eval_run(
                    release_id=release.id,
                    suites=["smoke"],
                    trials=1,
                    judge_model=None,
                    judge_prompt_hash=None,
                )
                check = {"name": "p0_pass_rate", "passed": passed, "value": 1.0 if passed else 0.5}
                await store.add_gate_verdict(
                    release_id=release.id,
                    eval_run_id=evaluation.id,
                    baseline_release_id=None,
                    passed=passed,
                    policy={},
                    checks=[check | {"detail": "P0 cases must all pass" if not passed else ""}],
                )
            for tenant in ("default", "other"):
                await store.telemetry.fire_alert(
                    alert_id=f"alr_{tenant}",
                    rule=f"completion_rate_low_{tenant}",
                    tenant_id=tenant,
                    severity="critical",
                    metric="completion_rate",
                    value=0.5,
                    threshold=0.85,
                    message=f"completion rate 50% below 85% ({tenant})",
                )
        finally:
            await store.close()

    asyncio.run(record())
    with serve(shop, workers=0) as client:
        login(client, key)
        releases = client.get("/ui/releases").text
        rows = {m.group(1): m.group(2) for m in re.finditer(r">(v[12])</a></td>(.*?)</tr>", releases, re.S)}
        assert "status-failed" in rows["v1"] and "P0 cases must all pass" in rows["v1"]
        assert "status-succeeded" in rows["v2"] and "all 1 checks passed" in rows["v2"]
        health = client.get("/ui/health").text
        assert "1 firing" in health
        assert "completion rate 50% below 85% (default)" in health
        assert "(other)" not in health  # another tenant's alert stays there


# --------------------------------------------------------------------------- cut-off answers


def test_an_answer_cut_off_at_the_token_limit_is_flagged_in_the_api_and_on_the_run_page(
    tmp_path: Path, cli: Cli
) -> None:
    project = tmp_path / "cutoff"
    (project / "prompts").mkdir(parents=True)
    (project / "prompts" / "system.md").write_text("You answer.")
    (project / "tools.py").write_text("")
    (project / "policy.py").write_text(
        "from tether.models.base import ModelResponse\n\n"
        "def respond(turn):\n"
        "    if turn.user_input == 'long':\n"
        "        return ModelResponse(content='The first half of a long ans', finish_reason='length')\n"
        "    return 'short and whole'\n"
    )
    (project / "tether.toml").write_text(
        '[agent]\nname = "cutoff"\nowner = "tests@example.com"\n\n'
        '[model]\nprimary = "scripted:cut-v1"\nscripted_policy = "policy:respond"\n'
    )
    cli("release", "create", "--project", project, "--version", "v2")
    key = issue("ops", "default", ["runs:write", "runs:read"])
    with serve(project) as client:
        cut = settled(client, key, submit(client, key, "long")["run_id"], {"succeeded"})
        whole = settled(client, key, submit(client, key, "short")["run_id"], {"succeeded"})
        assert (cut["truncated"], whole["truncated"]) == (True, False)
        login(client, key)
        page = client.get(f"/ui/runs/{cut['run_id']}")
        assert page.status_code == 200
        assert 'id="truncated"' in page.text and "output-token limit" in page.text
        assert 'finish reason <span class="finish-length">length</span>' in page.text
        assert 'id="truncated"' not in client.get(f"/ui/runs/{whole['run_id']}").text
