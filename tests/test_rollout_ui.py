"""The dashboard's rollout page (issue 13 item 9): stages, weights, the canary against stable as charts
and the buttons, in a real headless Chromium against a real `tether serve`; and the page's guards
(operator scope, CSRF) through the in-process client."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Cli
from service_helpers import create_key, free_port, service_env, tether
from test_ui_browser import CHROMIUM, REQUIRED, _missing
from test_ui_pages import issue, login, serve
from ui_helpers import csrf_from, wait_status, write_shop_project


@dataclass
class Canary:
    base_url: str
    key: str


@pytest.fixture(scope="module")
def canary_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Canary]:
    """`tether serve` with v1 live (gate overridden on the record) and v2 as a 50% canary, with
    finished runs on both (pinned by the operator) so the charts have data."""
    workdir = tmp_path_factory.mktemp("rollout-ui")
    project = write_shop_project(workdir / "shop")
    env = service_env(
        database_url=f"sqlite+aiosqlite:///{workdir / 'tether.db'}",
        data_dir=workdir / "data",
        code_cache=workdir / "code",
    )
    tether("release", "create", "--project", project, "--version", "v1", env=env)
    (project / "prompts" / "system.md").write_text("You are a concise shop assistant.")
    tether("release", "create", "--project", project, "--version", "v2", env=env)
    tether("rollout", "switch", "v1", "--project", project, "--override", "--reason", "no eval yet", env=env)
    tether(
        "rollout",
        "start",
        "v2",
        "--project",
        project,
        "--steps",
        "50,100",
        "--min-runs",
        "1000",
        "--override",
        "--reason",
        "try v2",
        env=env,
    )
    key = create_key(project, env, user="ops", scopes="operator,runs:read,runs:write")
    port = free_port()
    log = workdir / "serve.log"
    with open(log, "wb") as sink:
        server = subprocess.Popen(
            [sys.executable, "-m", "tether", "serve", "--project", str(project), "--port", str(port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        ) as client:
            deadline = time.monotonic() + 120
            while True:
                if server.poll() is not None:
                    raise RuntimeError(f"tether serve exited {server.returncode}:\n{log.read_text()}")
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"tether serve not ready:\n{log.read_text()}")
                time.sleep(0.1)
            for index in range(6):
                for release in ("v1", "v2"):
                    text = "lookup broken" if index == 0 else f"lookup {index}"
                    answer = client.post("/v1/runs", json={"input": text, "release": release})
                    answer.raise_for_status()
                    wait_status(base_url, key, answer.json()["run_id"], {"succeeded"})
        yield Canary(base_url, key)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)


@pytest.fixture
def page(canary_service: Canary) -> Iterator[Any]:
    problem = _missing()
    if problem is not None:
        if REQUIRED:
            pytest.fail(f"the browser tests are required (TETHER_REQUIRE_SERVICES=1): {problem}")
        pytest.skip(problem)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        context = browser.new_context(
            base_url=canary_service.base_url, viewport={"width": 1400, "height": 1000}
        )
        opened = context.new_page()
        problems: list[str] = []
        opened.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        opened.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        opened.problems = problems  # type: ignore[attr-defined]
        try:
            yield opened
        finally:
            context.close()
            browser.close()


def test_the_rollout_page_shows_the_canary_and_its_buttons_change_it(
    page: Any, canary_service: Canary
) -> None:
    from playwright.sync_api import expect

    page.goto("/ui/rollout")
    page.fill("#key", canary_service.key)
    page.click("button[type=submit]")
    page.wait_for_url("**/ui/rollout*")
    expect(page.locator("#stages")).to_contain_text("canary")
    expect(page.locator("#stages")).to_contain_text("50")
    expect(page.locator("#measures")).to_contain_text("error_rate")
    expect(page.locator("#history")).to_contain_text("gate override")
    expect(page.locator("[data-rollout-chart] canvas")).to_have_count(4)  # uPlot drew every chart

    page.fill("input[aria-label='pause reason']", "looking closer")
    page.click("#pause")
    page.wait_for_url("**/ui/rollout?done=pause")
    expect(page.locator("#canary h2")).to_contain_text("paused")
    expect(page.locator("#stages")).to_contain_text("v2")

    page.fill("input[aria-label='abort reason']", "v2 answers too briefly")
    page.click("#abort")
    page.wait_for_url("**/ui/rollout?done=abort")
    expect(page.locator("#canary")).to_have_count(0)
    expect(page.locator("#history")).to_contain_text("v2 answers too briefly")
    assert page.problems == []  # type: ignore[attr-defined]


def test_the_page_needs_the_operator_scope_and_its_forms_the_csrf_token(tmp_path: Path, cli: Cli) -> None:
    project = write_shop_project(tmp_path / "shop")
    cli("release", "create", "--project", project, "--version", "v2")
    operator = issue("ops", "default", ["operator"])
    reader = issue("ana", "default", ["runs:read"])
    with serve(project, workers=0) as client:
        login(client, reader, "/ui/rollout")
        assert client.get("/ui/rollout").status_code == 403
        client.cookies.clear()
        login(client, operator, "/ui/rollout")
        page = client.get("/ui/rollout")
        assert page.status_code == 200 and "No deployment yet" in page.text
        token = csrf_from(page.text)
        forged = client.post(
            "/ui/rollout/rollback", data={"reason": "x"}, headers={"origin": "http://testserver"}
        )
        assert forged.status_code == 403
        refused = client.post(
            "/ui/rollout/rollback",
            data={"reason": "x", "csrf": token},
            headers={"origin": "http://testserver"},
        )
        assert refused.status_code == 409 and "no previous live" in refused.text
        unknown = client.post(
            "/ui/rollout/explode", data={"csrf": token}, headers={"origin": "http://testserver"}
        )
        assert unknown.status_code == 404
