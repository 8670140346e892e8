"""Flags and experiments over HTTP and on the dashboard (TestClient): scopes, validation, audit, a
change reaching the next run, the switch form's CSRF and operator checks, and the report view."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import Cli, ProjectFactory
from fastapi.testclient import TestClient
from flags_helpers import flags_project
from test_ui_pages import issue, login
from timing import wait_until
from ui_helpers import csrf_from

from tether.api.app import ServiceOptions, create_app
from tether.settings import Settings

SPEC = {"kind": "bool", "variations": [True, False], "enabled": True, "default": True, "off": False}


@pytest.fixture
def project(make_project: ProjectFactory, cli: Cli) -> Path:
    root = flags_project(make_project)
    cli("release", "create", "--project", root, "--version", "v1")
    return root


@contextmanager
def serve(project: Path) -> Iterator[TestClient]:
    options = ServiceOptions(
        project=project, release="v1", embedded_worker_concurrency=1, settings=Settings()
    )
    with TestClient(create_app(options), follow_redirects=False) as client:
        yield client


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def run_now(client: TestClient, key: str, text: str, **extra: Any) -> dict[str, Any]:
    answer = client.post("/v1/runs", json={"input": text, "wait": 60, **extra}, headers=auth(key))
    assert answer.status_code == 200, answer.text
    run: dict[str, Any] = answer.json()
    return run


def test_reads_need_runs_read_and_changes_need_operator(project: Path) -> None:
    app = issue("app", "default", ["runs:write"])
    reader = issue("viewer", "default", ["runs:read"])
    operator = issue("ops", "default", ["operator"])
    with serve(project) as client:
        body = {"spec": SPEC, "reason": "launch"}
        assert client.put("/v1/flags/new-tone", json=body, headers=auth(reader)).status_code == 403
        assert client.get("/v1/flags", headers=auth(app)).status_code == 403
        assert client.get("/v1/flags").status_code == 401
        created = client.put("/v1/flags/new-tone", json=body, headers=auth(operator))
        assert created.status_code == 200, created.text
        assert created.json()["version"] == 1 and created.json()["updated_by"].startswith("ops (key ")
        listed = client.get("/v1/flags", headers=auth(reader)).json()
        assert [f["name"] for f in listed] == ["new-tone"]
        one = client.get("/v1/flags/new-tone", headers=auth(reader)).json()
        assert one["history"][0]["action"] == "create"
        assert one["history"][0]["reason"] == "launch" and one["history"][0]["revision"] >= 1
        assert (
            client.delete("/v1/flags/new-tone", headers=auth(reader), params={"reason": "x"}).status_code
            == 403
        )


def test_bad_changes_get_clear_errors(project: Path) -> None:
    operator = issue("ops", "default", ["operator", "runs:read"])
    with serve(project) as client:
        headers = auth(operator)
        bad_value = {"spec": {**SPEC, "default": "yes"}, "reason": "r"}
        answer = client.put("/v1/flags/x", json=bad_value, headers=headers)
        assert answer.status_code == 422
        no_reason = client.put("/v1/flags/x", json={"spec": SPEC, "reason": ""}, headers=headers)
        assert no_reason.status_code == 422
        bad_name = client.put("/v1/flags/Bad%20Name", json={"spec": SPEC, "reason": "r"}, headers=headers)
        assert bad_name.status_code == 400 and "must be 1-100 characters" in bad_name.json()["detail"]
        client.put("/v1/flags/x", json={"spec": SPEC, "reason": "r"}, headers=headers)
        stale = client.put(
            "/v1/flags/x", json={"spec": SPEC, "reason": "r", "expected_version": 0}, headers=headers
        )
        assert stale.status_code == 409 and "changed meanwhile" in stale.json()["detail"]
        assert client.get("/v1/flags/nope", headers=headers).status_code == 404
        missing = client.post("/v1/flags/nope/switch", json={"enabled": True, "reason": "r"}, headers=headers)
        assert missing.status_code == 404
        assert client.delete("/v1/flags/x", headers=headers).status_code == 422  # no reason
        assert client.delete("/v1/flags/x", headers=headers, params={"reason": "done"}).status_code == 204
        assert client.get("/v1/flags/x", headers=headers).status_code == 404


def test_a_change_reaches_the_next_run_and_metadata_targets(project: Path) -> None:
    app = issue("app", "default", ["runs:write", "runs:read"])
    operator = issue("ops", "default", ["operator"])
    with serve(project) as client:
        assert run_now(client, app, "prompt")["flags"] == {}
        spec = {**SPEC, "default": False, "rules": [{"value": True, "attributes": {"plan": ["pro"]}}]}
        client.put("/v1/flags/new-tone", json={"spec": spec, "reason": "pro only"}, headers=auth(operator))
        pro = run_now(client, app, "prompt", metadata={"plan": "pro"})
        assert pro["flags"] == {"new-tone": True} and "Be cheerful" in pro["output"]
        free = run_now(client, app, "prompt", metadata={"plan": "free"})
        assert free["flags"] == {"new-tone": False} and "Be cheerful" not in free["output"]
        switched = client.post(
            "/v1/flags/new-tone/switch", json={"enabled": False, "reason": "incident"}, headers=auth(operator)
        )
        assert switched.status_code == 200 and switched.json()["version"] == 2
        assert run_now(client, app, "prompt", metadata={"plan": "pro"})["flags"] == {"new-tone": False}


def test_experiments_over_http(project: Path) -> None:
    app = issue("app", "default", ["runs:write", "runs:read"])
    operator = issue("ops", "default", ["operator", "runs:read"])
    with serve(project) as client:
        client.put("/v1/flags/new-tone", json={"spec": SPEC, "reason": "r"}, headers=auth(operator))
        spec = {
            "arms": [
                {"name": "on", "weight": 1, "flag": "new-tone", "value": True},
                {"name": "off", "weight": 1, "flag": "new-tone", "value": False},
            ],
            "metric": "success",
        }
        body = {"name": "tone", "spec": spec, "reason": "test"}
        assert client.post("/v1/experiments", json=body, headers=auth(app)).status_code == 403
        created = client.post("/v1/experiments", json=body, headers=auth(operator))
        assert created.status_code == 201, created.text
        assert client.post("/v1/experiments", json=body, headers=auth(operator)).status_code == 409
        bad_release = {
            "name": "r",
            "spec": {
                **spec,
                "arms": [
                    {"name": "a", "weight": 1, "release": "nope"},
                    {"name": "b", "weight": 1, "release": "v1"},
                ],
            },
            "reason": "r",
        }
        refused = client.post("/v1/experiments", json=bad_release, headers=auth(operator))
        assert refused.status_code == 400 and "nope" in refused.json()["detail"]
        run = run_now(client, app, "prompt")
        assert run["experiment"] == "tone" and run["flags"]["new-tone"] is (run["experiment_arm"] == "on")
        report = client.get("/v1/experiments/tone/report", headers=auth(app)).json()
        assert sum(a["runs"] for a in report["arms"]) == 1 and report["metric_label"] == "success rate"
        stopped = client.post("/v1/experiments/tone/stop", json={"reason": "done"}, headers=auth(operator))
        assert stopped.status_code == 200 and stopped.json()["status"] == "stopped"
        again = client.post("/v1/experiments/tone/stop", json={"reason": "done"}, headers=auth(operator))
        assert again.status_code == 409
        shown = client.get("/v1/experiments/tone", headers=auth(app)).json()
        assert [h["action"] for h in shown["history"]] == ["stop", "create"]
        assert client.get("/v1/experiments/nope/report", headers=auth(app)).status_code == 404


def test_the_dashboard_switch_needs_operator_csrf_and_a_reason(project: Path) -> None:
    reader = issue("viewer", "default", ["runs:read"])
    operator = issue("ops", "default", ["runs:read", "operator"])
    with serve(project) as client:
        client.put("/v1/flags/new-tone", json={"spec": SPEC, "reason": "r"}, headers=auth(operator))
        login(client, reader, "/ui/flags")
        page = client.get("/ui/flags")
        assert page.status_code == 200 and "new-tone" in page.text and "flag-switch" not in page.text
        refused = client.post(
            "/ui/flags/new-tone/switch", data={"csrf": csrf_from(page.text), "enabled": "off", "reason": "x"}
        )
        assert refused.status_code == 403 and "operator" in refused.text
        client.cookies.clear()

        login(client, operator, "/ui/flags")
        page = client.get("/ui/flags")
        token = csrf_from(page.text)
        assert 'class="decide flag-switch"' in page.text
        forged = client.post(
            "/ui/flags/new-tone/switch", data={"csrf": "x" * 64, "enabled": "off", "reason": "x"}
        )
        assert forged.status_code == 403
        no_reason = client.post(
            "/ui/flags/new-tone/switch", data={"csrf": token, "enabled": "off", "reason": " "}
        )
        assert no_reason.status_code == 400
        done = client.post(
            "/ui/flags/new-tone/switch", data={"csrf": token, "enabled": "off", "reason": "incident 7"}
        )
        assert done.status_code == 303 and done.headers["location"] == "/ui/flags?changed=new-tone"
        detail = client.get("/ui/flags/new-tone").text
        assert re.search(r'id="flag-state"[^>]*>off<', detail)
        assert "incident 7" in detail and "ops (key " in detail
        assert client.get("/ui/flags/nope").status_code == 404


def test_the_run_page_and_the_experiment_view_show_flags_and_arms(project: Path) -> None:
    app = issue("app", "default", ["runs:write", "runs:read"])
    operator = issue("ops", "default", ["operator", "runs:read"])
    with serve(project) as client:
        client.put("/v1/flags/new-tone", json={"spec": SPEC, "reason": "r"}, headers=auth(operator))
        spec = {
            "arms": [
                {"name": "on", "weight": 1, "flag": "new-tone", "value": True},
                {"name": "off", "weight": 1, "flag": "new-tone", "value": False},
            ]
        }
        client.post(
            "/v1/experiments", json={"name": "tone", "spec": spec, "reason": "r"}, headers=auth(operator)
        )
        run = run_now(client, app, "prompt")
        login(client, operator, f"/ui/runs/{run['run_id']}")
        page = client.get(f"/ui/runs/{run['run_id']}").text
        assert 'id="run-flags"' in page and "new-tone=" in page
        assert f"arm {run['experiment_arm']}" in page
        view = client.get("/ui/experiments/tone")
        assert view.status_code == 200 and "success rate" in view.text and 'id="comparisons"' in view.text
        assert "tone" in client.get("/ui/experiments").text
        assert client.get("/ui/experiments/nope").status_code == 404


def test_a_change_made_elsewhere_reaches_a_running_api_without_a_restart(project: Path, cli: Cli) -> None:
    app = issue("app", "default", ["runs:write", "runs:read"])
    with serve(project) as client:
        assert run_now(client, app, "prompt")["flags"] == {}
        # Another process (the CLI, on the same database) changes the flags; the API's live config
        # notices at its next revision check.
        cli(
            "flags",
            "set",
            "new-tone",
            "--on",
            "--default",
            "true",
            "--reason",
            "launch",
            "--project",
            project,
        )
        live = client.app.state.tether.runtime.live.get("flags")  # type: ignore[attr-defined]
        wait_until(lambda: live.current.flags or None, message="the API sees the new flag")
        changed = run_now(client, app, "prompt")
        assert changed["flags"] == {"new-tone": True} and "Be cheerful" in changed["output"]


def test_an_experiment_between_releases_splits_the_live_share_through_release_assignment(
    project: Path, cli: Cli
) -> None:
    (project / "prompts" / "system.md").write_text("You are the second version.")
    cli("release", "create", "--project", project, "--version", "v2")
    ops = issue("ops", "default", ["operator", "runs:write", "runs:read"])
    users = {
        name: issue(name, "default", ["runs:write", "runs:read"]) for name in ("ana", "ben", "cy", "dee")
    }
    with serve(project) as client:
        switched = client.post(
            "/v1/rollout/switch",
            json={"release": "v1", "override": True, "reason": "start"},
            headers=auth(ops),
        )
        assert switched.status_code == 200, switched.text
        arms = [
            {"name": "control", "weight": 1, "release": "v1"},
            {"name": "v2", "weight": 1, "release": "v2"},
        ]
        mixed = {
            "name": "m",
            "spec": {"arms": [arms[0], {"name": "f", "weight": 1, "flag": "x", "value": True}]},
        }
        refused = client.post("/v1/experiments", json={**mixed, "reason": "r"}, headers=auth(ops))
        assert refused.status_code == 422 and "every arm names a release" in refused.text
        body = {"name": "prompt-v2", "spec": {"arms": arms}, "reason": "does v2 help?"}
        assert client.post("/v1/experiments", json=body, headers=auth(ops)).status_code == 201

        for name, key in users.items():
            made = run_now(client, key, "prompt")
            arm = made["experiment_arm"]
            assert made["experiment"] == "prompt-v2" and arm in ("control", "v2"), name
            assert made["release_version"] == ("v1" if arm == "control" else "v2")
            assert made["stage"] == "experiment" and made["assignment"]["arm"] == arm
            assert run_now(client, key, "prompt")["experiment_arm"] == arm  # sticky
        pinned = run_now(client, ops, "prompt", release="v2")
        assert pinned["stage"] == "pin" and pinned["experiment"] is None  # pins are never enrolled

        # A canary takes its share first: those users are not in the experiment.
        started = client.post(
            "/v1/rollout/start",
            json={"release": "v2", "steps": [100], "override": True, "reason": "canary"},
            headers=auth(ops),
        )
        assert started.status_code == 200, started.text
        canary = run_now(client, users["ana"], "prompt")
        assert canary["stage"] == "canary" and canary["experiment"] is None
        report = client.get("/v1/experiments/prompt-v2/report", headers=auth(ops)).json()
        assert sum(a["runs"] for a in report["arms"]) == 8
