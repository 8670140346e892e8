"""Circuit breakers: transitions, the fallback chain skipping an open model, sharing across
processes (database and Redis), degraded answers, tool breakers and tenacity-paced tool retries."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Cli, ProjectFactory

from tether.models.base import Message, ModelResponse, ToolSpec, TransientModelError
from tether.models.breakers import (
    BreakerBoard,
    BreakerPolicy,
    BreakerState,
    MemoryBackend,
    admit,
    model_key,
    settle,
)
from tether.models.routing import ChainUnavailableError, FallbackChain
from tether.runtime.breaker_state import RedisBackend, StoreBackend
from tether.store.repository import Store

POLICY = BreakerPolicy(failures=3, error_rate=0.5, window_s=60, min_calls=4, open_s=30, probes=1)


def test_consecutive_failures_open_and_a_probe_closes_again() -> None:
    state = BreakerState()
    for second in range(2):
        state = settle(state, POLICY, float(second), ok=False, error="HTTP 503")
    assert state.phase == "closed" and state.consecutive == 2
    state = settle(state, POLICY, 2.0, ok=False, error="HTTP 503")
    assert state.phase == "open" and state.last_error == "HTTP 503"
    assert admit(state, POLICY, 31.9) == (False, state)  # still cooling down
    allowed, probing = admit(state, POLICY, 32.0)
    assert allowed and probing.phase == "half_open" and probing.probes == 1
    assert admit(probing, POLICY, 32.5)[0] is False  # one probe at a time
    assert settle(probing, POLICY, 33.0, ok=True).phase == "closed"
    reopened = settle(probing, POLICY, 33.0, ok=False, error="again")
    assert reopened.phase == "open" and reopened.opened_at == 33.0


def test_error_rate_over_the_window_opens_without_consecutive_failures() -> None:
    state = BreakerState()
    for second, ok in enumerate([True, False, True, False]):
        state = settle(state, POLICY, float(second), ok=ok)
    assert state.phase == "open"  # 2 of 4 failed, never 3 in a row
    fresh = BreakerState()
    for second, ok in enumerate([False, True, False]):
        fresh = settle(fresh, POLICY, float(second), ok=ok)
    assert fresh.phase == "closed"  # fewer than min_calls: not judged yet
    assert settle(fresh, POLICY, 100.0, ok=True).window_calls == 1  # a new window starts


def test_a_probe_whose_process_died_is_forgotten_after_open_s() -> None:
    stuck = BreakerState(phase="half_open", probes=1, changed_at=10.0, opened_at=0.0)
    assert admit(stuck, POLICY, 20.0)[0] is False
    assert admit(stuck, POLICY, 40.0)[0] is True


class _Counting:
    def __init__(self, name: str, *, fail: bool) -> None:
        self.name = name
        self.fail = fail
        self.calls = 0

    async def chat(
        self, messages: list[Message], tools: list[ToolSpec], *, max_output_tokens: int | None = None
    ) -> ModelResponse:
        self.calls += 1
        if self.fail:
            raise TransientModelError(f"model {self.name} failed: HTTP 503: overloaded")
        return ModelResponse(content=f"from {self.name}")


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_an_open_model_is_skipped_without_a_request_until_it_probes() -> None:
    clock = _Clock()
    board = BreakerBoard(MemoryBackend(), refresh_s=0, clock=clock)
    down, backup = _Counting("p:down", fail=True), _Counting("p:backup", fail=False)
    chain = FallbackChain([down, backup], retries=0, backoff_s=0, breakers=board, breaker_policy=POLICY)
    for _ in range(3):
        assert (await chain.chat([Message(role="user", content="hi")], [])).content == "from p:backup"
    assert down.calls == 3
    for _ in range(5):
        await chain.chat([Message(role="user", content="hi")], [])
    assert down.calls == 3  # skipped at once while open
    clock.now += POLICY.open_s
    down.fail = False
    response = await chain.chat([Message(role="user", content="hi")], [])
    assert response.content == "from p:down" and down.calls == 4  # the probe succeeded
    assert (await board.backend.read(model_key("p:down"))).phase == "closed"


async def test_every_model_open_raises_chain_unavailable_with_when_to_retry() -> None:
    clock = _Clock()
    board = BreakerBoard(MemoryBackend(), refresh_s=0, clock=clock)
    down = _Counting("p:down", fail=True)
    chain = FallbackChain([down], retries=5, backoff_s=0, breakers=board, breaker_policy=POLICY)
    with pytest.raises(Exception, match="every model in the chain failed"):
        await chain.chat([Message(role="user", content="hi")], [])
    with pytest.raises(ChainUnavailableError) as raised:
        await chain.chat([Message(role="user", content="hi")], [])
    assert raised.value.retry_at == clock.now + POLICY.open_s
    assert "circuit open" in str(raised.value) and raised.value.attempts == 0


async def test_breakers_are_shared_by_processes_through_the_database(store: Store) -> None:
    # Two boards on two connections to one database stand for two worker processes.
    other = await Store.open(str(store.engine.url.render_as_string(hide_password=False)), migrate=False)
    try:
        first = BreakerBoard(StoreBackend(store), refresh_s=0)
        second = BreakerBoard(StoreBackend(other), refresh_s=0)
        key = model_key("openai:gpt-4o-mini")
        assert await second.admit(key, POLICY)
        for _ in range(POLICY.failures):
            await first.record(key, POLICY, ok=False, error="HTTP 503")
        assert not await second.admit(key, POLICY)
        assert (await StoreBackend(other).all())[key].phase == "open"
        assert await StoreBackend(other).reset(key)
        assert await first.admit(key, POLICY)
    finally:
        await other.close()


async def test_breakers_are_shared_through_redis_when_configured(redis_url: str) -> None:
    one, two = RedisBackend(redis_url), RedisBackend(redis_url)
    try:
        key = model_key("anthropic:claude-haiku-4-5")
        for _ in range(POLICY.failures):
            await BreakerBoard(one, refresh_s=0).record(key, POLICY, ok=False, error="HTTP 529")
        assert (await two.read(key)).phase == "open"
        assert list(await two.all()) == [key]
        assert not await BreakerBoard(two, refresh_s=0).admit(key, POLICY)
    finally:
        await one.aclose()
        await two.aclose()


async def test_a_pristine_breaker_is_not_written_on_success(store: Store) -> None:
    board = BreakerBoard(StoreBackend(store), refresh_s=60)
    await board.record("model:x:y", POLICY, ok=True)
    assert await store.breakers.all() == {}


# -- through the run loop -------------------------------------------------------------------------

TOOLS = '''
from tether import tool

CALLS = {"lookup": 0, "flaky": 0}

@tool
def lookup(order: str) -> str:
    """Look an order up in a system that is down."""
    CALLS["lookup"] += 1
    raise ConnectionError("order system unreachable")

@tool(retries=3)
def flaky() -> str:
    """Fails twice, then works."""
    CALLS["flaky"] += 1
    if CALLS["flaky"] < 3:
        raise ConnectionError("blip")
    return f"ok after {CALLS['flaky']}"
'''

TOOL_POLICY = """
import json

def respond(turn):
    if turn.observations:
        return turn.observations[-1].content
    name, _, args = turn.user_input.partition(" ")
    return turn.call(name, **json.loads(args or "{}"))
"""

DOWN_POLICY = """
import pathlib
from tether.models.base import TransientModelError

def respond(turn):
    if pathlib.Path(turn.user_input).exists():
        return "fine again"
    raise TransientModelError("model scripted:test-v1 failed: HTTP 503: overloaded")
"""


def _run(cli: Cli, project: Path, task: str) -> dict[str, object]:
    return cli.json("run", "--project", str(project), "--user", "u1", task)  # type: ignore[no-any-return]


def test_a_model_that_keeps_failing_gives_a_degraded_answer_without_being_called(
    cli: Cli, make_project: ProjectFactory
) -> None:
    project = make_project(tools=TOOLS, policy=DOWN_POLICY, extra="[breakers]\nfailures = 2\nopen_s = 600\n")
    first = _run(cli, project, "/nonexistent")
    assert first["status"] == "failed" and "HTTP 503" in str(first["error"])  # 3 tries: opened
    second = _run(cli, project, "/nonexistent")
    assert second["status"] == "failed"
    assert str(second["output"]).startswith("Sorry, I can't answer right now")
    assert "degraded service" in str(second["error"]) and "circuit open" in str(second["error"])
    steps = cli.json("runs", "show", str(second["run_id"]), "--project", str(project))["steps"]
    assert [(s["status"], s["attempts"]) for s in steps] == [("failed", 0)]  # no request was made


def test_wait_policy_waits_for_the_probe_and_then_answers(
    cli: Cli, make_project: ProjectFactory, tmp_path: Path
) -> None:
    project = make_project(
        tools=TOOLS,
        policy=DOWN_POLICY,
        model='primary = "scripted:test-v1"\nretries = 0',
        extra='[breakers]\nfailures = 1\nopen_s = 1\nwhen_all_open = "wait"\nmax_wait_s = 120\n',
    )
    healthy = tmp_path / "healthy"
    assert _run(cli, project, str(healthy))["status"] == "failed"  # opens the breaker
    healthy.touch()  # the provider is back; the next run waits for the probe instead of failing
    run = _run(cli, project, str(healthy))
    assert run["status"] == "succeeded" and run["output"] == "fine again"


def test_a_tool_that_keeps_failing_is_reported_unavailable_not_called(
    cli: Cli, make_project: ProjectFactory
) -> None:
    project = make_project(tools=TOOLS, policy=TOOL_POLICY, extra="[breakers]\nfailures = 2\nopen_s = 600\n")
    for _ in range(2):
        run = _run(cli, project, 'lookup {"order": "1"}')
        assert "order system unreachable" in str(run["output"])
    run = _run(cli, project, 'lookup {"order": "1"}')
    assert "lookup is temporarily unavailable" in str(run["output"])
    assert run["tools_called"] == []


def test_tool_retries_use_backoff_and_recover(cli: Cli, make_project: ProjectFactory) -> None:
    project = make_project(tools=TOOLS, policy=TOOL_POLICY)
    run = _run(cli, project, "flaky {}")
    assert run["output"] == "ok after 3"
    steps = cli.json("runs", "show", str(run["run_id"]), "--project", str(project))["steps"]
    assert steps[1]["attempts"] == 3


def test_breakers_can_be_switched_off_per_release(cli: Cli, make_project: ProjectFactory) -> None:
    project = make_project(
        tools=TOOLS, policy=TOOL_POLICY, extra="[breakers]\nenabled = false\nfailures = 1\n"
    )
    for _ in range(3):
        assert "order system unreachable" in str(_run(cli, project, 'lookup {"order": "1"}')["output"])
