"""The one chat interface every model client implements.

Messages are provider-neutral; each client translates them to its wire format.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field, model_validator

Role = Literal["system", "user", "assistant", "tool"]


class ToolCall(BaseModel):
    """A request from the model to call one tool."""

    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    arguments_error: str | None = None
    """Why the arguments the model wrote could not be read (e.g. not valid JSON); the tool never runs."""
    raw_arguments: str | None = None
    """The model's argument text, kept verbatim when it could not be read, to send back as written."""


def with_unique_ids(calls: list[ToolCall]) -> list[ToolCall]:
    """The same calls, each with its own id: servers sometimes repeat an id or send none.

    Every tool result answers one id, so a repeated id would lose a call. A repeat keeps the
    first id and gets a deterministic suffix (`call_1`, `call_1-2`, ...); an empty id becomes
    `call-<position>`. Deterministic, so a resumed run rebuilds the same ids.
    """
    seen: set[str] = set()
    unique: list[ToolCall] = []
    for position, call in enumerate(calls):
        base = call.id or f"call-{position + 1}"
        candidate, n = base, 1
        while candidate in seen:
            n += 1
            candidate = f"{base}-{n}"
        seen.add(candidate)
        unique.append(call if candidate == call.id else call.model_copy(update={"id": candidate}))
    return unique


class Message(BaseModel):
    """One chat message. `tool` messages answer the `ToolCall` whose id they carry."""

    role: Role
    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None


ToolChoice = Literal["auto", "required", "none", "omit"]
"""Whether the model may (`auto`), must (`required`) or may not (`none`) call a tool; `omit` sends nothing."""


class ToolSpec(BaseModel):
    """What a model is told about a tool: its name, description and JSON schema."""

    name: str
    description: str
    parameters: dict[str, Any]


class Usage(BaseModel):
    """Tokens as the provider reported them. `input_tokens` counts every input token, cached or not;
    `cache_read_tokens` / `cache_write_tokens` are the parts read from / written to the provider's
    prompt cache, priced differently (genai-prices' convention)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


TRUNCATED_FINISH_REASONS = frozenset({"length", "max_tokens"})
"""Finish reasons meaning "stopped at the output-token limit" (OpenAI-compatible, Anthropic)."""


class ModelResponse(BaseModel):
    """The model's turn: text, tool calls, or both, with real token usage."""

    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    model: str = ""
    """The model name the provider reported (e.g. a dated snapshot of what was asked for)."""
    reference: str = ""
    """The `provider:model` reference that answered; set by the fallback chain, used for pricing."""
    finish_reason: str = "stop"
    """As the provider said it (`stop`, `tool_calls`, `length`; Anthropic's `end_turn`, `max_tokens`...)."""
    attempts: int = 1
    """How many requests this answer took (retries and fallbacks included); set by the fallback chain."""

    @model_validator(mode="after")
    def _unique_call_ids(self) -> ModelResponse:
        self.tool_calls = with_unique_ids(self.tool_calls)
        return self

    @property
    def truncated(self) -> bool:
        """The answer was cut off at the output-token limit."""
        return self.finish_reason in TRUNCATED_FINISH_REASONS

    def as_message(self) -> Message:
        return Message(role="assistant", content=self.content, tool_calls=self.tool_calls)


class ModelError(Exception):
    """A model call failed for good (after retries).

    `attempts` is how many requests were made before giving up; the fallback chain sets it.
    """

    attempts: int = 1


class TransientModelError(ModelError):
    """A failure worth retrying: timeouts, rate limits, overloaded or restarting servers, dropped connections.

    `repeat_key` is set for answers that may equally be the server's deterministic reaction to
    this very request (an HTTP 500 with its body): the fallback chain stops retrying when the
    same key comes back twice in a row, so a request the server cannot handle is not repeated
    over and over.
    """

    def __init__(self, message: str, *, repeat_key: str | None = None) -> None:
        super().__init__(message)
        self.repeat_key = repeat_key


# 5xx answers that say the server cannot do this at all: retrying cannot help.
_PERMANENT_SERVER_STATUS = frozenset({501, 505})


def status_error(prefix: str, status: int, message: str, *, transient: frozenset[int]) -> ModelError:
    """Whether an HTTP error is worth another try (see "Retries" in docs/architecture.md).

    `transient` (timeouts, rate limits, overloaded or restarting servers) are retried. Other
    4xx, 501 and 505 are permanent: the same request gets the same answer. Any other 5xx (500
    above all) is either a glitch or the server choking on this very request, so it is
    transient with a `repeat_key`: the fallback chain retries it and stops as soon as the same
    status and message come back twice in a row.
    """
    detail = f"{prefix}: HTTP {status}: {message}"
    if status in transient:
        return TransientModelError(detail)
    if status >= 500 and status not in _PERMANENT_SERVER_STATUS:
        return TransientModelError(detail, repeat_key=f"{status}:{message}")
    return ModelError(detail)


@runtime_checkable
class ChatModel(Protocol):
    """An async chat model with tool calling.

    `name` is the model reference used for pricing and records (e.g. `openai:gpt-4o-mini`).
    """

    name: str

    async def chat(
        self, messages: list[Message], tools: list[ToolSpec], *, max_output_tokens: int | None = None
    ) -> ModelResponse: ...
