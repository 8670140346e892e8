"""Model layer: the scripted model, the fallback chain, pricing and building clients from config."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from tether.agent.config import ConfigError, ProjectConfig
from tether.models.anthropic_client import AnthropicChatModel
from tether.models.base import (
    ChatModel,
    Message,
    ModelError,
    ModelResponse,
    ToolCall,
    ToolSpec,
    TransientModelError,
    Usage,
)
from tether.models.openai_compat import OpenAIChatModel
from tether.models.pricing import Pricer, UnknownPriceError
from tether.models.routing import FallbackChain
from tether.models.scripted import ScriptedModel, ScriptedTurn
from tether.runtime.models import build_chain, check_prices, pricer_for

LOOKUP = ToolSpec(
    name="lookup_order",
    description="Look up an order.",
    parameters={"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
)
SEARCH = ToolSpec(name="search", description="Search.", parameters={"type": "object", "properties": {}})


def user(text: str) -> Message:
    return Message(role="user", content=text)


def call_and_result(call_id: str, tool: str, arguments: dict[str, Any], result: str) -> list[Message]:
    return [
        Message(role="assistant", tool_calls=[ToolCall(id=call_id, name=tool, arguments=arguments)]),
        Message(role="tool", tool_call_id=call_id, name=tool, content=result),
    ]


# --------------------------------------------------------------------------- ScriptedModel


def lookup_then_answer(turn: ScriptedTurn) -> str | ToolCall:
    found = turn.last("lookup_order")
    if found is None:
        return turn.call("lookup_order", order_id="12345")
    return f"status: {found.json()['status']}"


async def test_scripted_model_reports_real_usage() -> None:
    model = ScriptedModel("scripted:t-v1", lookup_then_answer)
    messages = [Message(role="system", content="Be brief."), user("where is my order 12345?")]
    first = await model.chat(messages, [LOOKUP])
    assert first.model == "scripted:t-v1"
    assert first.finish_reason == "tool_calls"
    assert [c.name for c in first.tool_calls] == ["lookup_order"]
    assert first.tool_calls[0].arguments == {"order_id": "12345"}
    assert first.usage.input_tokens > 0
    assert first.usage.output_tokens > 0
    assert first.usage.total_tokens == first.usage.input_tokens + first.usage.output_tokens

    messages += [first.as_message()]
    messages.append(
        Message(role="tool", tool_call_id=first.tool_calls[0].id, content=json.dumps({"status": "shipped"}))
    )
    second = await model.chat(messages, [LOOKUP])
    assert second.content == "status: shipped"
    assert second.finish_reason == "stop"
    assert second.tool_calls == []
    # a longer prompt costs more input tokens
    assert second.usage.input_tokens > first.usage.input_tokens


async def test_scripted_model_is_deterministic() -> None:
    model = ScriptedModel("scripted:t-v1", lookup_then_answer)
    messages = [Message(role="system", content="Be brief."), user("where is order 12345?")]
    one = await model.chat(messages, [LOOKUP])
    two = await model.chat(messages, [LOOKUP])
    assert one == two
    assert one.usage == two.usage
    # a second instance behaves the same
    three = await ScriptedModel("scripted:t-v1", lookup_then_answer).chat(list(messages), [LOOKUP])
    assert three.model_dump() == one.model_dump()


async def test_scripted_usage_grows_with_tools_and_text() -> None:
    model = ScriptedModel("scripted:t", lambda turn: "ok")
    base = await model.chat([user("hi")], [])
    with_tools = await model.chat([user("hi")], [LOOKUP])
    longer = await model.chat([user("hi " * 100)], [])
    assert with_tools.usage.input_tokens > base.usage.input_tokens
    assert longer.usage.input_tokens > base.usage.input_tokens
    long_answer = await ScriptedModel("scripted:t", lambda turn: "word " * 100).chat([user("hi")], [])
    assert long_answer.usage.output_tokens > base.usage.output_tokens


async def test_scripted_output_tokens_respect_max_output_tokens() -> None:
    model = ScriptedModel("scripted:t", lambda turn: "word " * 200)
    capped = await model.chat([user("hi")], [], max_output_tokens=10)
    assert capped.usage.output_tokens == 10


async def test_scripted_model_does_not_mutate_a_returned_response() -> None:
    canned = ModelResponse(content="canned")
    model = ScriptedModel("scripted:t", lambda turn: canned)
    response = await model.chat([user("hi")], [])
    assert response.content == "canned"
    assert response.model == "scripted:t"
    assert canned.model == ""
    assert canned.usage == Usage()


async def test_scripted_policy_errors_become_model_errors() -> None:
    def broken(turn: ScriptedTurn) -> str:
        raise KeyError("oops")

    with pytest.raises(ModelError, match="oops"):
        await ScriptedModel("scripted:t", broken).chat([user("hi")], [])
    with pytest.raises(ModelError, match="int"):
        await ScriptedModel("scripted:t", lambda turn: 42).chat([user("hi")], [])  # type: ignore[arg-type,return-value]


def test_scripted_model_is_a_chat_model() -> None:
    assert isinstance(ScriptedModel("scripted:t", lambda turn: "x"), ChatModel)


def test_turn_user_input_and_history() -> None:
    messages = [
        Message(role="system", content="sys"),
        user("first question"),
        *call_and_result("c1", "search", {"q": "a"}, "old result"),
        Message(role="assistant", content="first answer"),
        user("second question"),
        *call_and_result("c2", "lookup_order", {"order_id": "1"}, '{"status": "new"}'),
    ]
    turn = ScriptedTurn(messages=messages, tools=[LOOKUP])
    assert turn.user_input == "second question"
    history = turn.history
    assert [m.role for m in history] == ["user", "assistant", "tool", "assistant"]
    assert history[0].content == "first question"
    assert all(m.role != "system" for m in history)
    assert ScriptedTurn(messages=[Message(role="system", content="s")], tools=[]).user_input == ""
    assert ScriptedTurn(messages=[user("only")], tools=[]).history == []


def test_turn_observations_are_of_the_current_run_only() -> None:
    messages = [
        user("first"),
        *call_and_result("c1", "search", {"q": "old"}, "old result"),
        user("second"),
        *call_and_result("c2", "lookup_order", {"order_id": "1"}, '{"status": "shipped"}'),
        *call_and_result("c3", "search", {"q": "new"}, "not json"),
    ]
    turn = ScriptedTurn(messages=messages, tools=[LOOKUP, SEARCH])
    observations = turn.observations
    assert [(o.tool, o.arguments) for o in observations] == [
        ("lookup_order", {"order_id": "1"}),
        ("search", {"q": "new"}),
    ]
    assert observations[0].json() == {"status": "shipped"}
    assert observations[1].json() is None
    assert observations[1].content == "not json"
    last = turn.last("search")
    assert last is not None and last.content == "not json"
    assert turn.called("lookup_order")
    assert not turn.called("escalate")
    assert turn.last("escalate") is None
    assert turn.has_tool("search") and not turn.has_tool("escalate")


def test_turn_last_returns_the_newest_observation() -> None:
    messages = [
        user("go"),
        *call_and_result("c1", "search", {"q": "a"}, "first"),
        *call_and_result("c2", "search", {"q": "b"}, "second"),
    ]
    last = ScriptedTurn(messages=messages, tools=[]).last("search")
    assert last is not None
    assert (last.arguments, last.content) == ({"q": "b"}, "second")


def test_turn_ignores_tool_results_for_unknown_calls() -> None:
    messages = [user("go"), Message(role="tool", tool_call_id="ghost", content="x")]
    assert ScriptedTurn(messages=messages, tools=[]).observations == []


def test_turn_call_ids_are_unique_within_one_turn() -> None:
    """`ScriptedTurn.call` promises an id unique within the conversation. A policy that calls the
    same tool twice in one turn (e.g. two orders) must get two ids, or the results collide."""
    messages = [user("compare orders 11111 and 22222")]
    turn = ScriptedTurn(messages=messages, tools=[LOOKUP])
    first = turn.call("lookup_order", order_id="11111")
    second = turn.call("lookup_order", order_id="22222")
    assert first.id != second.id


async def test_parallel_calls_to_one_tool_keep_their_own_results() -> None:
    def both(turn: ScriptedTurn) -> str | list[ToolCall]:
        if not turn.observations:
            return [turn.call("lookup_order", order_id="11111"), turn.call("lookup_order", order_id="22222")]
        return "; ".join(f"{o.arguments['order_id']}={o.content}" for o in turn.observations)

    model = ScriptedModel("scripted:t", both)
    messages = [user("compare orders 11111 and 22222")]
    first = await model.chat(messages, [LOOKUP])
    messages.append(first.as_message())
    for call in first.tool_calls:
        messages.append(
            Message(role="tool", tool_call_id=call.id, content=f"status-of-{call.arguments['order_id']}")
        )
    answer = await model.chat(messages, [LOOKUP])
    assert answer.content == "11111=status-of-11111; 22222=status-of-22222"


# --------------------------------------------------------------------------- FallbackChain


class FakeModel:
    """A ChatModel that fails with the given errors, in order, then answers."""

    def __init__(self, name: str, *failures: Exception, answer: str | None = None) -> None:
        self.name = name
        self.failures = list(failures)
        self.answer = answer if answer is not None else f"answer from {name}"
        self.calls = 0

    async def chat(
        self, messages: list[Message], tools: list[ToolSpec], *, max_output_tokens: int | None = None
    ) -> ModelResponse:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return ModelResponse(content=self.answer, usage=Usage(input_tokens=3, output_tokens=2))


class AlwaysFails:
    def __init__(self, name: str, error: Callable[[], Exception]) -> None:
        self.name = name
        self.error = error
        self.calls = 0

    async def chat(
        self, messages: list[Message], tools: list[ToolSpec], *, max_output_tokens: int | None = None
    ) -> ModelResponse:
        self.calls += 1
        raise self.error()


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the backoff the retry loop asks for, without waiting for it."""
    requested: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(delay: float, *args: Any, **kwargs: Any) -> Any:
        requested.append(delay)
        return await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    return requested


async def test_transient_errors_are_retried(sleeps: list[float]) -> None:
    flaky = FakeModel("a:flaky", TransientModelError("429"), TransientModelError("503"))
    backup = FakeModel("b:backup")
    chain = FallbackChain([flaky, backup], retries=2, backoff_s=0)
    response = await chain.chat([user("hi")], [])
    assert response.content == "answer from a:flaky"
    assert response.reference == "a:flaky"
    assert flaky.calls == 3
    assert backup.calls == 0
    assert len(sleeps) == 2


async def test_without_retries_a_transient_error_falls_back(sleeps: list[float]) -> None:
    flaky = FakeModel("a:flaky", TransientModelError("429"))
    backup = FakeModel("b:backup")
    chain = FallbackChain([flaky, backup], retries=0, backoff_s=0)
    response = await chain.chat([user("hi")], [])
    assert response.content == "answer from b:backup"
    assert response.reference == "b:backup"
    assert (flaky.calls, backup.calls) == (1, 1)


async def test_too_many_transient_errors_fall_back(sleeps: list[float]) -> None:
    flaky = FakeModel("a:flaky", *(TransientModelError(str(i)) for i in range(3)))
    backup = FakeModel("b:backup")
    response = await FallbackChain([flaky, backup], retries=2, backoff_s=0).chat([user("hi")], [])
    assert response.content == "answer from b:backup"
    assert (flaky.calls, backup.calls) == (3, 1)


async def test_permanent_errors_fall_back_without_retry(sleeps: list[float]) -> None:
    broken = FakeModel("a:broken", ModelError("400 bad request"))
    backup = FakeModel("b:backup")
    chain = FallbackChain([broken, backup], retries=2, backoff_s=0)
    response = await chain.chat([user("hi")], [])
    assert response.content == "answer from b:backup"
    assert broken.calls == 1
    assert backup.calls == 1
    assert sleeps == []


async def test_every_model_failing_raises_a_model_error_naming_each(sleeps: list[float]) -> None:
    first = AlwaysFails("a:one", lambda: TransientModelError("rate limited"))
    second = AlwaysFails("b:two", lambda: ModelError("invalid key"))
    third = AlwaysFails("c:three", lambda: TransientModelError("timeout"))
    chain = FallbackChain([first, second, third], retries=1, backoff_s=0)
    with pytest.raises(ModelError) as info:
        await chain.chat([user("hi")], [])
    message = str(info.value)
    for expected in ("a:one", "rate limited", "b:two", "invalid key", "c:three", "timeout"):
        assert expected in message
    assert (first.calls, second.calls, third.calls) == (2, 1, 2)


async def test_non_model_errors_are_not_swallowed(sleeps: list[float]) -> None:
    crashing = AlwaysFails("a:bug", lambda: RuntimeError("programming error"))
    backup = FakeModel("b:backup")
    with pytest.raises(RuntimeError, match="programming error"):
        await FallbackChain([crashing, backup], backoff_s=0).chat([user("hi")], [])
    assert backup.calls == 0


async def test_zero_backoff_does_not_wait(sleeps: list[float]) -> None:
    """With backoff_s=0 (what TETHER_MODEL_BACKOFF_S=0 sets) a retry should not sleep at all."""
    flaky = FakeModel("a:flaky", TransientModelError("429"), TransientModelError("503"))
    await FallbackChain([flaky], retries=2, backoff_s=0).chat([user("hi")], [])
    assert len(sleeps) == 2
    assert all(delay == 0 for delay in sleeps), sleeps


async def test_backoff_never_exceeds_the_cap(sleeps: list[float]) -> None:
    flaky = FakeModel("a:flaky", *(TransientModelError(str(i)) for i in range(5)))
    await FallbackChain([flaky], retries=5, backoff_s=0.5, max_backoff_s=2.0).chat([user("hi")], [])
    assert len(sleeps) == 5
    assert all(0 <= delay <= 2.0 for delay in sleeps), sleeps


def server_error(body: str) -> TransientModelError:
    return TransientModelError(f"HTTP 500: {body}", repeat_key=f"500:{body}")


async def test_an_identical_500_is_retried_only_once(sleeps: list[float]) -> None:
    # llama.cpp answered every retry of a request its template could not render with the same 500.
    choking = AlwaysFails("a:choking", lambda: server_error("Value is not iterable"))
    backup = FakeModel("b:backup")
    response = await FallbackChain([choking, backup], retries=5, backoff_s=0).chat([user("hi")], [])
    assert choking.calls == 2  # one retry, then the repeat shows it is this request, not a glitch
    assert response.reference == "b:backup"


async def test_differing_500s_are_retried_as_configured(sleeps: list[float]) -> None:
    glitchy = FakeModel("a:glitchy", server_error("worker 1 crashed"), server_error("worker 2 crashed"))
    response = await FallbackChain([glitchy], retries=2, backoff_s=0).chat([user("hi")], [])
    assert (glitchy.calls, response.reference) == (3, "a:glitchy")


async def test_plain_transient_errors_are_retried_even_when_identical(sleeps: list[float]) -> None:
    busy = AlwaysFails("a:busy", lambda: TransientModelError("HTTP 503: loading model"))
    with pytest.raises(ModelError):
        await FallbackChain([busy], retries=3, backoff_s=0).chat([user("hi")], [])
    assert busy.calls == 4


async def test_the_answer_reports_every_request_it_took(sleeps: list[float]) -> None:
    flaky = FakeModel("a:flaky", TransientModelError("429"), TransientModelError("503"))
    response = await FallbackChain([flaky], retries=2, backoff_s=0).chat([user("hi")], [])
    assert response.attempts == 3

    down = AlwaysFails("a:down", lambda: TransientModelError("connection refused"))
    backup = FakeModel("b:backup", TransientModelError("429"))
    response = await FallbackChain([down, backup], retries=2, backoff_s=0).chat([user("hi")], [])
    assert (response.attempts, response.reference) == (5, "b:backup")  # 3 on the primary, 2 on the fallback


async def test_a_final_failure_reports_every_request_it_took(sleeps: list[float]) -> None:
    first = AlwaysFails("a:one", lambda: TransientModelError("timeout"))
    second = AlwaysFails("b:two", lambda: ModelError("HTTP 400: bad request"))
    with pytest.raises(ModelError) as info:
        await FallbackChain([first, second], retries=2, backoff_s=0).chat([user("hi")], [])
    assert info.value.attempts == 4


def test_response_tool_call_ids_are_unique_and_stable() -> None:
    calls = [ToolCall(id="c", name="t"), ToolCall(id="c", name="t"), ToolCall(id="c-2", name="t")]
    first = ModelResponse(tool_calls=calls)
    assert [c.id for c in first.tool_calls] == ["c", "c-2", "c-2-2"]
    again = ModelResponse.model_validate(first.model_dump())
    assert [c.id for c in again.tool_calls] == ["c", "c-2", "c-2-2"]


def test_chain_needs_a_model_and_is_named_after_the_primary() -> None:
    with pytest.raises(ValueError):
        FallbackChain([])
    chain = FallbackChain([FakeModel("a:primary"), FakeModel("b:second")])
    assert chain.name == "a:primary"
    assert isinstance(chain, ChatModel)


# --------------------------------------------------------------------------- Pricer


def usage(input_tokens: int, output_tokens: int) -> Usage:
    return Usage(input_tokens=input_tokens, output_tokens=output_tokens)


def test_real_prices_for_a_known_openai_model_scale_linearly() -> None:
    pricer = Pricer(overrides={}, provider_kinds={})
    one = pricer.cost("openai:gpt-4o-mini", usage(1_000, 500))
    ten = pricer.cost("openai:gpt-4o-mini", usage(10_000, 5_000))
    assert isinstance(one, float)
    assert one > 0
    assert ten == pytest.approx(10 * one)
    assert pricer.cost("openai:gpt-4o-mini", usage(0, 0)) == 0
    # output tokens cost more than input tokens for this model
    assert pricer.cost("openai:gpt-4o-mini", usage(0, 1_000)) > pricer.cost(
        "openai:gpt-4o-mini", usage(1_000, 0)
    )


def test_real_prices_for_a_known_anthropic_model() -> None:
    pricer = Pricer(overrides={}, provider_kinds={})
    assert pricer.cost("anthropic:claude-3-5-haiku-latest", usage(1_000, 1_000)) > 0


def test_override_table_wins() -> None:
    pricer = Pricer(overrides={"openai:gpt-4o-mini": (1.0, 2.0)}, provider_kinds={})
    assert pricer.cost("openai:gpt-4o-mini", usage(1_000_000, 1_000_000)) == pytest.approx(3.0)
    assert pricer.cost("openai:gpt-4o-mini", usage(500_000, 0)) == pytest.approx(0.5)
    real = Pricer(overrides={}, provider_kinds={}).cost("openai:gpt-4o-mini", usage(1_000_000, 1_000_000))
    assert real != pytest.approx(3.0)


def test_scripted_models_are_free_unless_overridden() -> None:
    assert Pricer(overrides={}, provider_kinds={}).cost("scripted:t-v1", usage(10_000, 10_000)) == 0.0
    priced = Pricer(overrides={"scripted:t-v1": (0.15, 0.60)}, provider_kinds={})
    assert priced.cost("scripted:t-v1", usage(1_000_000, 1_000_000)) == pytest.approx(0.75)
    Pricer(overrides={}, provider_kinds={}).check("scripted:anything")


def test_unknown_model_tells_the_user_how_to_price_it() -> None:
    pricer = Pricer(overrides={}, provider_kinds={})
    with pytest.raises(UnknownPriceError) as info:
        pricer.cost("openai:no-such-model-xyz", usage(10, 10))
    assert '[prices."openai:no-such-model-xyz"]' in str(info.value)
    assert isinstance(info.value, LookupError)
    with pytest.raises(UnknownPriceError, match=r'\[prices\."local:llama3"\]'):
        Pricer(overrides={}, provider_kinds={"local": "openai"}).check("local:llama3")


def test_custom_provider_prices_like_its_kind() -> None:
    pricer = Pricer(overrides={}, provider_kinds={"azure": "openai"})
    tokens = usage(12_345, 678)
    assert pricer.cost("azure:gpt-4o-mini", tokens) == pytest.approx(
        pricer.cost("openai:gpt-4o-mini", tokens)
    )
    assert pricer.cost("azure:gpt-4o-mini", tokens) > 0


# --------------------------------------------------------------------------- registry


def project_config(model: dict[str, Any], **sections: Any) -> ProjectConfig:
    return ProjectConfig.model_validate(
        {"agent": {"name": "test-agent", "owner": "tests@example.com"}, "model": model, **sections}
    )


def no_policy(reference: str) -> Any:
    raise AssertionError(f"no scripted policy should be resolved, got {reference}")


@pytest.fixture
def mixed_config() -> ProjectConfig:
    return project_config(
        {
            "primary": "openai:gpt-4o-mini",
            "fallbacks": ["anthropic:claude-3-5-haiku-latest", "local:llama3"],
            "retries": 3,
            "timeout_s": 12.5,
        },
        providers={"local": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
        prices={"local:llama3": {"input_per_mtok": 0.0, "output_per_mtok": 0.0}},
    )


def test_build_chain_builds_the_right_clients(mixed_config: ProjectConfig) -> None:
    chain = build_chain(mixed_config, no_policy, backoff_s=0)
    assert isinstance(chain, FallbackChain)
    assert chain.name == "openai:gpt-4o-mini"
    openai_model, anthropic_model, local_model = chain.models
    assert isinstance(openai_model, OpenAIChatModel)
    assert isinstance(anthropic_model, AnthropicChatModel)
    assert isinstance(local_model, OpenAIChatModel)
    assert [m.name for m in chain.models] == [
        "openai:gpt-4o-mini",
        "anthropic:claude-3-5-haiku-latest",
        "local:llama3",
    ]
    assert (openai_model.model, anthropic_model.model, local_model.model) == (
        "gpt-4o-mini",
        "claude-3-5-haiku-latest",
        "llama3",
    )
    assert openai_model.base_url is None
    assert anthropic_model.base_url is None
    assert local_model.base_url == "http://127.0.0.1:9/v1"
    assert {m.timeout_s for m in (openai_model, anthropic_model, local_model)} == {12.5}


def test_tool_choice_defaults_to_auto_and_reaches_every_client(mixed_config: ProjectConfig) -> None:
    assert {m.tool_choice for m in build_chain(mixed_config, no_policy).models} == {"auto"}  # type: ignore[attr-defined]
    config = mixed_config.model_copy(
        update={"model": mixed_config.model.model_copy(update={"tool_choice": "omit"})}
    )
    assert {m.tool_choice for m in build_chain(config, no_policy).models} == {"omit"}  # type: ignore[attr-defined]


def test_tool_choice_must_be_one_of_the_known_values() -> None:
    with pytest.raises(ValueError, match="tool_choice"):
        project_config({"primary": "openai:gpt-4o-mini", "tool_choice": "always"})


def test_build_chain_uses_scripted_policy(mixed_config: ProjectConfig) -> None:
    config = project_config({"primary": "scripted:t-v1", "scripted_policy": "policy:respond"})
    resolved: list[str] = []

    def resolve(reference: str) -> Any:
        resolved.append(reference)
        return lambda turn: "scripted answer"

    chain = build_chain(config, resolve)
    assert resolved == ["policy:respond"]
    (model,) = chain.models
    assert isinstance(model, ScriptedModel)
    assert asyncio.run(chain.chat([user("hi")], [])).content == "scripted answer"


def test_scripted_model_without_policy_is_a_config_error() -> None:
    config = project_config({"primary": "scripted:t-v1"})
    with pytest.raises(ConfigError, match="scripted_policy"):
        build_chain(config, no_policy)


def test_check_prices_accepts_known_and_overridden_models(mixed_config: ProjectConfig) -> None:
    check_prices(mixed_config)
    pricer = pricer_for(mixed_config)
    assert pricer.provider_kinds == {"local": "openai"}
    assert pricer.cost("local:llama3", usage(1_000, 1_000)) == 0.0


def test_check_prices_fails_for_an_unpriced_model(mixed_config: ProjectConfig) -> None:
    config = mixed_config.model_copy(update={"prices": {}})
    with pytest.raises(UnknownPriceError, match=r'\[prices\."local:llama3"\]'):
        check_prices(config)
    with pytest.raises(UnknownPriceError):
        build_chain(config, no_policy)


def test_unknown_provider_is_a_config_error() -> None:
    config = project_config(
        {"primary": "mystery:some-model"},
        prices={"mystery:some-model": {"input_per_mtok": 1.0, "output_per_mtok": 1.0}},
    )
    with pytest.raises(ConfigError, match="mystery"):
        build_chain(config, no_policy)


def test_building_clients_needs_no_api_key_or_network(
    mixed_config: ProjectConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    chain = build_chain(mixed_config, no_policy)
    assert len(chain.models) == 3
