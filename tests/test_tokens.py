"""Token counts before a call: a real offline tokenizer for OpenAI models, a true upper bound
otherwise, and a token ceiling that holds within one call's worth with the real tokenizer."""

from __future__ import annotations

import json
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from tether.agent.config import LimitsSection
from tether.models.base import Message, ToolSpec, Usage
from tether.models.pricing import Pricer
from tether.models.tokens import BpeCounter, ByteBound, CharCounter, counter_for, encoding_for
from tether.runtime.budget import check_budget
from tether.store.records import RunTotals


def test_openai_models_get_their_real_tokenizer_offline() -> None:
    o200k = BpeCounter("o200k_base")
    assert o200k.text("Hello, where is my order 12345?") == 10
    assert BpeCounter("cl100k_base").text("Hello world") == 2
    assert encoding_for("gpt-4o-mini") == "o200k_base" and encoding_for("gpt-5") == "o200k_base"
    assert encoding_for("gpt-4-turbo") == "cl100k_base" and encoding_for("claude-haiku-4-5") is None
    assert counter_for("openai:gpt-4o-mini", "openai").name == "o200k_base"
    assert counter_for("azure:gpt-4.1", "openai").name == "o200k_base"  # a provider speaking OpenAI's API
    assert isinstance(counter_for("anthropic:claude-sonnet-4-5", "anthropic"), ByteBound)
    assert isinstance(counter_for("local:qwen3-0.6b", "openai"), ByteBound)
    assert isinstance(counter_for("scripted:test-v1", "scripted"), CharCounter)


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=0, max_size=300))
def test_the_byte_bound_is_never_below_a_real_bpe_count(text: str) -> None:
    assert ByteBound().text(text) >= BpeCounter("o200k_base").text(text)
    assert ByteBound().text(text) >= BpeCounter("cl100k_base").text(text)


def _provider_count(messages: list[Message], tools: list[ToolSpec]) -> int:
    """What a provider bills for a prompt: each message as ChatML (`<|im_start|>role\\ncontent<|im_end|>`,
    the special tokens one token each) and the tool schemas in a compact rendering, all through the
    real o200k vocabulary."""
    real = BpeCounter("o200k_base")
    total = 3
    for message in messages:
        total += 2 + real.text(f"{message.role}\n{message.content}")
        for call in message.tool_calls:
            total += real.text(f"{call.name}({json.dumps(call.arguments, separators=(',', ':'))})")
    for spec in tools:
        total += real.text(
            f"// {spec.description}\ntype {spec.name} = (_: {json.dumps(spec.parameters)}) => any;"
        )
    return total


def test_the_token_ceiling_is_never_exceeded_by_more_than_one_call_with_a_real_tokenizer() -> None:
    rng = random.Random(16)
    words = [
        "order",
        "refund",
        "shipping",
        "where",
        "is",
        "my",
        "parcel",
        "please",
        "help",
        "überweisung",
        "注文",
        "✓",
        "12345",
    ]
    tools = [
        ToolSpec(
            name="lookup_order",
            description="Look an order up by its number.",
            parameters={"type": "object", "properties": {"order_id": {"type": "string"}}},
        )
    ]
    counter = counter_for("openai:gpt-4o-mini", "openai")
    pricer = Pricer(overrides={"openai:gpt-4o-mini": (0.15, 0.6)}, provider_kinds={})
    for trial in range(20):
        limits = LimitsSection(
            max_steps=1000, max_tokens_per_run=rng.randint(3_000, 20_000), max_cost_usd_per_run=10
        )
        max_output = rng.randint(50, 400)
        messages = [
            Message(role="system", content="You are a support agent."),
            Message(role="user", content="hi"),
        ]
        totals = RunTotals()
        biggest_call = 0
        while True:
            verdict = check_budget(
                totals,
                limits,
                estimated_input_tokens=counter.prompt(messages, tools),
                max_output_tokens=max_output,
                pricer=pricer,
                models=["openai:gpt-4o-mini"],
            )
            if not verdict.allowed:
                break
            answer = " ".join(rng.choice(words) for _ in range(rng.randint(5, 200)))
            output = min(BpeCounter("o200k_base").text(answer), max_output)
            usage = Usage(input_tokens=_provider_count(messages, tools), output_tokens=output)
            totals.input_tokens += usage.input_tokens
            totals.output_tokens += usage.output_tokens
            biggest_call = max(biggest_call, usage.total_tokens)
            messages += [Message(role="assistant", content=answer), Message(role="user", content="and?")]
        used = totals.input_tokens + totals.output_tokens
        assert used <= limits.max_tokens_per_run + biggest_call, (trial, used, limits.max_tokens_per_run)
        assert used <= limits.max_tokens_per_run  # the estimate errs high, so in fact never over at all
