"""Provider prompt caching passed through: Anthropic `cache_control` breakpoints on the system prompt
and tool list, cache reads and writes from either provider priced from the reported usage."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
from test_provider_clients import Recorder, anthropic_model, openai_model

from tether.models.base import Message, ToolSpec, Usage
from tether.models.pricing import Pricer

TOOL = ToolSpec(
    name="lookup_order",
    description="Look an order up.",
    parameters={"type": "object", "properties": {"order_id": {"type": "string"}}},
)


def _anthropic_reply(read: int, written: int) -> httpx2.Response:
    return httpx2.Response(
        200,
        json={
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5-20250929",
            "content": [{"type": "text", "text": "Hi"}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": 12,
                "cache_creation_input_tokens": written,
                "cache_read_input_tokens": read,
                "output_tokens": 3,
            },
        },
    )


async def test_anthropic_gets_breakpoints_on_system_and_tools_and_reports_cache_tokens() -> None:
    rec = Recorder(_anthropic_reply(read=2000, written=0))
    model = anthropic_model(rec, prompt_cache=True)
    response = await model.chat(
        [Message(role="system", content="You are a support agent."), Message(role="user", content="Hi")],
        [TOOL],
    )
    body: dict[str, Any] = rec.body
    assert body["system"] == [
        {"type": "text", "text": "You are a support agent.", "cache_control": {"type": "ephemeral"}}
    ]
    assert body["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    assert response.usage == Usage(input_tokens=2012, output_tokens=3, cache_read_tokens=2000)


async def test_anthropic_without_prompt_cache_sends_plain_system_text() -> None:
    rec = Recorder(_anthropic_reply(read=0, written=0))
    await anthropic_model(rec).chat(
        [Message(role="system", content="S"), Message(role="user", content="Hi")], [TOOL]
    )
    assert rec.body["system"] == "S" and "cache_control" not in rec.body["tools"][0]


async def test_openai_cached_input_tokens_are_reported() -> None:
    def reply(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(
            200,
            json={
                "id": "c1",
                "object": "chat.completion",
                "created": 1,
                "model": "gpt-4o-mini",
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
                ],
                "usage": {
                    "prompt_tokens": 1500,
                    "completion_tokens": 2,
                    "total_tokens": 1502,
                    "prompt_tokens_details": {"cached_tokens": 1280},
                },
            },
        )

    response = await openai_model(reply).chat([Message(role="user", content="Hi")], [])
    assert response.usage == Usage(input_tokens=1500, output_tokens=2, cache_read_tokens=1280)


def test_cache_reads_are_priced_below_fresh_input() -> None:
    pricer = Pricer(overrides={}, provider_kinds={})
    fresh = pricer.cost("openai:gpt-4o-mini", Usage(input_tokens=10_000, output_tokens=0))
    cached = pricer.cost("openai:gpt-4o-mini", Usage(input_tokens=10_000, cache_read_tokens=8_000))
    assert cached == pytest.approx(fresh * (2_000 + 8_000 * 0.5) / 10_000)  # OpenAI: cached input at half
    claude = pricer.cost("anthropic:claude-sonnet-4-5", Usage(input_tokens=10_000, cache_write_tokens=10_000))
    assert claude > pricer.cost("anthropic:claude-sonnet-4-5", Usage(input_tokens=10_000))  # writes cost more


def test_price_overrides_take_cache_prices_or_fall_back_to_input() -> None:
    pricer = Pricer(
        overrides={"local:m": (1.0, 2.0), "local:n": (1.0, 2.0)},
        provider_kinds={},
        cache_overrides={"local:m": (0.1, 1.25)},
    )
    usage = Usage(input_tokens=1_000_000, cache_read_tokens=500_000, output_tokens=0)
    assert pricer.cost("local:m", usage) == pytest.approx(0.5 + 0.05)
    assert pricer.cost("local:n", usage) == pytest.approx(1.0)
