"""The dashboard end to end in a real headless Chromium (Debian's `chromium`, driven by Playwright).

A real `tether serve` runs in a subprocess on a free port with real traffic. The browser logs in with
an API key, loads every page, follows a failing run from the health page to its trace, and approves
a waiting refund from the inbox while a second tab watches the run page refresh itself to
`succeeded`. Skipped (with the reason) when Chromium or Playwright is missing, unless
TETHER_REQUIRE_SERVICES=1, where that is a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ui_helpers import Dashboard, dashboard_service

CHROMIUM = os.environ.get("TETHER_CHROMIUM", "/usr/bin/chromium")
REQUIRED = os.environ.get("TETHER_REQUIRE_SERVICES") == "1"


def _expected(console_error: str) -> bool:
    """The browser logs pages answered 400/401 on purpose (bad filter, wrong key) as failed loads."""
    return "Failed to load resource" in console_error and any(
        f"status of {c} " in console_error for c in (400, 401)
    )


def _missing() -> str | None:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[test]')"
    return None


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    with dashboard_service(tmp_path_factory.mktemp("dashboard")) as service:
        yield service


@pytest.fixture
def browser_page(dashboard: Dashboard) -> Iterator[Any]:
    problem = _missing()
    if problem is not None:
        if REQUIRED:
            pytest.fail(f"the browser tests are required (TETHER_REQUIRE_SERVICES=1): {problem}")
        pytest.skip(problem)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        context = browser.new_context(base_url=dashboard.base_url, viewport={"width": 1400, "height": 900})
        page = context.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.on(
            "console",
            lambda m: problems.append(m.text) if m.type == "error" and not _expected(m.text) else None,
        )
        page.problems = problems  # type: ignore[attr-defined]
        try:
            yield page
        finally:
            context.close()
            browser.close()


def log_in(page: Any, dashboard: Dashboard, target: str = "/ui/health") -> None:
    page.goto(target)
    assert "/ui/login" in page.url
    page.fill("#key", dashboard.key)
    page.click("button[type=submit]")
    page.wait_for_url(f"**{target}*")


def test_login_and_every_page_loads(browser_page: Any, dashboard: Dashboard) -> None:
    from playwright.sync_api import expect

    page = browser_page
    page.goto("/ui/health")
    page.fill("#key", "tk_0123456789abcdef_wrongwrongwrongwrongwrong")
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_contain_text("not valid")
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert "tether_session" not in cookies

    page.fill("#key", dashboard.key)
    page.click("button[type=submit]")
    page.wait_for_url("**/ui/health")
    session = {c["name"]: c for c in page.context.cookies()}["tether_session"]
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    assert dashboard.key not in session["value"]
    assert page.evaluate("document.cookie") == ""  # scripts cannot read the session

    expect(page.locator("[data-card='Runs'] .value")).to_have_text("10")
    expect(page.locator("#by-release")).to_contain_text("v1")
    # uPlot drew every chart (a canvas each) from the JSON on the page.
    expect(page.locator(".chart canvas")).to_have_count(4)

    page.click(".windows button[value='1h']")
    page.wait_for_url("**/ui/health?window=1h")
    expect(page.locator(".windows button.on")).to_have_text("1h")

    page.goto("/ui/runs")
    expect(page.locator("#runs tbody tr")).to_have_count(10)
    page.select_option("select[name=status]", "escalated")
    page.click(".filters button[type=submit]")
    page.wait_for_url("**status=escalated**")
    expect(page.locator("#runs tbody tr")).to_have_count(1)
    page.fill("input[name=min_cost]", "lots")
    page.click(".filters button[type=submit]")
    expect(page.locator(".error")).to_contain_text("minimum cost must be a number")

    page.goto("/ui/releases")
    expect(page.locator("#releases")).to_contain_text("v2")
    expect(page.locator("#releases")).to_contain_text("serving")

    page.goto("/ui/approvals")
    expect(page.locator(".approval-card")).to_have_count(1)
    assert page.problems == []  # no script errors, no CSP violations

    page.click("header .who button")
    page.wait_for_url("**/ui/login")
    page.goto("/ui/runs")
    assert "/ui/login" in page.url


def test_follow_a_failing_run_from_the_health_page_to_its_trace(
    browser_page: Any, dashboard: Dashboard
) -> None:
    from playwright.sync_api import expect

    page = browser_page
    log_in(page, dashboard)
    page.click("[data-card='Failed runs']")
    page.wait_for_url("**/ui/runs?*status=failed*")
    rows = page.locator("#runs tbody tr")
    expect(rows).to_have_count(1)
    rows.first.locator("a").first.click()
    failed = dashboard.runs["please help, outage?"]["run_id"]
    page.wait_for_url(f"**/ui/runs/{failed}")
    expect(page.locator("#run-status")).to_have_text("failed")
    expect(page.locator(".io")).to_contain_text("upstream model unavailable")
    expect(page.locator("#trace [data-span='invoke_agent']")).to_have_count(1)
    expect(page.locator("#step-tree .step.s-failed")).to_have_count(1)

    # The tool-error card leads to the runs whose lookup failed; the trace shows the failed tool call.
    page.goto("/ui/health")
    page.click("[data-card='Tool error rate']")
    page.wait_for_url("**tool_failed=1**")
    expect(page.locator("#runs tbody tr")).to_have_count(2)
    page.locator("#runs tbody tr", has_text="v2").locator("a").first.click()
    failed_step = page.locator("#step-tree .tool_call.s-failed .detail")  # failed steps open by default
    expect(failed_step).to_be_visible()
    expect(failed_step).to_contain_text("order service unavailable")
    assert page.problems == []


def test_approve_from_the_browser_and_watch_the_run_finish(browser_page: Any, dashboard: Dashboard) -> None:
    from playwright.sync_api import expect

    page = browser_page
    log_in(page, dashboard, "/ui/approvals")
    parked = dashboard.runs["refund 10042"]["run_id"]

    watcher = page.context.new_page()  # a second tab on the run page, refreshing itself
    watcher.goto(f"/ui/runs/{parked}")
    expect(watcher.locator("#run-status")).to_have_text("waiting_for_approval")
    expect(watcher.locator(".live")).to_be_visible()

    card = page.locator(f".approval-card:has(a[href='/ui/runs/{parked}'])")
    card.locator("input[name=reason]").fill("regular customer, order delivered")
    card.locator("button.approve").click()
    page.wait_for_url("**/ui/approvals?decided=*")
    expect(page.locator(".notice")).to_contain_text("approved")
    expect(page.locator(".approval-card")).to_have_count(0)

    expect(watcher.locator("#run-status")).to_have_text("succeeded", timeout=30_000)
    expect(watcher.locator(".live")).to_have_count(0)  # final: polling stopped
    expect(watcher.locator("#approvals")).to_contain_text("regular customer, order delivered")
    expect(watcher.locator(".io")).to_contain_text("refunded")
    assert page.problems == []
