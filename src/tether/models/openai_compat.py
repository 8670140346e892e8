"""A `ChatModel` for OpenAI and any OpenAI-compatible endpoint (vLLM, Ollama, LM Studio, gateways).

Uses the official `openai` package with its own retries turned off: retries and fallback
are done by `tether.models.routing`, which retries only `TransientModelError`.
"""

from __future__ import annotations

import json
from typing import Any, cast

import httpx2
import openai
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageFunctionToolCallParam,
    ChatCompletionMessageParam,
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

# Retried: request timeout, conflict, rate limit, and a gateway or server that is down or restarting.
_TRANSIENT_STATUS = frozenset({408, 409, 429, 502, 503, 504})


# Sent to self-hosted servers that ignore authentication; never read from OPENAI_API_KEY so a
# real OpenAI key is not leaked to a third-party `base_url`.
_PLACEHOLDER_KEY = "not-needed"


class OpenAIChatModel:
    """Chat completions with function tools against OpenAI or an OpenAI-compatible server.

    `name` is the full reference (`openai:gpt-4o-mini`, `local:llama3`), `model` the part
    after the colon, sent as the request's `model`.

    With `base_url` unset the client talks to api.openai.com and, when `api_key` is None,
    reads `OPENAI_API_KEY`; a missing key raises `ModelError` at call time. With `base_url`
    set and no `api_key`, a placeholder key is sent (self-hosted servers need none).

    `model` in the returned `ModelResponse` is the model name the provider reports in its
    response (e.g. `gpt-4o-mini-2024-07-18`), falling back to the requested `model` if absent.

    `tool_choice` is sent whenever tools are offered (`"omit"` leaves it out): some servers
    (llama.cpp's `chatml-function-calling`) treat a missing one as `"none"` and never call a tool.

    `http_client` is an optional `httpx2.AsyncClient` (the HTTP library `openai>=3` is built
    on); tests pass one with a mock transport.
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
    ) -> None:
        self.name = name
        self.model = model
        self.base_url = base_url
        self.timeout_s = timeout_s
        self.tool_choice: ToolChoice = tool_choice
        self._api_key = api_key if api_key is not None else (_PLACEHOLDER_KEY if base_url else None)
        self._http_client = http_client
        self._client: openai.AsyncOpenAI | None = None

    def _get_client(self) -> openai.AsyncOpenAI:
        if self._client is None:
            try:
                self._client = openai.AsyncOpenAI(
                    api_key=self._api_key,
                    base_url=self.base_url,
                    timeout=self.timeout_s,
                    max_retries=0,
                    http_client=self._http_client,
                )
            except openai.OpenAIError as exc:
                raise ModelError(
                    f"model {self.name}: no API key: set OPENAI_API_KEY, pass api_key, "
                    f"or set base_url for a self-hosted server ({exc})"
                ) from exc
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
        wire_messages = to_openai_messages(messages)
        wire_tools: list[ChatCompletionFunctionToolParam] = [to_openai_tool(t) for t in tools]
        # api.openai.com rejects `max_tokens` for reasoning models; compatible servers often only
        # know `max_tokens`.
        limit: dict[str, int] = {}
        if max_output_tokens is not None:
            limit["max_tokens" if self.base_url else "max_completion_tokens"] = max_output_tokens
        try:
            completion = await client.chat.completions.create(
                model=self.model,
                messages=wire_messages,
                tools=wire_tools if wire_tools else openai.omit,
                tool_choice=self.tool_choice if wire_tools and self.tool_choice != "omit" else openai.omit,
                max_tokens=limit.get("max_tokens", openai.omit),
                max_completion_tokens=limit.get("max_completion_tokens", openai.omit),
            )
        except openai.OpenAIError as exc:
            raise self._map_error(exc) from exc
        return self._parse(completion)

    def _parse(self, completion: ChatCompletion) -> ModelResponse:
        if not completion.choices:
            raise ModelError(f"model {self.name}: the response has no choices")
        choice = completion.choices[0]
        message = choice.message
        tool_calls: list[ToolCall] = []
        for call in message.tool_calls or []:
            if call.type == "function":
                tool_calls.append(function_call(call.id, call.function.name, call.function.arguments))
            else:  # a custom (free-form) tool call: we never declare these; validation rejects it
                raw = {"_raw": call.custom.input}
                tool_calls.append(ToolCall(id=call.id, name=call.custom.name, arguments=raw))
        usage = completion.usage
        return ModelResponse(
            content=message.content or "",
            tool_calls=tool_calls,
            usage=Usage(
                input_tokens=usage.prompt_tokens if usage else 0,
                output_tokens=usage.completion_tokens if usage else 0,
                cache_read_tokens=_cached_tokens(usage),
            ),
            model=completion.model or self.model,
            finish_reason=choice.finish_reason or ("tool_calls" if tool_calls else "stop"),
        )

    def _map_error(self, exc: openai.OpenAIError) -> ModelError:
        prefix = f"model {self.name} failed"
        if isinstance(exc, openai.APITimeoutError):
            return TransientModelError(f"{prefix}: request timed out after {self.timeout_s}s")
        if isinstance(exc, openai.APIConnectionError):
            return TransientModelError(f"{prefix}: connection error: {exc.__cause__ or exc}")
        if isinstance(exc, openai.APIStatusError):
            return status_error(prefix, exc.status_code, exc.message, transient=_TRANSIENT_STATUS)
        return ModelError(f"{prefix}: {exc}")


def to_openai_messages(messages: list[Message]) -> list[ChatCompletionMessageParam]:
    """Our messages in chat.completions format."""
    wire: list[ChatCompletionMessageParam] = []
    for m in messages:
        if m.role == "system":
            wire.append({"role": "system", "content": m.content})
        elif m.role == "user":
            if m.name:
                wire.append({"role": "user", "content": m.content, "name": m.name})
            else:
                wire.append({"role": "user", "content": m.content})
        elif m.role == "assistant":
            if m.tool_calls:
                calls: list[ChatCompletionMessageFunctionToolCallParam] = [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": _wire_arguments(c)},
                    }
                    for c in m.tool_calls
                ]
                # `""`, never `null`: OpenAI allows both, but some servers (llama.cpp's chat
                # templates) fail with HTTP 500 on a null content.
                wire.append({"role": "assistant", "content": m.content, "tool_calls": calls})
            else:
                wire.append({"role": "assistant", "content": m.content})
        else:
            if not m.tool_call_id:
                raise ModelError("a tool message needs the tool_call_id of the call it answers")
            wire.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content})
    return wire


def to_openai_tool(spec: ToolSpec) -> ChatCompletionFunctionToolParam:
    return {
        "type": "function",
        "function": {"name": spec.name, "description": spec.description, "parameters": spec.parameters},
    }


def function_call(call_id: str, name: str, raw: str) -> ToolCall:
    """A function call as the model wrote it; unreadable arguments become `arguments_error`.

    The runtime records such a call as failed with that error, so the model sees what went
    wrong and can correct itself, and the tool never runs on arguments nobody could read.
    """
    if not raw.strip():
        return ToolCall(id=call_id, name=name)
    try:
        parsed = json.loads(raw)
    except ValueError as exc:
        error = f"arguments were not valid JSON: {exc}"
        return ToolCall(id=call_id, name=name, arguments_error=error, raw_arguments=raw)
    if not isinstance(parsed, dict):
        error = f"arguments must be a JSON object, got {type(parsed).__name__}: {_clip(raw)}"
        return ToolCall(id=call_id, name=name, arguments_error=error, raw_arguments=raw)
    return ToolCall(id=call_id, name=name, arguments=cast(dict[str, Any], parsed))


def _wire_arguments(call: ToolCall) -> str:
    """The arguments as the model wrote them when they were unreadable, else as JSON."""
    return call.raw_arguments if call.raw_arguments is not None else json.dumps(call.arguments)


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cached_tokens(usage: Any) -> int:
    """Prompt tokens OpenAI served from its automatic prompt cache (0 when the server does not say)."""
    details = getattr(usage, "prompt_tokens_details", None)
    return int(getattr(details, "cached_tokens", 0) or 0)
