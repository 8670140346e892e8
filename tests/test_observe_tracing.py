"""Traces of real runs: GenAI-convention spans, one trace across executions, stored and sent over OTLP.

The OTLP receiver is a real HTTP server in this process that decodes the protobuf
`ExportTraceServiceRequest` the OpenTelemetry exporter sends, as any collector would.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import Cli, ProjectFactory
from fastapi.testclient import TestClient
from observe_agent import POLICY, PRICES, TOOLS
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tether.api.app import ServiceOptions, create_app
from tether.api.auth import issue_key
from tether.observe.metrics import Metrics
from tether.observe.observer import TelemetryObserver, root_span_id
from tether.observe.tracing import Tracing, hex_trace_id
from tether.rollout.releases import working_copy_release
from tether.settings import Settings
from tether.store.insights import RunFilter
from tether.store.records import RunOrigin
from tether.store.repository import Store
from tether.store.telemetry import SpanRecord


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


class OtlpReceiver:
    """POST /v1/traces with protobuf bodies; keeps every span as a plain dict."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.content_types: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.content_types.append(self.headers.get("Content-Type", ""))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                for resource_spans in request.resource_spans:
                    resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
                    for scope_spans in resource_spans.scope_spans:
                        for span in scope_spans.spans:
                            receiver.spans.append(
                                {
                                    "path": self.path,
                                    "service": resource.get("service.name"),
                                    "resource": resource,
                                    "trace_id": span.trace_id.hex(),
                                    "span_id": span.span_id.hex(),
                                    "parent": span.parent_span_id.hex() or None,
                                    "name": span.name,
                                    "kind": Span.SpanKind.Name(span.kind),
                                    "start": span.start_time_unix_nano,
                                    "end": span.end_time_unix_nano,
                                    "attributes": {a.key: _value(a.value) for a in span.attributes},
                                    "status": span.status.code,
                                }
                            )
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def otlp(monkeypatch: pytest.MonkeyPatch) -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "tether-test")
    try:
        yield receiver
    finally:
        receiver.close()


def _project(make_project: ProjectFactory) -> Path:
    return make_project(tools=TOOLS, policy=POLICY, name="obs-agent", extra=PRICES)


def _stored_spans(run_id: str) -> list[SpanRecord]:
    async def read() -> list[SpanRecord]:
        store = await Store.open(os.environ["TETHER_DATABASE_URL"])
        try:
            return await store.telemetry.list_spans(run_id=run_id)
        finally:
            await store.close()

    return asyncio.run(read())


def _operation(span: dict[str, Any]) -> str:
    attributes = span["attributes"]
    return str(attributes.get("gen_ai.operation.name") or attributes.get("tether.operation"))


def assert_one_nested_tree(spans: list[dict[str, Any]]) -> dict[str, Any]:
    """One root; every other span's parent is in the trace and its time lies inside the parent's."""
    by_id = {s["span_id"]: s for s in spans}
    roots = [s for s in spans if s["parent"] is None]
    assert len(roots) == 1, [s["name"] for s in roots]
    for span in spans:
        if span["parent"] is None:
            continue
        parent = by_id[span["parent"]]  # no orphan: the parent was sent too
        assert parent["start"] <= span["start"] <= span["end"] <= parent["end"], (
            span["name"],
            parent["name"],
        )
    return roots[0]


def test_a_run_is_one_trace_of_genai_spans_sent_over_otlp_and_stored(
    cli: Cli, make_project: ProjectFactory, otlp: OtlpReceiver
) -> None:
    project = _project(make_project)
    run = cli.json(
        "run", "--project", project, "--user", "u1", "--thread", "thr-7", 'lookup {"order": "12345"}'
    )
    assert run["status"] == "succeeded"
    trace_id = run["run_id"].removeprefix("run_")
    assert hex_trace_id(run["run_id"]) == trace_id

    sent = [s for s in otlp.spans if s["trace_id"] == trace_id]
    assert {s["path"] for s in sent} == {"/v1/traces"}
    assert all(ct == "application/x-protobuf" for ct in otlp.content_types)
    assert {s["service"] for s in sent} == {"tether-test"}
    # Phoenix files traces under this resource attribute; by default the agent's name.
    assert {s["resource"]["openinference.project.name"] for s in sent} == {"obs-agent"}
    by_op: dict[str, list[dict[str, Any]]] = {}
    for span in sent:
        by_op.setdefault(_operation(span), []).append(span)
    assert sorted((op, len(spans)) for op, spans in by_op.items()) == [
        ("chat", 2),
        ("execute_tool", 1),
        ("execution", 1),
        ("guardrail", 3),  # input, the tool call and the answer, all allowed (docs/guardrails.md)
        ("invoke_agent", 1),
    ]
    root = assert_one_nested_tree(sent)
    assert by_op["invoke_agent"] == [root]
    attrs = root["attributes"]
    assert root["name"] == "invoke_agent obs-agent" and root["kind"] == "SPAN_KIND_INTERNAL"
    assert root["span_id"] == f"{root_span_id(run['run_id']):016x}"
    assert attrs["openinference.span.kind"] == "AGENT"
    assert attrs["gen_ai.agent.name"] == "obs-agent"
    assert attrs["gen_ai.agent.version"] == run["release_version"] == attrs["tether.release.version"]
    assert attrs["gen_ai.request.model"] == "test-v1" and attrs["gen_ai.provider.name"] == "scripted"
    assert attrs["tether.run.id"] == run["run_id"]
    assert attrs["user.id"] == "u1" and attrs["gen_ai.conversation.id"] == "thr-7"
    assert attrs["session.id"] == "thr-7"
    assert len(attrs["tether.prompt.hash"]) == 64 and len(attrs["tether.release.hash"]) == 64
    assert attrs["tether.run.status"] == "succeeded" and attrs["tether.run.steps"] == 3
    assert attrs["tether.cost_usd"] == pytest.approx(run["estimated_cost_usd"])
    (segment,) = by_op["execution"]
    assert segment["parent"] == root["span_id"] and segment["name"] == "execution 1"
    assert segment["attributes"]["openinference.span.kind"] == "CHAIN"

    first, second = sorted(by_op["chat"], key=lambda s: s["attributes"]["tether.step.index"])
    for chat in (first, second):
        assert chat["parent"] == segment["span_id"]
        assert chat["name"] == "chat test-v1"
        # The scripted model answers in-process: not a CLIENT call (a remote model's is, see below).
        assert chat["kind"] == "SPAN_KIND_INTERNAL"
        chat_attrs = chat["attributes"]
        assert chat_attrs["openinference.span.kind"] == "LLM"
        assert chat_attrs["gen_ai.request.model"] == "test-v1"
        assert chat_attrs["gen_ai.usage.input_tokens"] == chat_attrs["llm.token_count.prompt"] > 0
        assert chat_attrs["gen_ai.usage.output_tokens"] == chat_attrs["llm.token_count.completion"] > 0
        assert chat_attrs["tether.cost_usd"] == chat_attrs["llm.cost.total"] > 0
        assert chat_attrs["llm.cost.prompt"] + chat_attrs["llm.cost.completion"] == pytest.approx(
            chat_attrs["llm.cost.total"]
        )
        assert chat_attrs["tether.run.id"] == run["run_id"]
        # Content capture is off by default.
        assert not {"input.value", "output.value", "gen_ai.input.messages"} & set(chat_attrs)
    assert first["attributes"]["gen_ai.response.finish_reasons"] == ["tool_calls"]
    assert second["attributes"]["gen_ai.response.finish_reasons"] == ["stop"]
    total_tokens = sum(
        c["attributes"]["gen_ai.usage.input_tokens"] + c["attributes"]["gen_ai.usage.output_tokens"]
        for c in by_op["chat"]
    )
    assert total_tokens == run["input_tokens"] + run["output_tokens"]

    (tool,) = by_op["execute_tool"]
    assert tool["name"] == "execute_tool lookup" and tool["parent"] == segment["span_id"]
    assert tool["kind"] == "SPAN_KIND_INTERNAL"
    assert tool["attributes"]["openinference.span.kind"] == "TOOL"
    assert tool["attributes"]["gen_ai.tool.name"] == "lookup"
    assert tool["attributes"]["gen_ai.tool.call.id"].startswith("call_")
    assert tool["attributes"]["tether.outcome"] == "succeeded"
    assert "gen_ai.tool.call.arguments" not in tool["attributes"]

    stored = _stored_spans(run["run_id"])
    assert {s.span_id for s in stored} == {s["span_id"] for s in sent}
    assert {s.trace_id for s in stored} == {trace_id}
    assert {s.operation for s in stored} == {"invoke_agent", "execution", "chat", "execute_tool", "guardrail"}
    stored_tool = next(s for s in stored if s.operation == "execute_tool")
    assert stored_tool.outcome == "succeeded" and stored_tool.status == "unset"
    assert stored_tool.duration_ms >= 0 and stored_tool.attributes["gen_ai.tool.name"] == "lookup"


def test_a_failing_tool_is_an_error_span(cli: Cli, make_project: ProjectFactory, otlp: OtlpReceiver) -> None:
    project = _project(make_project)
    run = cli.json("run", "--project", project, "--user", "u1", 'explode {"reason": "disk full"}')
    spans = _stored_spans(run["run_id"])
    (tool,) = [s for s in spans if s.operation == "execute_tool"]
    assert tool.status == "error" and tool.outcome == "failed"
    assert tool.status_message is not None and "boom: disk full" in tool.status_message
    assert tool.attributes["error.type"] == "tool_error"


def test_a_run_that_parks_for_approval_is_one_trace_under_one_root(
    cli: Cli, make_project: ProjectFactory, otlp: OtlpReceiver
) -> None:
    project = _project(make_project)
    parked = cli.json("run", "--project", project, "--user", "u1", 'refund {"order": "77"}')
    assert parked["status"] == "waiting_for_approval"
    trace_id = parked["run_id"].removeprefix("run_")
    # While it waits, the first execution is there, hanging under the root that is still open.
    while_parked = [s for s in otlp.spans if s["trace_id"] == trace_id]
    assert [s["name"] for s in while_parked if s["parent"] is None] == []
    done = cli.json("approve", parked["run_id"], "--project", project, "--by", "alice")
    assert done["status"] == "succeeded"

    sent = [s for s in otlp.spans if s["trace_id"] == trace_id]
    root = assert_one_nested_tree(sent)  # the issue's "two rows for one trace" and a wait before its parent
    assert root["name"] == "invoke_agent obs-agent"
    assert root["attributes"]["tether.run.status"] == "succeeded"
    assert root["attributes"]["tether.run.attempts"] == 2
    segments = sorted((s for s in sent if _operation(s) == "execution"), key=lambda s: s["start"])
    assert [s["name"] for s in segments] == ["execution 1", "execution 2"]
    assert {s["parent"] for s in segments} == {root["span_id"]}
    assert [s["attributes"]["tether.outcome"] for s in segments] == ["waiting_for_approval", "succeeded"]
    (wait,) = [s for s in sent if _operation(s) == "approval_wait"]
    assert wait["parent"] == root["span_id"] and wait["kind"] == "SPAN_KIND_INTERNAL"
    # A wait for a human, not a tool call: no GenAI operation or tool name for backends to misread.
    assert "gen_ai.tool.name" not in wait["attributes"] and "gen_ai.operation.name" not in wait["attributes"]
    assert wait["attributes"]["openinference.span.kind"] == "CHAIN"
    assert wait["attributes"]["tether.approval.tool"] == "refund"
    assert wait["attributes"]["tether.outcome"] == "approved"
    assert segments[0]["start"] <= wait["start"] and wait["end"] <= segments[1]["end"]

    spans = _stored_spans(parked["run_id"])
    assert {s.span_id for s in spans} == {s["span_id"] for s in sent}
    stored_wait = next(s for s in spans if s.operation == "approval_wait")
    assert (
        stored_wait.outcome == "approved" and stored_wait.attributes["tether.approval.decided_by"] == "alice"
    )
    (refund,) = [s for s in spans if s.operation == "execute_tool"]
    assert refund.parent_span_id == segments[1]["span_id"] and refund.outcome == "succeeded"
    first = next(s for s in spans if s.span_id == segments[0]["span_id"])
    assert any(e["name"] == "approval_requested" for e in first.events)


async def test_guardrail_decisions_become_spans_metrics_and_a_search_filter(
    make_project: ProjectFactory, store: Store
) -> None:
    project = _project(make_project)
    release = await working_copy_release(store, project)
    run = await store.create_run(origin=RunOrigin.API, release=release, user_id="u1", input="hello")
    claimed = await store.claim_run("w1", 30, run_id=run.id)
    assert claimed is not None
    metrics = Metrics()
    observer = TelemetryObserver(store, tracing=Tracing(), metrics=metrics)

    observation = observer.start(claimed, release)
    observation.guardrail(name="pii", stage="output", decision="redact", reason="an email address", step=1)
    observation.guardrail(name="injection", stage="tool_result", decision="allow")
    await observation.close(await store.get_run(run.id))

    spans = await store.telemetry.list_spans(run_id=run.id)
    guards = {s.name: s for s in spans if s.operation == "guardrail"}
    assert set(guards) == {"guardrail pii", "guardrail injection"}
    assert guards["guardrail pii"].outcome == "redact"
    assert guards["guardrail pii"].attributes["tether.guardrail.reason"] == "an email address"
    assert guards["guardrail pii"].attributes["tether.guardrail.stage"] == "output"
    sample = metrics.registry.get_sample_value(
        "tether_guardrail_triggers_total", {"guardrail": "pii", "stage": "output", "decision": "redact"}
    )
    assert sample == 1.0
    assert (
        metrics.registry.get_sample_value(
            "tether_guardrail_triggers_total",
            {"guardrail": "injection", "stage": "tool_result", "decision": "allow"},
        )
        is None
    )

    async def found(guardrail: str) -> list[str]:
        page = await store.insights.search_runs(RunFilter(tenant_id="default", guardrail=guardrail))
        return [r.id for r in page.runs]

    assert await found("any") == [run.id]
    assert await found("pii") == [run.id]
    assert await found("injection") == []  # it allowed


async def test_a_span_stored_twice_keeps_its_first_copy(store: Store) -> None:
    now = datetime.now(UTC)
    first = SpanRecord(
        trace_id="a" * 32,
        span_id="b" * 16,
        parent_span_id=None,
        run_id=None,
        name="approval_wait refund",
        operation="approval_wait",
        outcome="approved",
        status="unset",
        status_message=None,
        started_at=now,
        ended_at=now,
        duration_ms=0.0,
        attributes={"n": 1},
        events=[],
    )
    await store.telemetry.add_spans([first])
    again = first.model_copy(update={"attributes": {"n": 2}})
    other = first.model_copy(update={"span_id": "c" * 16})
    await store.telemetry.add_spans([again, other])
    stored = await store.telemetry.list_spans(trace_id="a" * 32)
    assert sorted((s.span_id, s.attributes["n"]) for s in stored) == [("b" * 16, 1), ("c" * 16, 1)]


class _ModelServer(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat endpoint that answers every request with one priced text reply."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        reply = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": "house-model-2026",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "All done."},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100},
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def model_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ModelServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


SECRET = "tk_0123456789abcdef_s3cr3tV4lu3xyz"


def test_a_self_hosted_model_call_is_a_client_span_with_its_cost_and_opt_in_redacted_content(
    cli: Cli,
    make_project: ProjectFactory,
    otlp: OtlpReceiver,
    model_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TETHER_TRACE_CONTENT", "true")
    monkeypatch.setenv("TETHER_TRACE_PROJECT", "support-prod")
    project = make_project(
        tools=TOOLS,
        policy=POLICY,
        name="obs-agent",
        model='primary = "house:model-a"',
        extra=(
            f'[providers.house]\nkind = "openai"\nbase_url = "{model_url}"\n\n'
            '[prices."house:model-a"]\ninput_per_mtok = 2.0\noutput_per_mtok = 10.0\n'
        ),
    )
    run = cli.json("run", "--project", project, "--user", "u1", f"my key is {SECRET}, please help")
    assert run["status"] == "succeeded" and run["output"] == "All done."
    sent = [s for s in otlp.spans if s["trace_id"] == run["run_id"].removeprefix("run_")]
    assert {s["resource"]["openinference.project.name"] for s in sent} == {"support-prod"}
    (chat,) = [s for s in sent if _operation(s) == "chat"]
    assert chat["kind"] == "SPAN_KIND_CLIENT"  # a remote model call (GenAI conventions)
    attrs = chat["attributes"]
    # A model no public price list knows, priced by the project's [prices] override: backends that
    # cannot price it read Tether's cost from the OpenInference cost attributes.
    assert attrs["llm.cost.prompt"] == pytest.approx(1000 * 2.0 / 1e6)
    assert attrs["llm.cost.completion"] == pytest.approx(100 * 10.0 / 1e6)
    assert attrs["llm.cost.total"] == pytest.approx(run["estimated_cost_usd"])
    assert attrs["llm.model_name"] == "house-model-2026" and attrs["llm.provider"] == "house"
    assert attrs["llm.token_count.total"] == 1100
    # Content, GenAI-style and OpenInference-style, with the key's secret scrubbed as in logs.
    sent_messages = json.loads(attrs["gen_ai.input.messages"])
    assert [m["role"] for m in sent_messages] == ["user"]
    assert sent_messages[0]["parts"][0]["type"] == "text"
    assert "[REDACTED]" in sent_messages[0]["parts"][0]["content"]
    assert json.loads(attrs["gen_ai.system_instructions"])[0]["type"] == "text"
    answer = json.loads(attrs["gen_ai.output.messages"])
    assert answer == [
        {"role": "assistant", "parts": [{"type": "text", "content": "All done."}], "finish_reason": "stop"}
    ]
    assert attrs["llm.input_messages.0.message.role"] == "system"
    assert attrs["llm.input_messages.1.message.role"] == "user"
    assert attrs["output.value"] == "All done."
    (root,) = [s for s in sent if s["parent"] is None]
    assert "[REDACTED]" in root["attributes"]["input.value"]
    assert root["attributes"]["output.value"] == "All done."
    everything = json.dumps([s["attributes"] for s in sent]) + json.dumps(
        [s.attributes for s in _stored_spans(run["run_id"])]
    )
    assert "s3cr3tV4lu3xyz" not in everything


def test_captured_tool_arguments_and_results_are_redacted(
    cli: Cli, make_project: ProjectFactory, otlp: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TETHER_TRACE_CONTENT", "true")
    project = _project(make_project)
    run = cli.json("run", "--project", project, "--user", "u1", f'lookup {{"order": "{SECRET}"}}')
    sent = [s for s in otlp.spans if s["trace_id"] == run["run_id"].removeprefix("run_")]
    (tool,) = [s for s in sent if _operation(s) == "execute_tool"]
    arguments = json.loads(tool["attributes"]["gen_ai.tool.call.arguments"])
    assert arguments == {"order": "tk_0123456789abcdef_[REDACTED]"}
    assert tool["attributes"]["gen_ai.tool.call.result"] == "order tk_0123456789abcdef_[REDACTED]: shipped"
    assert tool["attributes"]["input.value"] == tool["attributes"]["gen_ai.tool.call.arguments"]
    assert tool["attributes"]["output.value"] == tool["attributes"]["gen_ai.tool.call.result"]


def test_a_run_cancelled_while_parked_still_gets_its_root(
    cli: Cli, make_project: ProjectFactory, otlp: OtlpReceiver
) -> None:
    project = _project(make_project)
    parked = cli.json("run", "--project", project, "--user", "u1", 'refund {"order": "78"}')
    assert parked["status"] == "waiting_for_approval"
    cancelled = cli.json("runs", "cancel", parked["run_id"], "--project", project)
    assert cancelled["status"] == "cancelled"
    sent = [s for s in otlp.spans if s["trace_id"] == parked["run_id"].removeprefix("run_")]
    root = assert_one_nested_tree(sent)
    assert root["name"] == "invoke_agent obs-agent"
    assert root["attributes"]["tether.run.status"] == "cancelled"
    assert [s["name"] for s in sent if s["parent"] == root["span_id"]] == ["execution 1"]
    stored = _stored_spans(parked["run_id"])
    assert {s.span_id for s in stored} == {s["span_id"] for s in sent}


def test_the_api_records_the_root_of_a_run_it_cancels_while_parked(
    make_project: ProjectFactory, otlp: OtlpReceiver
) -> None:
    project = _project(make_project)

    async def key() -> str:
        store = await Store.open(os.environ["TETHER_DATABASE_URL"])
        try:
            return (await issue_key(store, user_id="u1", tenant_id="default", scopes=["runs:write"]))[1]
        finally:
            await store.close()

    headers = {"Authorization": f"Bearer {asyncio.run(key())}"}
    app = create_app(ServiceOptions(project=project, embedded_worker_concurrency=1, settings=Settings()))
    with TestClient(app) as client:
        parked = client.post(
            "/v1/runs", json={"input": 'refund {"order": "79"}', "wait": 30}, headers=headers
        )
        assert parked.json()["status"] == "waiting_for_approval", parked.text
        run_id = parked.json()["run_id"]
        assert client.post(f"/v1/runs/{run_id}/cancel", headers=headers).json()["status"] == "cancelled"
    spans = _stored_spans(run_id)
    (root,) = [s for s in spans if s.parent_span_id is None]
    assert root.operation == "invoke_agent" and root.outcome == "cancelled"
    assert {s.parent_span_id for s in spans if s.operation == "execution"} == {root.span_id}
