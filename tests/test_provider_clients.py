"""The OpenAI and Anthropic clients, driven through the real SDKs against a mock HTTP transport.

Each handler checks what the SDK put on the wire and answers with a body shaped like the
provider's real responses, so these tests catch drift in both our translation and the SDKs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tether.models.anthropic_client import AnthropicChatModel
from tether.models.base import ChatModel, Message, ModelError, ToolCall, ToolSpec, TransientModelError
from tether.models.openai_compat import OpenAIChatModel

Handler = Callable[[httpx2.Request], httpx2.Response]

WEATHER = ToolSpec(
    name="get_weather",
    description="Current weather for a city.",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
)


class Recorder:
    """A mock transport handler that records requests and replies from a queue."""

    def __init__(self, *replies: httpx2.Response | Exception) -> None:
        self.replies = list(replies)
        self.requests: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        # Assertions run on `requests` after the call: an AssertionError raised in here would
        # be wrapped by the SDK as a connection error.
        self.requests.append(request)
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    @property
    def body(self) -> dict[str, Any]:
        assert len(self.requests) == 1, f"expected one request, got {len(self.requests)}"
        result: dict[str, Any] = json.loads(self.requests[0].content)
        return result

    @property
    def request(self) -> httpx2.Request:
        assert len(self.requests) == 1, f"expected one request, got {len(self.requests)}"
        return self.requests[0]


def mock_client(handler: Handler) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(transport=httpx2.MockTransport(handler))


# --------------------------------------------------------------------------------------------
# OpenAI
# --------------------------------------------------------------------------------------------


def openai_completion(
    message: dict[str, Any], *, finish_reason: str = "stop", prompt: int = 21, completion: int = 7
) -> httpx2.Response:
    return httpx2.Response(
        200,
        json={
            "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
            "object": "chat.completion",
            "created": 1741569952,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "refusal": None, "annotations": [], **message},
                    "logprobs": None,
                    "finish_reason": finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
            },
            "service_tier": "default",
            "system_fingerprint": "fp_06737a9306",
        },
        headers={"x-request-id": "req_123"},
    )


def openai_error(status: int, message: str, type_: str, code: str | None = None) -> httpx2.Response:
    return httpx2.Response(
        status, json={"error": {"message": message, "type": type_, "param": None, "code": code}}
    )


def openai_model(handler: Handler, **kwargs: Any) -> OpenAIChatModel:
    kwargs.setdefault("api_key", "sk-test")
    return OpenAIChatModel("openai:gpt-4o-mini", "gpt-4o-mini", http_client=mock_client(handler), **kwargs)


def test_openai_model_is_a_chat_model() -> None:
    assert isinstance(OpenAIChatModel("openai:gpt-4o-mini", "gpt-4o-mini", api_key="k"), ChatModel)


async def test_openai_text_reply_with_usage() -> None:
    rec = Recorder(openai_completion({"content": "Hello! How can I help?"}))
    model = openai_model(rec)
    response = await model.chat(
        [Message(role="system", content="Be brief."), Message(role="user", content="Hi")],
        [],
        max_output_tokens=50,
    )

    assert rec.request.method == "POST"
    assert rec.request.url == "https://api.openai.com/v1/chat/completions"
    assert rec.request.headers["authorization"] == "Bearer sk-test"
    body = rec.body
    assert body["model"] == "gpt-4o-mini"
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]
    assert "tools" not in body
    assert body["max_completion_tokens"] == 50  # api.openai.com: the non-deprecated parameter
    assert "max_tokens" not in body
    assert body.get("stream") in (None, False)

    assert response.content == "Hello! How can I help?"
    assert response.tool_calls == []
    assert response.usage.input_tokens == 21
    assert response.usage.output_tokens == 7
    assert response.model == "gpt-4o-mini-2024-07-18"
    assert response.finish_reason == "stop"


async def test_openai_tool_call_reply_parses_arguments() -> None:
    rec = Recorder(
        openai_completion(
            {
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_abc123",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            finish_reason="tool_calls",
        )
    )
    response = await openai_model(rec).chat([Message(role="user", content="Weather in Paris?")], [WEATHER])

    assert rec.body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather for a city.",
                "parameters": WEATHER.parameters,
            },
        }
    ]
    assert response.content == ""
    assert response.tool_calls == [
        ToolCall(id="call_abc123", name="get_weather", arguments={"city": "Paris"})
    ]
    assert response.finish_reason == "tool_calls"


async def test_openai_round_trip_sends_tool_call_and_result() -> None:
    rec = Recorder(openai_completion({"content": "It is 18°C and sunny in Paris."}))
    history = [
        Message(role="system", content="You are a weather bot."),
        Message(role="user", content="Weather in Paris?"),
        Message(
            role="assistant",
            content="",
            tool_calls=[ToolCall(id="call_abc123", name="get_weather", arguments={"city": "Paris"})],
        ),
        Message(role="tool", content='{"temp_c": 18, "sky": "sunny"}', tool_call_id="call_abc123"),
    ]
    response = await openai_model(rec).chat(history, [WEATHER])

    messages = rec.body["messages"]
    assert messages[2]["role"] == "assistant"
    # `""`, not null: llama.cpp's server answers a null content with HTTP 500.
    assert messages[2]["content"] == ""
    assert messages[2]["tool_calls"] == [
        {
            "id": "call_abc123",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        }
    ]
    assert json.loads(messages[2]["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}
    assert messages[3] == {
        "role": "tool",
        "tool_call_id": "call_abc123",
        "content": '{"temp_c": 18, "sky": "sunny"}',
    }
    assert response.content == "It is 18°C and sunny in Paris."


async def test_openai_unreadable_arguments_become_an_error_and_are_sent_back_verbatim() -> None:
    rec = Recorder(
        openai_completion(
            {
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_bad",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Par'},
                    },
                    {
                        "id": "call_list",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '["Paris"]'},
                    },
                    {
                        "id": "call_empty",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    },
                ],
            },
            finish_reason="tool_calls",
        )
    )
    response = await openai_model(rec).chat([Message(role="user", content="Weather?")], [WEATHER])

    bad, listed, empty = response.tool_calls
    assert bad.arguments == {} and bad.raw_arguments == '{"city": "Par'
    assert bad.arguments_error is not None
    assert bad.arguments_error.startswith("arguments were not valid JSON: Unterminated string")
    assert listed.arguments_error == 'arguments must be a JSON object, got list: ["Paris"]'
    assert empty.arguments == {} and empty.arguments_error is None

    # The next request repeats the call exactly as the model wrote it.
    rec2 = Recorder(openai_completion({"content": "ok"}))
    history = [Message(role="user", content="Weather?"), response.as_message()]
    await openai_model(rec2).chat(history, [WEATHER])
    sent = rec2.body["messages"][1]["tool_calls"]
    assert [c["function"]["arguments"] for c in sent] == ['{"city": "Par', '["Paris"]', "{}"]


async def test_openai_repeated_or_missing_call_ids_are_made_unique() -> None:
    call = {"type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
    rec = Recorder(
        openai_completion(
            {
                "content": None,
                "tool_calls": [{"id": "call_1", **call}, {"id": "call_1", **call}, {"id": "", **call}],
            },
            finish_reason="tool_calls",
        )
    )
    response = await openai_model(rec).chat([Message(role="user", content="Weather?")], [WEATHER])
    assert [c.id for c in response.tool_calls] == ["call_1", "call_1-2", "call-3"]


@pytest.mark.parametrize(
    ("choice", "sent"), [("auto", "auto"), ("required", "required"), ("none", "none"), ("omit", None)]
)
async def test_openai_tool_choice_is_sent_with_tools(choice: str, sent: str | None) -> None:
    rec = Recorder(openai_completion({"content": "hi"}), openai_completion({"content": "hi"}))
    model = openai_model(rec, tool_choice=choice)
    await model.chat([Message(role="user", content="Hi")], [WEATHER])
    await model.chat([Message(role="user", content="Hi")], [])  # no tools: no tool_choice either
    with_tools, without_tools = (json.loads(r.content) for r in rec.requests)
    assert with_tools.get("tool_choice") == sent
    assert "tool_choice" not in without_tools


async def test_openai_finish_reason_length_marks_the_answer_truncated() -> None:
    rec = Recorder(openai_completion({"content": "The answer is"}, finish_reason="length"))
    response = await openai_model(rec).chat([Message(role="user", content="Hi")], [])
    assert response.finish_reason == "length" and response.truncated


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422, 501])
async def test_openai_requests_the_server_refuses_for_good_are_permanent(status: int) -> None:
    rec = Recorder(openai_error(status, "no", "invalid_request_error"))
    with pytest.raises(ModelError) as info:
        await openai_model(rec).chat([Message(role="user", content="Hi")], [])
    assert not isinstance(info.value, TransientModelError)


@pytest.mark.parametrize("status", [408, 409, 429, 502, 503, 504])
async def test_openai_busy_or_restarting_servers_are_plainly_transient(status: int) -> None:
    rec = Recorder(openai_error(status, "busy", "server_error"))
    with pytest.raises(TransientModelError) as info:
        await openai_model(rec).chat([Message(role="user", content="Hi")], [])
    assert info.value.repeat_key is None  # retried up to the configured count


async def test_openai_500_carries_what_the_server_said_so_a_repeat_is_recognised() -> None:
    rec = Recorder(openai_error(500, "Value is not iterable", "server_error"))
    with pytest.raises(TransientModelError) as info:
        await openai_model(rec).chat([Message(role="user", content="Hi")], [])
    key = info.value.repeat_key
    assert key is not None and key.startswith("500:") and "Value is not iterable" in key


async def test_openai_500_is_transient() -> None:
    rec = Recorder(
        openai_error(500, "The server had an error while processing your request.", "server_error")
    )
    with pytest.raises(TransientModelError, match=r"openai:gpt-4o-mini.*500"):
        await openai_model(rec).chat([Message(role="user", content="Hi")], [])
    assert len(rec.requests) == 1  # the SDK does not retry on its own


async def test_openai_429_is_transient() -> None:
    rec = Recorder(
        openai_error(429, "Rate limit reached for gpt-4o-mini.", "requests", "rate_limit_exceeded")
    )
    with pytest.raises(TransientModelError, match=r"openai:gpt-4o-mini.*429.*Rate limit"):
        await openai_model(rec).chat([Message(role="user", content="Hi")], [])
    assert len(rec.requests) == 1


async def test_openai_400_is_not_transient() -> None:
    rec = Recorder(
        openai_error(
            400, "Invalid schema for function 'get_weather'.", "invalid_request_error", "invalid_schema"
        )
    )
    with pytest.raises(ModelError, match=r"openai:gpt-4o-mini.*400.*Invalid schema") as info:
        await openai_model(rec).chat([Message(role="user", content="Hi")], [WEATHER])
    assert not isinstance(info.value, TransientModelError)


async def test_openai_connection_error_is_transient() -> None:
    rec = Recorder(httpx2.ConnectError("[Errno 111] Connection refused"))
    with pytest.raises(TransientModelError, match=r"openai:gpt-4o-mini.*connection"):
        await openai_model(rec).chat([Message(role="user", content="Hi")], [])
    assert len(rec.requests) == 1


async def test_openai_timeout_is_transient() -> None:
    rec = Recorder(httpx2.ReadTimeout("timed out"))
    with pytest.raises(TransientModelError, match=r"openai:gpt-4o-mini.*timed out"):
        await openai_model(rec).chat([Message(role="user", content="Hi")], [])


async def test_openai_compatible_server_uses_placeholder_key_and_max_tokens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-real-key-must-not-leak")

    rec = Recorder(openai_completion({"content": "hi"}))
    model = OpenAIChatModel(
        "local:llama3.1",
        "llama3.1",
        base_url="http://localhost:11434/v1",
        http_client=mock_client(rec),
    )
    await model.chat([Message(role="user", content="Hi")], [], max_output_tokens=64)
    assert rec.request.url == "http://localhost:11434/v1/chat/completions"
    assert rec.request.headers["authorization"] == "Bearer not-needed"
    assert rec.body["model"] == "llama3.1"
    assert rec.body["max_tokens"] == 64
    assert "max_completion_tokens" not in rec.body


async def test_openai_missing_key_fails_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_ADMIN_KEY", raising=False)
    rec = Recorder()
    model = OpenAIChatModel("openai:gpt-4o-mini", "gpt-4o-mini", http_client=mock_client(rec))  # no raise
    with pytest.raises(ModelError, match=r"openai:gpt-4o-mini.*OPENAI_API_KEY") as info:
        await model.chat([Message(role="user", content="Hi")], [])
    assert not isinstance(info.value, TransientModelError)
    assert rec.requests == []


# --------------------------------------------------------------------------------------------
# Anthropic
# --------------------------------------------------------------------------------------------


def anthropic_message(
    content: list[dict[str, Any]],
    *,
    stop_reason: str = "end_turn",
    input_tokens: int = 25,
    output_tokens: int = 9,
) -> httpx2.Response:
    return httpx2.Response(
        200,
        json={
            "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-6-20260217",
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {
                "input_tokens": input_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": output_tokens,
                "service_tier": "standard",
            },
        },
        headers={"request-id": "req_011CSHoEeqs5C35K2UUqR7Fy"},
    )


def anthropic_error(status: int, type_: str, message: str) -> httpx2.Response:
    return httpx2.Response(
        status,
        json={"type": "error", "error": {"type": type_, "message": message}, "request_id": "req_0"},
    )


def anthropic_model(handler: Handler, **kwargs: Any) -> AnthropicChatModel:
    kwargs.setdefault("api_key", "sk-ant-test")
    return AnthropicChatModel(
        "anthropic:claude-sonnet-4-6", "claude-sonnet-4-6", http_client=mock_client(handler), **kwargs
    )


def test_anthropic_model_is_a_chat_model() -> None:
    assert isinstance(AnthropicChatModel("anthropic:claude-sonnet-4-6", "claude-sonnet-4-6"), ChatModel)


async def test_anthropic_text_reply_with_usage() -> None:
    rec = Recorder(anthropic_message([{"type": "text", "text": "Hello! How can I help?"}]))
    response = await anthropic_model(rec).chat(
        [
            Message(role="system", content="Be brief."),
            Message(role="system", content="Answer in English."),
            Message(role="user", content="Hi"),
        ],
        [],
    )

    assert rec.request.method == "POST"
    assert rec.request.url == "https://api.anthropic.com/v1/messages"
    # anthropic>=2 sends the API key as a bearer token, not as `x-api-key`
    assert rec.request.headers["authorization"] == "Bearer sk-ant-test"
    assert "anthropic-version" in rec.request.headers
    body = rec.body
    assert body["model"] == "claude-sonnet-4-6"
    assert body["system"] == "Be brief.\n\nAnswer in English."
    assert body["messages"] == [{"role": "user", "content": "Hi"}]
    assert body["max_tokens"] == 1024  # required by the API; our default
    assert "tools" not in body

    assert response.content == "Hello! How can I help?"
    assert response.tool_calls == []
    assert response.usage.input_tokens == 25
    assert response.usage.output_tokens == 9
    assert response.model == "claude-sonnet-4-6-20260217"
    assert response.finish_reason == "end_turn"


async def test_anthropic_tool_call_reply_parses_arguments() -> None:
    rec = Recorder(
        anthropic_message(
            [
                {"type": "text", "text": "Let me check."},
                {
                    "type": "tool_use",
                    "id": "toolu_01A09q90qw90lq917835lq9",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
            ],
            stop_reason="tool_use",
        )
    )
    response = await anthropic_model(rec).chat(
        [Message(role="user", content="Weather in Paris?")], [WEATHER], max_output_tokens=300
    )

    assert rec.body["tools"] == [
        {
            "name": "get_weather",
            "description": "Current weather for a city.",
            "input_schema": WEATHER.parameters,
        }
    ]
    assert rec.body["max_tokens"] == 300
    assert "system" not in rec.body
    assert response.content == "Let me check."
    assert response.tool_calls == [
        ToolCall(id="toolu_01A09q90qw90lq917835lq9", name="get_weather", arguments={"city": "Paris"})
    ]
    assert response.finish_reason == "tool_use"
    assert rec.body["tool_choice"] == {"type": "auto"}


@pytest.mark.parametrize(
    ("choice", "sent"),
    [("auto", {"type": "auto"}), ("required", {"type": "any"}), ("none", {"type": "none"}), ("omit", None)],
)
async def test_anthropic_tool_choice_in_the_messages_api_words(
    choice: str, sent: dict[str, str] | None
) -> None:
    rec = Recorder(anthropic_message([{"type": "text", "text": "hi"}]))
    await anthropic_model(rec, tool_choice=choice).chat([Message(role="user", content="Hi")], [WEATHER])
    assert rec.body.get("tool_choice") == sent


async def test_anthropic_max_tokens_stop_marks_the_answer_truncated() -> None:
    rec = Recorder(anthropic_message([{"type": "text", "text": "The answer is"}], stop_reason="max_tokens"))
    response = await anthropic_model(rec).chat([Message(role="user", content="Hi")], [])
    assert response.finish_reason == "max_tokens" and response.truncated


async def test_anthropic_round_trip_merges_tool_results_into_one_user_turn() -> None:
    rec = Recorder(anthropic_message([{"type": "text", "text": "Paris 18°C, Oslo 4°C."}]))
    history = [
        Message(role="system", content="You are a weather bot."),
        Message(role="user", content="Weather in Paris and Oslo?"),
        Message(
            role="assistant",
            content="Checking both.",
            tool_calls=[
                ToolCall(id="toolu_1", name="get_weather", arguments={"city": "Paris"}),
                ToolCall(id="toolu_2", name="get_weather", arguments={"city": "Oslo"}),
            ],
        ),
        Message(role="tool", content='{"temp_c": 18}', tool_call_id="toolu_1"),
        Message(role="tool", content='{"temp_c": 4}', tool_call_id="toolu_2"),
    ]
    response = await anthropic_model(rec).chat(history, [WEATHER])

    assert rec.body["system"] == "You are a weather bot."
    assert rec.body["messages"] == [
        {"role": "user", "content": "Weather in Paris and Oslo?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking both."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Oslo"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": '{"temp_c": 18}'},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": '{"temp_c": 4}'},
            ],
        },
    ]
    assert response.content == "Paris 18°C, Oslo 4°C."


async def test_anthropic_tool_results_followed_by_user_text_share_one_turn() -> None:
    rec = Recorder(anthropic_message([{"type": "text", "text": "ok"}]))
    history = [
        Message(role="user", content="Go"),
        Message(role="assistant", tool_calls=[ToolCall(id="toolu_1", name="get_weather", arguments={})]),
        Message(role="tool", content="error: city is required", tool_call_id="toolu_1"),
        Message(role="user", content="Use Paris."),
    ]
    await anthropic_model(rec).chat(history, [WEATHER])

    assert rec.body["messages"][1] == {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}],
    }
    assert rec.body["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "error: city is required"},
            {"type": "text", "text": "Use Paris."},
        ],
    }


async def test_anthropic_invalid_tool_input_reaches_validation() -> None:
    # Anthropic always sends `input` as a JSON object; what can go wrong is its shape, which the
    # runtime's schema validation reports. The client must pass it through untouched.
    rec = Recorder(
        anthropic_message(
            [{"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {"town": ["Par"]}}],
            stop_reason="tool_use",
        )
    )
    response = await anthropic_model(rec).chat([Message(role="user", content="Weather?")], [WEATHER])
    assert response.tool_calls == [ToolCall(id="toolu_9", name="get_weather", arguments={"town": ["Par"]})]
    assert response.content == ""


async def test_anthropic_500_is_transient() -> None:
    rec = Recorder(anthropic_error(500, "api_error", "Internal server error"))
    with pytest.raises(TransientModelError, match=r"anthropic:claude-sonnet-4-6.*500"):
        await anthropic_model(rec).chat([Message(role="user", content="Hi")], [])
    assert len(rec.requests) == 1  # the SDK does not retry on its own


async def test_anthropic_529_overloaded_is_transient() -> None:
    rec = Recorder(anthropic_error(529, "overloaded_error", "Overloaded"))
    with pytest.raises(TransientModelError, match=r"anthropic:claude-sonnet-4-6.*529.*Overloaded"):
        await anthropic_model(rec).chat([Message(role="user", content="Hi")], [])
    assert len(rec.requests) == 1


async def test_anthropic_429_is_transient() -> None:
    rec = Recorder(
        anthropic_error(429, "rate_limit_error", "Number of request tokens has exceeded your rate limit.")
    )
    with pytest.raises(TransientModelError, match=r"anthropic:claude-sonnet-4-6.*429.*rate limit"):
        await anthropic_model(rec).chat([Message(role="user", content="Hi")], [])
    assert len(rec.requests) == 1


async def test_anthropic_400_is_not_transient() -> None:
    rec = Recorder(
        anthropic_error(400, "invalid_request_error", "messages: text content blocks must be non-empty")
    )
    with pytest.raises(ModelError, match=r"anthropic:claude-sonnet-4-6.*400.*non-empty") as info:
        await anthropic_model(rec).chat([Message(role="user", content="Hi")], [])
    assert not isinstance(info.value, TransientModelError)


async def test_anthropic_connection_error_is_transient() -> None:
    rec = Recorder(httpx2.ConnectError("[Errno 111] Connection refused"))
    with pytest.raises(TransientModelError, match=r"anthropic:claude-sonnet-4-6.*connection"):
        await anthropic_model(rec).chat([Message(role="user", content="Hi")], [])
    assert len(rec.requests) == 1


async def test_anthropic_timeout_is_transient() -> None:
    rec = Recorder(httpx2.ReadTimeout("timed out"))
    with pytest.raises(TransientModelError, match=r"anthropic:claude-sonnet-4-6.*timed out"):
        await anthropic_model(rec).chat([Message(role="user", content="Hi")], [])


async def test_anthropic_minimal_reply_without_cache_usage() -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(json.loads(request.content))
        return httpx2.Response(
            200,
            json={
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "claude-haiku-4-5",
                "content": [{"type": "text", "text": "pong"}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 3, "output_tokens": 1},
            },
        )

    model = AnthropicChatModel(
        "anthropic:claude-haiku-4-5",
        "claude-haiku-4-5",
        api_key="sk-ant-test",
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)),
    )
    response = await model.chat([Message(role="user", content="ping")], [])
    assert seen[0]["messages"] == [{"role": "user", "content": "ping"}]
    assert response.content == "pong"
    assert response.usage.total_tokens == 4


async def test_anthropic_missing_key_fails_at_call_time(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for var in (
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "ANTHROPIC_PROFILE",
        "ANTHROPIC_IDENTITY_TOKEN",
        "ANTHROPIC_IDENTITY_TOKEN_FILE",
        "ANTHROPIC_FEDERATION_RULE_ID",
        "ANTHROPIC_ORGANIZATION_ID",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("ANTHROPIC_CONFIG_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no profile in ~/.config/anthropic either
    rec = Recorder()
    model = AnthropicChatModel(
        "anthropic:claude-sonnet-4-6", "claude-sonnet-4-6", http_client=mock_client(rec)
    )  # no raise
    with pytest.raises(ModelError, match=r"anthropic:claude-sonnet-4-6.*ANTHROPIC_API_KEY") as info:
        await model.chat([Message(role="user", content="Hi")], [])
    assert not isinstance(info.value, TransientModelError)
    assert rec.requests == []
