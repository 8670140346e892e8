"""Controls over HTTP (issue 14 items 1-3): /v1/controls with the operator scope, 503 with
Retry-After while new runs are paused, and an approval given before a switch that no longer
executes the refund once write tools are off."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from test_api import RW, bearer, finished, issue, parked_refund, problem, serve
from ui_helpers import csrf_from

OPERATOR = ("operator",)


def _set(client: object, key: str, **body: object) -> dict[str, object]:
    response = client.post("/v1/controls", json={"reason": "incident 7", **body}, headers=bearer(key))  # type: ignore[attr-defined]
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def test_an_approval_given_before_read_only_does_not_execute_the_refund(example_project: Path) -> None:
    asker = issue("u1", "t1", RW)
    reviewer = issue("rev", "t1", ("approvals",))
    operator = issue("oncall", "default", OPERATOR)  # the operator tenant: a global operator
    with serve(example_project) as client:
        run = parked_refund(client, asker)
        control = _set(client, operator, kind="read_only")
        pending = run["pending_approval"]
        decided = client.post(
            f"/v1/runs/{run['run_id']}/approvals/{pending['approval_id']}",
            json={"decision": "approve", "reason": "looks fine"},
            headers=bearer(reviewer),
        )
        assert decided.status_code == 200, decided.text
        done = finished(client, asker, str(run["run_id"]))
        assert done["status"] == "succeeded"  # no crash: the model was told and answered
        assert "issue_refund" not in done["tools_called"]
        assert f"{control['id']} read_only @all" in done["controls_applied"]
        steps = client.get(f"/v1/runs/{run['run_id']}/steps", headers=bearer(asker)).json()
        refused = [s for s in steps if s["name"] == "issue_refund"]
        assert refused and "read-only mode" in refused[-1]["error"]


def test_pause_answers_503_with_retry_after_and_the_maintenance_message(example_project: Path) -> None:
    user = issue("u1", "t1", RW)
    operator = issue("oncall", "default", OPERATOR)  # the operator tenant: a global operator
    with serve(example_project, workers=0) as client:
        _set(client, operator, kind="maintenance", value="Back soon")
        noticed = client.post("/v1/runs", json={"input": "hi"}, headers=bearer(user))
        assert noticed.status_code == 202 and noticed.headers["Tether-Notice"] == "Back soon"
        # Every runs answer carries it while it is in force, not only a create.
        read = client.get(f"/v1/runs/{noticed.json()['run_id']}", headers=bearer(user))
        assert read.status_code == 200 and read.headers["Tether-Notice"] == "Back soon"
        assert client.get("/v1/runs", headers=bearer(user)).headers["Tether-Notice"] == "Back soon"
        pause = _set(client, operator, kind="pause_runs", value="30", scope="tenant:t1")
        refused = client.post("/v1/runs", json={"input": "hi"}, headers=bearer(user))
        assert refused.status_code == 503 and refused.headers["content-type"] == "application/json"
        detail = refused.json()["detail"]
        assert refused.headers["Retry-After"] == "30" and refused.headers["Tether-Notice"] == "Back soon"
        assert "Back soon" in detail and "new runs are paused" in detail
        other = issue("u2", "t2", RW)  # another tenant is not paused
        assert client.post("/v1/runs", json={"input": "hi"}, headers=bearer(other)).status_code == 202

        cleared = client.post(
            f"/v1/controls/{pause['id']}/clear", json={"reason": "over"}, headers=bearer(operator)
        )
        assert cleared.status_code == 200 and cleared.json()["in_force"] is False
        again = client.post(
            f"/v1/controls/{pause['id']}/clear", json={"reason": "x"}, headers=bearer(operator)
        )
        assert "already ended" in problem(again, 409)
        assert client.post("/v1/runs", json={"input": "hi"}, headers=bearer(user)).status_code == 202


def test_controls_need_the_operator_scope_and_record_who(example_project: Path) -> None:
    writer = issue("u1", "t1", RW)
    operator = issue("oncall", "default", OPERATOR)  # the operator tenant: a global operator
    with serve(example_project, workers=0) as client:
        assert client.get("/v1/controls", headers=bearer(writer)).status_code == 403
        body = {"kind": "read_only", "reason": "x"}
        problem(client.post("/v1/controls", json=body, headers=bearer(writer)), 403)
        made = _set(client, operator, kind="disable_tool", scope="tool:issue_refund", expires_in_s=600)
        assert made["value"] == "issue_refund" and made["expires_at"] is not None
        assert str(made["created_by"]).startswith("oncall (key key_")
        listed = client.get("/v1/controls", headers=bearer(operator)).json()
        assert [c["id"] for c in listed] == [made["id"]]
        history = client.get("/v1/controls?history=true", headers=bearer(operator)).json()
        assert history[0]["reason"] == "incident 7"
        bad = client.post(
            "/v1/controls", json={"kind": "cap_steps", "value": "x", "reason": "r"}, headers=bearer(operator)
        )
        assert "whole number" in problem(bad, 400)
        problem(
            client.post("/v1/controls", json={"kind": "nope", "reason": "r"}, headers=bearer(operator)), 422
        )
        problem(client.post("/v1/controls", json={"kind": "read_only"}, headers=bearer(operator)), 422)
        unknown = client.post(
            "/v1/controls",
            json={"kind": "read_only", "reason": "r", "scope": "release:nope"},
            headers=bearer(operator),
        )
        assert "nope" in problem(unknown, 400)
        problem(client.post("/v1/controls/ctl_x/clear", json={"reason": "r"}, headers=bearer(operator)), 404)


def test_the_maintenance_notice_goes_when_the_control_is_cleared(example_project: Path) -> None:
    user = issue("u1", "t1", RW)
    operator = issue("oncall", "default", OPERATOR)
    with serve(example_project, workers=0) as client:
        made = _set(client, operator, kind="maintenance", value="Wartung: bis 14 Uhr", scope="tenant:t1")
        noticed = client.get("/v1/runs", headers=bearer(user))
        assert noticed.headers["Tether-Notice"] == "Wartung: bis 14 Uhr"
        other = issue("u2", "t2", RW)  # the message is for tenant t1 only
        assert "Tether-Notice" not in client.get("/v1/runs", headers=bearer(other)).headers
        cleared = client.post(
            f"/v1/controls/{made['id']}/clear", json={"reason": "done"}, headers=bearer(operator)
        )
        assert cleared.status_code == 200
        assert "Tether-Notice" not in client.get("/v1/runs", headers=bearer(user)).headers


def test_a_tenant_operator_acts_on_its_own_tenant_only(example_project: Path) -> None:
    tenant_ops = issue("t1-oncall", "t1", OPERATOR)
    global_ops = issue("oncall", "default", OPERATOR)
    admin = issue("root", "t3", ("admin",))
    with serve(example_project, workers=0) as client:
        own = _set(client, tenant_ops, kind="pause_runs", value="30", scope="tenant:t1")
        tool_in_tenant = _set(
            client, tenant_ops, kind="disable_tool", value="issue_refund", scope="tenant:t1"
        )
        for scope in ("all", "tenant:t2", "release:nope", "tool:issue_refund", "*"):
            body = {"kind": "read_only", "reason": "r", "scope": scope}
            refused = client.post("/v1/controls", json=body, headers=bearer(tenant_ops))
            assert "tenant:t1 only" in problem(refused, 403), scope
        kind = {"kind": "disable_tool", "value": "issue_refund", "reason": "r"}  # scope defaults to all
        problem(client.post("/v1/controls", json=kind, headers=bearer(tenant_ops)), 403)
        # Global operators and admin keys (of any tenant) set anything.
        everywhere = _set(client, global_ops, kind="read_only")
        elsewhere = _set(client, admin, kind="read_only", scope="tenant:t2")
        # Listed: its own and the global ones that bear on its runs, never another tenant's.
        listed = {c["id"] for c in client.get("/v1/controls", headers=bearer(tenant_ops)).json()}
        assert listed == {own["id"], tool_in_tenant["id"], everywhere["id"]}
        history = client.get("/v1/controls?history=true", headers=bearer(tenant_ops)).json()
        assert elsewhere["id"] not in {c["id"] for c in history} and len(history) == 3
        everyone = {c["id"] for c in client.get("/v1/controls", headers=bearer(global_ops)).json()}
        assert elsewhere["id"] in everyone and own["id"] in everyone
        # Clearing: another tenant's is not even confirmed; a global one is refused; its own works.
        clear = {"reason": "r"}
        problem(
            client.post(f"/v1/controls/{elsewhere['id']}/clear", json=clear, headers=bearer(tenant_ops)), 404
        )
        refused = client.post(
            f"/v1/controls/{everywhere['id']}/clear", json=clear, headers=bearer(tenant_ops)
        )
        assert "global operator" in problem(refused, 403)
        done = client.post(f"/v1/controls/{own['id']}/clear", json=clear, headers=bearer(tenant_ops))
        assert done.status_code == 200 and done.json()["in_force"] is False
        assert (
            client.post(
                f"/v1/controls/{everywhere['id']}/clear", json=clear, headers=bearer(admin)
            ).status_code
            == 200
        )


def _log_in(client: TestClient, key: str) -> str:
    """Log the client's dashboard session in with `key`; returns the controls page's CSRF token."""
    form = client.get("/ui/login", params={"next": "/ui/controls"})
    login = {"key": key, "csrf": csrf_from(form.text), "next": "/ui/controls"}
    page = client.post("/ui/login", data=login)
    assert page.status_code == 200, page.text
    return csrf_from(page.text)


def test_the_dashboard_holds_a_tenant_operator_to_its_tenant(example_project: Path) -> None:
    tenant_ops = issue("t1-oncall", "t1", OPERATOR)
    global_ops = issue("oncall", "default", OPERATOR)
    with serve(example_project, workers=0) as client:
        everywhere = _set(client, global_ops, kind="maintenance", value="Everyone: back at noon")
        other = _set(client, global_ops, kind="read_only", scope="tenant:t2")
        csrf = _log_in(client, tenant_ops)
        page = client.get("/ui/controls").text
        assert 'value="tenant:t1"' in page and other["id"] not in page  # toggles act on its tenant
        assert "Everyone: back at noon" in page  # the banner, and the global control listed
        form = {"csrf": csrf, "kind": "read_only", "reason": "r"}
        refused = client.post("/ui/controls", data={**form, "scope": "all"}, follow_redirects=False)
        assert refused.status_code == 403 and "tenant:t1 only" in refused.text
        made = client.post("/ui/controls", data={**form, "scope": "tenant:t1"}, follow_redirects=False)
        assert made.status_code == 303
        clear = {"csrf": csrf, "reason": "r"}
        assert client.post(f"/ui/controls/{everywhere['id']}/clear", data=clear).status_code == 403
        assert client.post(f"/ui/controls/{other['id']}/clear", data=clear).status_code == 404
        listed = client.get("/v1/controls", headers=bearer(global_ops)).json()
        mine = [c for c in listed if c["scope"] == "tenant:t1"]
        assert [c["created_by"].split(" ")[0] for c in mine] == ["t1-oncall"]
