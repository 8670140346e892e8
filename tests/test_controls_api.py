"""Controls over HTTP (issue 14 items 1-3): /v1/controls with the operator scope, 503 with
Retry-After while new runs are paused, and an approval given before a switch that no longer
executes the refund once write tools are off."""

from __future__ import annotations

from pathlib import Path

from test_api import RW, bearer, finished, issue, parked_refund, problem, serve

OPERATOR = ("operator",)


def _set(client: object, key: str, **body: object) -> dict[str, object]:
    response = client.post("/v1/controls", json={"reason": "incident 7", **body}, headers=bearer(key))  # type: ignore[attr-defined]
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def test_an_approval_given_before_read_only_does_not_execute_the_refund(example_project: Path) -> None:
    asker = issue("u1", "t1", RW)
    reviewer = issue("rev", "t1", ("approvals",))
    operator = issue("oncall", "t1", OPERATOR)
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
    operator = issue("oncall", "t1", OPERATOR)
    with serve(example_project, workers=0) as client:
        _set(client, operator, kind="maintenance", value="Back soon")
        noticed = client.post("/v1/runs", json={"input": "hi"}, headers=bearer(user))
        assert noticed.status_code == 202 and noticed.headers["Tether-Notice"] == "Back soon"
        pause = _set(client, operator, kind="pause_runs", value="30", scope="tenant:t1")
        refused = client.post("/v1/runs", json={"input": "hi"}, headers=bearer(user))
        assert refused.status_code == 503 and refused.headers["content-type"] == "application/json"
        detail = refused.json()["detail"]
        assert refused.headers["Retry-After"] == "30"
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
    operator = issue("oncall", "t1", OPERATOR)
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
