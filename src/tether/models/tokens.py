"""A provider-neutral token estimate, used before a call (budgets) and by the scripted model."""

from __future__ import annotations

import json
import math

from tether.models.base import Message, ToolSpec

CHARS_PER_TOKEN = 4
_MESSAGE_OVERHEAD = 4


def estimate_text_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def estimate_prompt_tokens(messages: list[Message], tools: list[ToolSpec]) -> int:
    """Roughly what a provider would count for this prompt: ~4 characters a token."""
    total = 0
    for message in messages:
        total += _MESSAGE_OVERHEAD + estimate_text_tokens(message.content)
        for call in message.tool_calls:
            total += estimate_text_tokens(call.name + json.dumps(call.arguments, sort_keys=True))
    for spec in tools:
        total += estimate_text_tokens(
            spec.name + spec.description + json.dumps(spec.parameters, sort_keys=True)
        )
    return total
