"""A `ChatModel` for Anthropic's Messages API, using the official `anthropic` package.

The SDK's own retries are turned off: retries and fallback are done by
`tether.models.routing`, which retries only `TransientModelError`.
"""

from __future__ import annotations

from typing import Literal

import anthropic
import httpx2
from anthropic.types import (
    ContentBlockParam,
    MessageParam,
    TextBlockParam,
    ToolChoiceParam,
    ToolParam,
)
from anthropic.types import (
    Message as AnthropicMessage,
)

from tether.models.base import (
    Message,
    ModelError,
    ModelResponse,
    ToolCall,
    ToolChoice,
    ToolSpec,
    TransientModelError,
    Usage,
    status_error,
)

DEFAULT_MAX_TOKENS = 1024

# Retried: request timeout, rate limit, a gateway or server that is down, and 529 "overloaded".
_TRANSIENT_STATUS = frozenset({408, 429, 502, 503, 504, 529})

# Tether's (OpenAI-style) tool_choice in the Messages API's words.
_TOOL_CHOICE: dict[str, ToolChoiceParam] = {
    "auto": {"type": "auto"},
    "required": {"type": "any"},
    "none": {"type": "none"},
}

# Sent to self-hosted / proxy endpoints when no key is given; never read from the environment
# so a real Anthropic key is not leaked to a third-party `base_url`.
_PLACEHOLDER_KEY = "not-needed"


class AnthropicChatModel:
    """Claude through the Messages API with tool use.

    `name` is the full reference (`anthropic:claude-sonnet-4-5`), `model` the part after the colon.

    With `api_key` None and no `base_url`, the SDK resolves credentials itself
    (`ANTHROPIC_API_KEY`, `ANTHROPIC_AUTH_TOKEN`, a profile); none at all raises `ModelError`
    at call time.

    `model` in the returned `ModelResponse` is the model name the provider reports in its
    response (e.g. `claude-sonnet-4-6-20260217`), falling back to the requested `model` if absent.

    `http_client` is an optional `httpx2.AsyncClient` (the HTTP library `anthropic>=2` is built
    on); tests pass one with a mock transport.

    With `prompt_cache`, the system prompt and the tool list carry `cache_control` breakpoints, so
    the provider caches that stable prefix; the cache reads and writes it reports are priced as such.
    """

    def __init__(
        self,
        name: str,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        tool_choice: ToolChoice = "auto",
        http_client: httpx2.AsyncClient | None = None,
        prompt_cache: bool = False,
    ) -> None:
        self.name = name
        self.prompt_cache = prompt_cache
        self.model = model
        self.base_url = base_url
        self.timeout_s = timeout_s
        self.tool_choice: ToolChoice = tool_choice
        self._api_key = api_key if api_key is not None else (_PLACEHOLDER_KEY if base_url else None)
        self._http_client = http_client
        self._client: anthropic.AsyncAnthropic | None = None

    def _get_client(self) -> anthropic.AsyncAnthropic:
        if self._client is None:
            try:
                client = anthropic.AsyncAnthropic(
                    api_key=self._api_key,
                    base_url=self.base_url,
                    timeout=self.timeout_s,
                    max_retries=0,
                    http_client=self._http_client,
                )
            except anthropic.AnthropicError as exc:
                raise ModelError(f"model {self.name}: could not load Anthropic credentials: {exc}") from exc
            if client.api_key is None and client.auth_token is None and client.credentials is None:
                raise ModelError(
                    f"model {self.name}: no API key: set ANTHROPIC_API_KEY, pass api_key, "
                    f"or set base_url for a self-hosted endpoint"
                )
            self._client = client
        return self._client

    async def aclose(self) -> None:
        """Close the underlying HTTP client (including one passed as `http_client`)."""
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def chat(
        self, messages: list[Message], tools: list[ToolSpec], *, max_output_tokens: int | None = None
    ) -> ModelResponse:
        client = self._get_client()
        system, wire_messages = to_anthropic_messages(messages)
        wire_tools = [to_anthropic_tool(t) for t in tools]
        wire_system: str | list[TextBlockParam] = system
        if self.prompt_cache:
            wire_system, wire_tools = with_cache_breakpoints(system, wire_tools)
        try:
            reply = await client.messages.create(
                model=self.model,
                max_tokens=DEFAULT_MAX_TOKENS if max_output_tokens is None else max_output_tokens,
                messages=wire_messages,
                system=wire_system if system else anthropic.omit,
                tools=wire_tools if wire_tools else anthropic.omit,
                tool_choice=(
                    _TOOL_CHOICE[self.tool_choice]
                    if wire_tools and self.tool_choice != "omit"
                    else anthropic.omit
                ),
            )
        except anthropic.AnthropicError as exc:
            raise self._map_error(exc) from exc
        return self._parse(reply)

    def _parse(self, reply: AnthropicMessage) -> ModelResponse:
        texts: list[str] = []
        tool_calls: list[ToolCall] = []
        for block in reply.content:
            if block.type == "text":
                texts.append(block.text)
            elif block.type == "tool_use":
                tool_calls.append(ToolCall(id=block.id, name=block.name, arguments=dict(block.input)))
            # thinking and server-tool blocks carry nothing the runtime acts on
        return ModelResponse(
            content="".join(texts),
            tool_calls=tool_calls,
            usage=_usage(reply),
            model=reply.model or self.model,
            finish_reason=reply.stop_reason or ("tool_use" if tool_calls else "end_turn"),
        )

    def _map_error(self, exc: anthropic.AnthropicError) -> ModelError:
        prefix = f"model {self.name} failed"
        if isinstance(exc, anthropic.APITimeoutError):
            return TransientModelError(f"{prefix}: request timed out after {self.timeout_s}s")
        if isinstance(exc, anthropic.APIConnectionError):
            return TransientModelError(f"{prefix}: connection error: {exc.__cause__ or exc}")
        if isinstance(exc, anthropic.APIStatusError):
            message = exc.api_message or exc.message
            return status_error(prefix, exc.status_code, message, transient=_TRANSIENT_STATUS)
        return ModelError(f"{prefix}: {exc}")


def to_anthropic_messages(messages: list[Message]) -> tuple[str, list[MessageParam]]:
    """Our messages as (system prompt, Messages API turns).

    System messages are joined into the `system` parameter. Assistant tool calls become
    `tool_use` blocks; tool results become `tool_result` blocks in a user turn. Consecutive
    turns of the same role (several tool results, or tool results followed by a user message)
    are merged into one, as the API expects every `tool_use` to be answered in the next turn.
    """
    system_parts: list[str] = []
    turns: list[tuple[Literal["user", "assistant"], list[ContentBlockParam]]] = []

    def add(role: Literal["user", "assistant"], blocks: list[ContentBlockParam]) -> None:
        if not blocks:
            return
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(blocks)
        else:
            turns.append((role, blocks))

    for m in messages:
        if m.role == "system":
            if m.content:
                system_parts.append(m.content)
        elif m.role == "user":
            add("user", [{"type": "text", "text": m.content}] if m.content else [])
        elif m.role == "assistant":
            blocks: list[ContentBlockParam] = []
            if m.content:
                blocks.append({"type": "text", "text": m.content})
            for call in m.tool_calls:
                blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments})
            add("assistant", blocks)
        else:
            if not m.tool_call_id:
                raise ModelError("a tool message needs the tool_call_id of the call it answers")
            add("user", [{"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content}])

    wire: list[MessageParam] = []
    for role, blocks in turns:
        first = blocks[0]
        # a lone text block is sent as a plain string, the common shape
        content: str | list[ContentBlockParam] = (
            first["text"] if len(blocks) == 1 and first["type"] == "text" else blocks
        )
        if role == "user":
            wire.append({"role": "user", "content": content})
        else:
            wire.append({"role": "assistant", "content": content})
    return "\n\n".join(system_parts), wire


def _usage(reply: AnthropicMessage) -> Usage:
    """Anthropic's `input_tokens` leaves out cache reads and writes; ours counts every input token."""
    read = reply.usage.cache_read_input_tokens or 0
    written = reply.usage.cache_creation_input_tokens or 0
    return Usage(
        input_tokens=reply.usage.input_tokens + read + written,
        output_tokens=reply.usage.output_tokens,
        cache_read_tokens=read,
        cache_write_tokens=written,
    )


def with_cache_breakpoints(
    system: str, tools: list[ToolParam]
) -> tuple[list[TextBlockParam], list[ToolParam]]:
    """The system prompt and tool list with `cache_control` on their last block (two breakpoints).

    Tools come first in Anthropic's prompt order, then the system prompt, so these two breakpoints
    cache the part of the prompt that is the same for every run of a release.
    """
    blocks: list[TextBlockParam] = [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}]
    marked = list(tools)
    if marked:
        marked[-1] = {**marked[-1], "cache_control": {"type": "ephemeral"}}
    return blocks, marked


def to_anthropic_tool(spec: ToolSpec) -> ToolParam:
    return {"name": spec.name, "description": spec.description, "input_schema": spec.parameters}
