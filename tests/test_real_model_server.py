"""Whole runs through a real OpenAI-compatible server: llama.cpp's, as the issue's tester used it.

Every other model test talks to a fake; these talk to a real server process over HTTP, so they catch
what fakes cannot: a request shape the server rejects (`"content": null` made llama.cpp answer 500),
a missing `tool_choice` that silently turns tools off, real token usage, a server that goes away
mid-run, and a prompt longer than the model's context. They need the `local-model` extra and skip
without it, saying so (`TETHER_REQUIRE_MODEL_SERVER=1`, set by CI when the extra installed, makes
them fail instead).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Cli, ProjectFactory
from model_server import CONTEXT_TOKENS, REQUIRED, ModelServer, missing, model_file, running_server

pytestmark = pytest.mark.model_server

CALCULATOR = '''
from tether import tool


@tool
def add(a: int, b: int) -> int:
    """Add two whole numbers and return their sum.

    Args:
        a: The first number.
        b: The second number.
    """
    return a + b
'''

# The same tool as the model sees it (so it calls it for the same task), but running it stops the
# model server, as if it crashed between two model calls of the run.
STOPPING_CALCULATOR = '''
import os
import signal
import socket
import time

from tether import tool


@tool
def add(a: int, b: int) -> int:
    """Add two whole numbers and return their sum.

    Args:
        a: The first number.
        b: The second number.
    """
    os.kill(int(os.environ["TEST_MODEL_SERVER_PID"]), signal.SIGKILL)
    port = int(os.environ["TEST_MODEL_SERVER_PORT"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until nothing listens any more
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return a + b
        time.sleep(0.1)
    raise RuntimeError("the model server did not stop")
'''

# The fallback answers once the real server is gone.
POLICY = """
def respond(turn):
    return "answered by the fallback after the server went away"
"""


@pytest.fixture(scope="module")
def gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    problem = missing()
    if problem is not None:
        if REQUIRED:
            pytest.fail(f"a real model server is required (TETHER_REQUIRE_MODEL_SERVER=1): {problem}")
        pytest.skip(f"no real OpenAI-compatible server here: {problem}")
    return model_file(tmp_path_factory.mktemp("gguf"))


@pytest.fixture(scope="module")
def server(gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelServer]:
    with running_server(gguf, tmp_path_factory.mktemp("server-logs")) as running:
        yield running


def real_project(
    make_project: ProjectFactory,
    base_url: str,
    *,
    tools: str = CALCULATOR,
    tool_choice: str = "auto",
    fallbacks: str = "[]",
    max_output_tokens: int = 64,
    max_steps: int = 4,
    prompt: str = "You are a calculator. Use the add tool for every sum.",
) -> Path:
    # A generous timeout: on a busy two-core machine one answer of this small model can take a minute.
    return make_project(
        tools=tools,
        policy=POLICY,
        prompt=prompt,
        model=(
            f'primary = "local:gemma"\nfallbacks = {fallbacks}\ntool_choice = "{tool_choice}"\n'
            f"max_output_tokens = {max_output_tokens}\nretries = 2\ntimeout_s = 600"
        ),
        limits=f"max_steps = {max_steps}\nmax_tokens_per_run = 200000",
        extra=(
            f'[providers.local]\nkind = "openai"\nbase_url = "{base_url}"\n\n'
            '[prices."local:gemma"]\ninput_per_mtok = 1.0\noutput_per_mtok = 2.0'
        ),
    )


def run(cli: Cli, project: Path, task: str) -> dict[str, Any]:
    result: dict[str, Any] = cli.json("run", "--project", str(project), "--user", "t", task)
    return result


def steps(cli: Cli, project: Path, run_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = cli.json("runs", "show", run_id, "--project", str(project))["steps"]
    return found


def test_the_model_calls_a_tool_and_the_request_after_it_is_accepted(
    server: ModelServer, cli: Cli, make_project: ProjectFactory
) -> None:
    # Without `tool_choice` this server never calls a tool; with the assistant's tool call sent back
    # as `"content": null` it answers the next request with HTTP 500. Both used to fail this run.
    project = real_project(make_project, server.base_url)
    record = run(cli, project, "What is 2 + 3? Use the add tool.")
    taken = steps(cli, project, record["run_id"])
    assert record["status"] != "failed", (record["error"], taken)
    first, tool_step, second = taken[:3]
    assert (first["kind"], first["finish_reason"]) == ("model_call", "tool_calls"), first
    assert tool_step["kind"] == "tool_call" and tool_step["tool_call_id"] in str(first["message"])
    # The request that carried the tool call and its result back was accepted at the first try.
    assert (second["kind"], second["status"], second["attempts"]) == ("model_call", "succeeded", 1), second
    assert second["name"] == "local:gemma"


def test_usage_is_the_servers_count_and_an_answer_cut_off_is_marked_truncated(
    server: ModelServer, cli: Cli, make_project: ProjectFactory
) -> None:
    project = real_project(make_project, server.base_url, tool_choice="none", max_output_tokens=4)
    record = run(cli, project, "Write a long story about a lighthouse keeper.")
    assert record["status"] == "succeeded", record["error"]
    (model_step,) = steps(cli, project, record["run_id"])
    assert model_step["finish_reason"] == "length" and record["truncated"] is True
    assert model_step["input_tokens"] > 10 and model_step["output_tokens"] == 4
    assert (record["input_tokens"], record["output_tokens"]) == (model_step["input_tokens"], 4)
    expected = (model_step["input_tokens"] * 1.0 + 4 * 2.0) / 1_000_000
    assert record["estimated_cost_usd"] == pytest.approx(expected)


def test_a_prompt_longer_than_the_context_fails_at_once_with_the_servers_reason(
    server: ModelServer, cli: Cli, make_project: ProjectFactory
) -> None:
    project = real_project(make_project, server.base_url, tool_choice="none")
    record = run(
        cli, project, "Summarise: " + "the quick brown fox jumps over the lazy dog " * CONTEXT_TOKENS
    )
    assert record["status"] == "failed"
    assert "HTTP 400" in record["error"] and "maximum context length is 1024 tokens" in record["error"]
    (model_step,) = steps(cli, project, record["run_id"])
    assert model_step["attempts"] == 1  # permanent: not retried


def test_a_server_stopped_mid_run_is_retried_then_the_fallback_answers(
    gguf: Path, tmp_path: Path, cli: Cli, make_project: ProjectFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running_server(gguf, tmp_path) as own:
        monkeypatch.setenv("TEST_MODEL_SERVER_PID", str(own.process.pid))
        monkeypatch.setenv("TEST_MODEL_SERVER_PORT", own.base_url.split(":")[-1].split("/")[0])
        project = real_project(
            make_project, own.base_url, tools=STOPPING_CALCULATOR, fallbacks='["scripted:fallback-v1"]'
        )
        record = run(cli, project, "What is 2 + 3? Use the add tool.")
        taken = steps(cli, project, record["run_id"])
        assert own.process.poll() == -signal.SIGKILL, ("the tool did not stop the server", taken)
    assert record["status"] == "succeeded", record["error"]
    assert record["output"] == "answered by the fallback after the server went away"
    first, tool_step, last = taken
    assert first["name"] == "local:gemma"
    assert (tool_step["name"], tool_step["status"]) == ("add", "succeeded")
    assert tool_step["result"] == str(tool_step["arguments"]["a"] + tool_step["arguments"]["b"])
    # 1 + 2 retries against the stopped server (connection refused), then the fallback's one request.
    assert (last["name"], last["attempts"]) == ("scripted:fallback-v1", 4)
