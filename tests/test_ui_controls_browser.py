"""The controls and incidents pages in a real headless Chromium (issue 14 item 3).

An operator logs in, switches read-only mode on with one click while a refund waits for approval,
watches the approved refund come back refused (the run page lists the control), switches it off
again, and runs an incident from open to close. Skipped like the other browser tests when Chromium
or Playwright is missing, unless TETHER_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from service_helpers import create_key, service_env
from test_ui_browser import CHROMIUM, REQUIRED, _expected, _missing
from ui_helpers import Dashboard, dashboard_service, wait_status


@pytest.fixture(scope="module")
def operated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Dashboard, str]]:
    workdir = tmp_path_factory.mktemp("controls")
    with dashboard_service(workdir) as service:
        env = service_env(
            database_url=f"sqlite+aiosqlite:///{workdir / 'tether.db'}",
            data_dir=workdir / "data",
            code_cache=workdir / "code",
        )
        yield service, create_key(workdir / "shop", env, user="oncall", scopes="operator,runs:read")


@pytest.fixture
def page(operated: tuple[Dashboard, str]) -> Iterator[Any]:
    problem = _missing()
    if problem is not None:
        if REQUIRED:
            pytest.fail(f"the browser tests are required (TETHER_REQUIRE_SERVICES=1): {problem}")
        pytest.skip(problem)
    from playwright.sync_api import sync_playwright

    dashboard, _ = operated
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        context = browser.new_context(base_url=dashboard.base_url, viewport={"width": 1400, "height": 900})
        tab = context.new_page()
        problems: list[str] = []
        tab.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        tab.on(
            "console",
            lambda m: problems.append(m.text) if m.type == "error" and not _expected(m.text) else None,
        )
        tab.problems = problems  # type: ignore[attr-defined]
        try:
            yield tab
        finally:
            context.close()
            browser.close()


def _log_in(page: Any, key: str, target: str) -> None:
    page.goto(target)
    page.fill("#key", key)
    page.click("button[type=submit]")
    page.wait_for_url(f"**{target}*")


def test_one_click_read_only_stops_an_approved_refund(page: Any, operated: tuple[Dashboard, str]) -> None:
    from playwright.sync_api import expect

    dashboard, operator = operated
    _log_in(page, dashboard.key, "/ui/controls")  # no operator scope: refused, with the reason
    expect(page.locator("main")).to_contain_text("operator")
    page.problems.clear()  # that 403 was the point
    page.context.clear_cookies()
    _log_in(page, operator, "/ui/controls")
    toggle = page.locator("form.toggle[data-kind='read_only']")
    expect(toggle.locator(".state")).to_have_text("off")
    toggle.locator("input[name=reason]").fill("refunds look wrong")
    toggle.locator("button").click()
    page.wait_for_url("**/ui/controls?notice=*")
    expect(page.locator(".notice")).to_contain_text("read_only set")
    expect(toggle.locator(".state")).to_have_text("ON")
    expect(page.locator("#active-controls tbody tr")).to_have_count(1)
    expect(page.locator("#active-controls")).to_contain_text("refunds look wrong")

    refund = dashboard.runs["refund 10042"]
    pending = refund["pending_approval"]["approval_id"]
    with httpx.Client(
        base_url=dashboard.base_url, headers={"Authorization": f"Bearer {dashboard.key}"}
    ) as api:
        decided = api.post(
            f"/v1/runs/{refund['run_id']}/approvals/{pending}", json={"decision": "approve", "reason": "ok"}
        )
        assert decided.status_code == 200, decided.text
    done = wait_status(dashboard.base_url, dashboard.key, refund["run_id"], {"succeeded", "failed"})
    assert done["status"] == "succeeded" and "issue_refund" not in done["tools_called"]
    page.goto(f"/ui/runs/{refund['run_id']}")
    expect(page.locator("#run-controls")).to_contain_text("read_only @all")

    page.goto("/ui/controls")
    toggle.locator("button").click()
    page.wait_for_url("**/ui/controls?notice=*")
    expect(toggle.locator(".state")).to_have_text("off")
    expect(page.locator("#active-controls tbody tr.empty, #active-controls td.empty")).to_have_count(1)
    expect(page.locator("#control-history")).to_contain_text("cleared by oncall")
    assert page.problems == []


def test_an_incident_from_open_to_close(page: Any, operated: tuple[Dashboard, str]) -> None:
    from playwright.sync_api import expect

    dashboard, operator = operated
    with httpx.Client(base_url=dashboard.base_url, headers={"Authorization": f"Bearer {operator}"}) as api:
        made = api.post("/v1/controls", json={"kind": "maintenance", "value": "slow", "reason": "drill"})
        assert made.status_code == 201, made.text
    _log_in(page, operator, "/ui/incidents")
    page.fill("form.open-incident input[name=title]", "refunds refused")
    page.click("form.open-incident button")
    page.wait_for_url("**/ui/incidents/inc_*")
    expect(page.locator("h1")).to_have_text("refunds refused")
    page.fill("form.note input[name=text]", "read-only was on for a while")
    page.fill("form.note input[name=runs]", dashboard.runs["refund 10042"]["run_id"])
    page.click("form.note button")
    expect(page.locator("#timeline tr[data-source='note']")).to_contain_text("read-only was on")
    expect(page.locator("#timeline tr[data-source='run']")).to_have_count(1)
    expect(page.locator("#timeline tr[data-source='control']").first).to_be_visible()
    page.fill("form.close input[name=resolution]", "switched back")
    page.click("form.close button")
    expect(page.locator("main")).to_contain_text("Resolution: switched back")
    page.goto("/ui/incidents")
    expect(page.locator("#incidents")).to_contain_text("refunds refused")
    assert page.problems == []


def test_a_maintenance_banner_on_every_page_while_it_is_in_force(
    page: Any, operated: tuple[Dashboard, str]
) -> None:
    from playwright.sync_api import expect

    dashboard, operator = operated
    message = "Planned maintenance: refunds resume at 14:00 UTC"
    with httpx.Client(base_url=dashboard.base_url, headers={"Authorization": f"Bearer {operator}"}) as api:
        made = api.post(
            "/v1/controls", json={"kind": "maintenance", "value": message, "reason": "db upgrade"}
        )
        assert made.status_code == 201, made.text
        _log_in(page, dashboard.key, "/ui/health")  # a reader, not an operator, sees it too
        for target in ("/ui/health", "/ui/runs", "/ui/approvals", "/ui/releases", "/ui/cost"):
            page.goto(target)
            expect(page.locator("#maintenance-banner")).to_contain_text(message)
        page.context.clear_cookies()
        _log_in(page, operator, "/ui/controls")
        expect(page.locator("#maintenance-banner")).to_contain_text(message)
        cleared = api.post(f"/v1/controls/{made.json()['id']}/clear", json={"reason": "done"})
        assert cleared.status_code == 200, cleared.text
    page.goto("/ui/controls")  # the history still lists it; the banner no longer shows it
    expect(page.locator("#control-history")).to_contain_text(message)
    expect(page.locator("#maintenance-banner", has_text=message)).to_have_count(0)
    assert page.problems == []
