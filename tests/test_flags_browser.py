"""The flags page and the experiment report in a real headless Chromium, against a real `tether serve`.

An operator logs in, switches a flag off with a reason, and sees the new state and the audited change;
the next run gets the new value, and its run page shows its flags and arm. Skipped like the other
browser tests when Chromium or Playwright is missing (a failure with TETHER_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from flags_helpers import POLICY, PROMPT, TOOLS
from service_helpers import create_key, free_port, service_env, tether
from test_ui_browser import CHROMIUM, REQUIRED, _missing

SPEC = {"kind": "bool", "variations": [True, False], "enabled": True, "default": True, "off": False}


@dataclass
class Service:
    base_url: str
    operator: str
    app: str


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    work = tmp_path_factory.mktemp("flags-ui")
    project = work / "agent"
    (project / "prompts").mkdir(parents=True)
    (project / "prompts" / "system.md").write_text(PROMPT)
    (project / "tools.py").write_text(textwrap.dedent(TOOLS))
    (project / "policy.py").write_text(textwrap.dedent(POLICY))
    (project / "tether.toml").write_text(
        '[agent]\nname = "flags-agent"\nowner = "ops@example.com"\n\n'
        '[model]\nprimary = "scripted:test-v1"\nscripted_policy = "policy:respond"\n'
        '[guard]\nsystem_prompt_leak = "allow"\n'  # the policy answers with its own prompt
    )
    env = service_env(
        database_url=f"sqlite+aiosqlite:///{work / 'tether.db'}",
        data_dir=work / "data",
        code_cache=work / "code",
    )
    tether("release", "create", "--project", project, "--version", "v1", env=env)
    operator = create_key(project, env, user="ops", scopes="runs:read,operator")
    app = create_key(project, env, user="app", scopes="runs:write,runs:read")
    port = free_port()
    log = work / "serve.log"
    with open(log, "wb") as sink:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tether",
                "serve",
                "--project",
                str(project),
                "--port",
                str(
                    port
                ),  # no --release: it would switch the deployment (gate enforced); the working copy is v1
                "--concurrency",
                "1",
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"tether serve exited {server.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(f"{base_url}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"tether serve not ready:\n{log.read_text()}")
            time.sleep(0.1)
        yield Service(base_url, operator, app)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)


def api(service: Service, key: str) -> httpx.Client:
    return httpx.Client(base_url=service.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60)


@pytest.fixture
def page(service: Service) -> Iterator[Any]:
    problem = _missing()
    if problem is not None:
        if REQUIRED:
            pytest.fail(f"the browser tests are required (TETHER_REQUIRE_SERVICES=1): {problem}")
        pytest.skip(problem)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        context = browser.new_context(base_url=service.base_url, viewport={"width": 1400, "height": 900})
        tab = context.new_page()
        problems: list[str] = []
        tab.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        tab.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        tab.problems = problems
        try:
            yield tab
        finally:
            context.close()
            browser.close()


def test_an_operator_switches_a_flag_off_and_the_next_run_gets_it(page: Any, service: Service) -> None:
    from playwright.sync_api import expect

    with api(service, service.operator) as ops, api(service, service.app) as app:
        assert ops.put("/v1/flags/new-tone", json={"spec": SPEC, "reason": "launch"}).status_code == 200
        spec = {
            "arms": [
                {"name": "on", "weight": 1, "flag": "new-tone", "value": True},
                {"name": "off", "weight": 1, "flag": "new-tone", "value": False},
            ]
        }
        assert (
            ops.post("/v1/experiments", json={"name": "tone", "spec": spec, "reason": "r"}).status_code == 201
        )
        first = app.post("/v1/runs", json={"input": "prompt", "wait": 60}).json()
        assert first["status"] == "succeeded" and first["experiment"] == "tone"
        assert ops.post("/v1/experiments/tone/stop", json={"reason": "enough"}).status_code == 200

        page.goto("/ui/flags")
        page.fill("#key", service.operator)
        page.click("button[type=submit]")
        page.wait_for_url("**/ui/flags")
        row = page.locator("#flags tr[data-flag='new-tone']")
        expect(row.locator(".flag-state")).to_have_text("on")
        row.locator("input[name=reason]").fill("incident 7: tone complaints")
        row.locator("button[type=submit]").click()
        page.wait_for_url("**/ui/flags?changed=new-tone")
        expect(page.locator(".notice")).to_contain_text("new-tone changed")
        expect(row.locator(".flag-state")).to_have_text("off")

        row.locator("a").first.click()
        page.wait_for_url("**/ui/flags/new-tone")
        expect(page.locator("#flag-state")).to_have_text("off")
        expect(page.locator("#history tbody tr").first).to_contain_text("incident 7: tone complaints")
        expect(page.locator("#history tbody tr").first).to_contain_text("switch")

        second = app.post("/v1/runs", json={"input": "prompt", "wait": 60}).json()
        assert second["flags"] == {"new-tone": False} and second["experiment"] is None
        page.goto(f"/ui/runs/{first['run_id']}")
        expect(page.locator("#run-flags")).to_contain_text("new-tone=")
        expect(page.locator("#run-experiment")).to_contain_text(f"arm {first['experiment_arm']}")
        page.locator("#run-experiment a").click()
        page.wait_for_url("**/ui/experiments/tone")
        expect(page.locator(f"#arms tr[data-arm='{first['experiment_arm']}'] .runs")).to_have_text("1")
        expect(page.locator("#comparisons")).to_be_visible()
        assert page.problems == []
