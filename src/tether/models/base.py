"""The one chat interface every model client implements.

Messages are provider-neutral; each client translates them to its wire format.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field

Role = Literal["system", "user", "assistant", "tool"]


class ToolCall(BaseModel):
    """A request from the model to call one tool."""

    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class Message(BaseModel):
    """One chat message. `tool` messages answer the `ToolCall` whose id they carry."""

    role: Role
    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None


class ToolSpec(BaseModel):
    """What a model is told about a tool: its name, description and JSON schema."""

    name: str
    description: str
    parameters: dict[str, Any]


class Usage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


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

    def as_message(self) -> Message:
        return Message(role="assistant", content=self.content, tool_calls=self.tool_calls)


class ModelError(Exception):
    """A model call failed for good (after retries)."""


class TransientModelError(ModelError):
    """A failure worth retrying: timeouts, rate limits, 5xx, dropped connections."""


@runtime_checkable
class ChatModel(Protocol):
    """An async chat model with tool calling.

    `name` is the model reference used for pricing and records (e.g. `openai:gpt-4o-mini`).
    """

    name: str

    async def chat(
        self, messages: list[Message], tools: list[ToolSpec], *, max_output_tokens: int | None = None
    ) -> ModelResponse: ...
