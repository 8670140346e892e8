"""Take the dashboard screenshots in docs/screenshots/ (used by docs/dashboard.md).

    python docs/take_screenshots.py

Starts the same service as tests/test_ui_browser.py (a real `tether serve` with the shop agent and
its traffic), plus a simulated day of history so the charts have a shape, then drives Debian's
Chromium through Playwright (`TETHER_CHROMIUM`, default /usr/bin/chromium).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from playwright.sync_api import Page, sync_playwright  # noqa: E402
from ui_helpers import dashboard_service  # noqa: E402

OUT = HERE / "screenshots"
CHROMIUM = os.environ.get("TETHER_CHROMIUM", "/usr/bin/chromium")


def shot(page: Page, name: str) -> None:
    page.wait_for_load_state("networkidle")
    page.screenshot(path=OUT / f"{name}.png", full_page=True)
    print(f"wrote {OUT / name}.png")


def main() -> None:
    OUT.mkdir(exist_ok=True)
    with (
        tempfile.TemporaryDirectory() as scratch,
        dashboard_service(Path(scratch), history=True) as service,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_context(
            base_url=service.base_url, viewport={"width": 1400, "height": 900}
        ).new_page()
        page.goto("/ui/health")
        shot(page, "login")
        page.fill("#key", service.key)
        page.click("button[type=submit]")
        page.wait_for_url("**/ui/health")
        shot(page, "health")
        page.click("[data-card='Tool error rate']")
        shot(page, "runs")
        page.goto(f"/ui/runs/{service.runs['lookup broken']['run_id']}")
        page.locator("#trace [data-span='execute_tool'] summary").first.click()
        shot(page, "run")
        page.goto(f"/ui/runs/{service.runs['please help, outage?']['run_id']}")
        shot(page, "run-failed")
        page.goto("/ui/approvals")
        page.locator("input[name=reason]").first.fill("regular customer, order delivered")
        shot(page, "approvals")
        page.goto("/ui/releases")
        shot(page, "releases")
        browser.close()


if __name__ == "__main__":
    main()
