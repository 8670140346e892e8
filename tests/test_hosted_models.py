"""Whole runs against local OpenAI- and Anthropic-compatible servers, through the official SDKs."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from conftest import Cli, ProjectFactory

TOOLS = '''
from tether import tool

@tool
def lookup_order(order_id: str) -> dict:
    """Look up an order.

    Args:
        order_id: The order number.
    """
    return {"order_id": order_id, "status": "shipped"}
'''


class FakeProvider(BaseHTTPRequestHandler):
    """Answers like a provider: first a tool call, then (once it sees the tool result) a final text."""

    requests: ClassVar[list[tuple[str, dict[str, Any]]]] = []

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests.append((self.path, body))
        if self.path.endswith("/chat/completions"):
            reply = self._openai(body)
        elif self.path.endswith("/messages"):
            reply = self._anthropic(body)
        else:
            self.send_error(404)
            return
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    @staticmethod
    def _openai(body: dict[str, Any]) -> dict[str, Any]:
        seen_tool = any(m["role"] == "tool" for m in body["messages"])
        message: dict[str, Any] = (
            {"role": "assistant", "content": "Order 12345 has shipped."}
            if seen_tool
            else {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "lookup_order", "arguments": '{"order_id": "12345"}'},
                    }
                ],
            }
        )
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": "llama-3.1-8b-2026",
            "choices": [
                {"index": 0, "message": message, "finish_reason": "stop" if seen_tool else "tool_calls"}
            ],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100},
        }

    @staticmethod
    def _anthropic(body: dict[str, Any]) -> dict[str, Any]:
        seen_tool = any(
            isinstance(m["content"], list) and any(b.get("type") == "tool_result" for b in m["content"])
            for m in body["messages"]
        )
        content: list[dict[str, Any]] = (
            [{"type": "text", "text": "Order 12345 has shipped."}]
            if seen_tool
            else [
                {"type": "tool_use", "id": "toolu_1", "name": "lookup_order", "input": {"order_id": "12345"}}
            ]
        )
        return {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-test-2026",
            "content": content,
            "stop_reason": "end_turn" if seen_tool else "tool_use",
            "stop_sequence": None,
            "usage": {"input_tokens": 1000, "output_tokens": 100},
        }


@pytest.fixture
def provider_url() -> Iterator[str]:
    FakeProvider.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeProvider)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("kind", "base_path"), [("openai", "/v1"), ("anthropic", "")])
def test_run_on_a_hosted_model_is_priced_by_its_reference(
    cli: Cli, make_project: ProjectFactory, provider_url: str, kind: str, base_path: str
) -> None:
    project = make_project(
        tools=TOOLS,
        policy="def respond(turn):\n    return 'unused'\n",
        model='primary = "house:model-a"',
        extra=(
            f'[providers.house]\nkind = "{kind}"\nbase_url = "{provider_url}{base_path}"\n\n'
            '[prices."house:model-a"]\ninput_per_mtok = 2.0\noutput_per_mtok = 10.0\n'
        ),
    )
    run = cli.json("run", "--project", project, "--user", "u1", "Where is my order 12345?")

    assert run["status"] == "succeeded", run
    assert run["output"] == "Order 12345 has shipped."
    assert run["tools_called"] == ["lookup_order"]
    assert (run["input_tokens"], run["output_tokens"]) == (2000, 200)
    assert run["estimated_cost_usd"] == pytest.approx(2 * (1000 * 2.0 + 100 * 10.0) / 1_000_000)
    steps = cli.json("runs", "show", run["run_id"], "--project", project)["steps"]
    assert [s["result"] for s in steps if s["kind"] == "model_call"] == ["house:model-a"] * 2
    assert len(FakeProvider.requests) == 2
    second = FakeProvider.requests[1][1]
    assert second["model"] == "model-a"
    assert "12345" in json.dumps(second["messages"])  # the tool result went back to the model
