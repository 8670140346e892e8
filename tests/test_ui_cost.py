"""The dashboard's Cost page: spend by model, tier, tag and user, cache hits, breakers; tenant-scoped."""

from __future__ import annotations

from conftest import ProjectFactory
from test_cost_report import EXTRA, POLICY, TOOLS
from test_observe_metrics import bearer, issue, run_to_end, serve
from test_ui_pages import login


def test_cost_page_shows_spend_caches_and_stays_in_the_tenant(make_project: ProjectFactory) -> None:
    extra = EXTRA + "\n[cache]\nresponse = true\n"
    project = make_project(tools=TOOLS, policy=POLICY, model='primary = "scripted:large"', extra=extra)
    writer, reader, other = (
        issue(["runs:write"], user="ann"),
        issue(["runs:read"]),
        issue(["runs:read"], tenant="t9"),
    )
    with serve(project) as client:
        for text in ("hi", "hi", "a much longer question"):
            assert run_to_end(client, writer, text)["status"] == "succeeded"
        login(client, reader)
        page = client.get("/ui/cost?window=24h")
        assert page.status_code == 200
        html = page.text
        assert 'id="cost-by-tier"' in html and ">small<" in html and ">large<" in html
        assert 'id="cost-by-user"' in html and ">ann<" in html
        caches = html.split('id="caches"')[1].split("</table>")[0]
        assert "<td>exact</td><td>1</td><td>2</td>" in caches  # the second "hi" was a hit
        assert client.get("/ui/cost?window=forever").status_code == 400
        client.cookies.clear()
        login(client, other)
        elsewhere = client.get("/ui/cost").text
        assert ">ann<" not in elsewhere and "No production spend in this window." in elsewhere
        assert client.get("/v1/cost/report", headers=bearer(other)).json()["lines"] == []
