"""Structured logs: one JSON object per line with correlation ids; secrets never reach a line."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from conftest import Cli, ProjectFactory
from fastapi.testclient import TestClient
from observe_agent import POLICY, PRICES, TOOLS
from timing import wait_until

from tether.api.app import ServiceOptions, create_app
from tether.api.auth import issue_key
from tether.observe.logs import REDACTED, configure_logging, secrets_from_environment
from tether.settings import Settings
from tether.store.repository import Store

SECRET = "sk-live-0123456789abcdef"


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """Logging configured as a production process would, into a buffer; restored afterwards."""
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    stream = io.StringIO()
    root = logging.getLogger()
    level = root.level
    configure_logging(fmt="json", level="DEBUG", secrets=secrets_from_environment(), stream=stream)
    try:
        yield stream
    finally:
        for handler in [h for h in root.handlers if h.get_name() == "tether"]:
            root.removeHandler(handler)
        root.setLevel(level)
        structlog.reset_defaults()
        from tether.observe.logs import route_structlog_to_stdlib

        route_structlog_to_stdlib()


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def issue(scopes: list[str]) -> str:
    async def create() -> str:
        store = await Store.open(os.environ["TETHER_DATABASE_URL"])
        try:
            _, plaintext = await issue_key(store, user_id="u1", tenant_id="t1", scopes=scopes)
        finally:
            await store.close()
        return plaintext

    return asyncio.run(create())


def test_a_run_and_an_authenticated_request_log_json_with_correlation_ids_and_no_secrets(
    captured: io.StringIO, make_project: ProjectFactory
) -> None:
    project: Path = make_project(tools=TOOLS, policy=POLICY, name="obs-agent", extra=PRICES)
    key = issue(["runs:read", "runs:write"])
    app = create_app(ServiceOptions(project=project, embedded_worker_concurrency=1, settings=Settings()))
    with TestClient(app) as client:
        created = client.post(
            "/v1/runs",
            json={"input": 'lookup {"order": "5"}', "wait": 60},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert created.status_code == 200, created.text
        run = created.json()
        listed = client.get("/v1/runs", headers={"X-API-Key": key})
        assert listed.status_code == 200
        assert (
            client.get(
                "/v1/runs", headers={"Authorization": "Bearer tk_0000000000000000_nope-nope-nope-nope-nope"}
            ).status_code
            == 401
        )
        wait_until(  # the request log line is written once the response is on its way
            lambda: any(r.get("event") == "api request" and r.get("status") == 401 for r in lines(captured)),
            message="the 401 is logged",
        )

    text = captured.getvalue()
    records = lines(captured)  # every line is one JSON object
    assert key not in text and key.split("_", 2)[2] not in text and SECRET not in text

    trace_id = run["run_id"].removeprefix("run_")
    of_run = [r for r in records if r.get("run_id") == run["run_id"]]
    events = [r["event"] for r in of_run]
    assert events[0] == "run claimed" and events[-1] == "run finished"
    assert events.count("model call") == 2 and events.count("tool call") == 1
    for record in of_run:
        assert record["release"] == run["release_version"] and record["trace_id"] == trace_id
        assert record["level"] == "info" and record["timestamp"].endswith("Z")
    tool = next(r for r in of_run if r["event"] == "tool call")
    assert tool["tool"] == "lookup" and tool["step"] == 1 and tool["status"] == "succeeded"
    assert next(r for r in of_run if r["event"] == "run finished")["status"] == "succeeded"

    worker = [r for r in records if r["event"] in ("worker started", "worker stopped")]
    assert [r["event"] for r in worker] == ["worker started", "worker stopped"]
    assert worker[0]["concurrency"] == 1 and worker[0]["worker_id"] == worker[1]["worker_id"]
    assert worker[1]["completed"] == 1 and worker[0]["logger"] == "tether.worker"

    requests = [r for r in records if r["event"] == "api request"]
    by_path = {(r["method"], r["path"], r["status"]) for r in requests}
    assert ("POST", "/v1/runs", 200) in by_path and ("GET", "/v1/runs", 401) in by_path
    key_id = "key_" + key.split("_")[1]
    assert {r["key_id"] for r in requests if r["path"] == "/v1/runs" and r["status"] == 200} == {key_id}


def test_redaction_covers_structlog_and_standard_logging_alike(captured: io.StringIO) -> None:
    key = "tk_0123456789abcdef_" + "s3cr3t-" * 5
    structlog.get_logger("tether.test").info(
        "calling a provider",
        header=f"Bearer {SECRET}",
        nested={"url": "postgresql://app:hunter2-password@db/tether", "tokens": [key]},
        api_key="anything at all",
    )
    logging.getLogger("httpx").warning("request with Authorization: Bearer %s failed", "abcdefghijkl.mnop")
    try:
        raise RuntimeError(f"provider refused key {SECRET}")
    except RuntimeError:
        structlog.get_logger("tether.test").exception("model call crashed")

    text = captured.getvalue()
    for secret in (SECRET, "s3cr3t-", "hunter2-password", "abcdefghijkl.mnop", "anything at all"):
        assert secret not in text
    first, second, third = lines(captured)
    assert first["api_key"] == REDACTED
    assert first["header"] == f"Bearer {REDACTED}"
    assert first["nested"]["url"] == f"postgresql://app:{REDACTED}@db/tether"
    assert first["nested"]["tokens"] == [
        f"tk_0123456789abcdef_{REDACTED}"
    ]  # the key id stays, for correlation
    assert second["logger"] == "httpx" and second["level"] == "warning" and REDACTED in second["event"]
    assert "RuntimeError: provider refused key [REDACTED]" in third["exception"]


def test_the_cli_keeps_json_output_clean_without_logging_configured(
    cli: Cli, make_project: ProjectFactory
) -> None:
    project = make_project(tools=TOOLS, policy=POLICY, extra=PRICES)
    run = cli.json(
        "run", "--project", project, "--user", "u1", 'lookup {"order": "1"}'
    )  # stdout is pure JSON
    assert run["status"] == "succeeded"
