"""A real, deterministic model client driven by a policy function the agent project supplies.

It is how tests, evals and the offline demo run: same inputs, same outputs, token usage
counted the way `tokens.estimate_prompt_tokens` counts it, so budgets behave as with a
hosted model.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tether.models.base import Message, ModelError, ModelResponse, ToolCall, ToolSpec, Usage
from tether.models.tokens import estimate_prompt_tokens, estimate_text_tokens


@dataclass(frozen=True)
class Observation:
    """A tool result the policy can read: which tool, with what arguments, and what came back."""

    tool: str
    arguments: dict[str, Any]
    content: str

    def json(self) -> Any:
        """The result parsed as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.content)
        except ValueError:
            return None


@dataclass(frozen=True)
class ScriptedTurn:
    """What a policy sees when it is asked for the next turn."""

    messages: list[Message]
    tools: list[ToolSpec]
    _issued: list[int] = field(default_factory=lambda: [0], repr=False, compare=False)

    @property
    def user_input(self) -> str:
        """The latest user message: the task of the current run."""
        for message in reversed(self.messages):
            if message.role == "user":
                return message.content
        return ""

    @property
    def history(self) -> list[Message]:
        """Messages from earlier runs of the thread (everything before the latest user message)."""
        for index in range(len(self.messages) - 1, -1, -1):
            if self.messages[index].role == "user":
                return [m for m in self.messages[:index] if m.role != "system"]
        return []

    @property
    def observations(self) -> list[Observation]:
        """Tool results of the current run, oldest first."""
        calls: dict[str, ToolCall] = {}
        seen: list[Observation] = []
        started = False
        for message in self.messages:
            if message.role == "user":
                calls, seen, started = {}, [], True
            elif started and message.role == "assistant":
                calls.update({call.id: call for call in message.tool_calls})
            elif started and message.role == "tool" and message.tool_call_id in calls:
                call = calls[message.tool_call_id]
                seen.append(Observation(call.name, call.arguments, message.content))
        return seen

    def last(self, tool: str) -> Observation | None:
        for observation in reversed(self.observations):
            if observation.tool == tool:
                return observation
        return None

    def called(self, tool: str) -> bool:
        return self.last(tool) is not None

    def has_tool(self, tool: str) -> bool:
        return any(spec.name == tool for spec in self.tools)

    def call(self, tool: str, **arguments: Any) -> ToolCall:
        """Build a tool call with an id unique within this conversation (also for repeats in one turn)."""
        self._issued[0] += 1
        suffix = "" if self._issued[0] == 1 else f"_{self._issued[0]}"
        return ToolCall(id=f"call_{len(self.messages)}_{tool}{suffix}", name=tool, arguments=arguments)


PolicyResult = str | ToolCall | list[ToolCall] | ModelResponse
Policy = Callable[[ScriptedTurn], PolicyResult]


class ScriptedModel:
    """A `ChatModel` whose every answer comes from `policy(turn)`."""

    def __init__(
        self, name: str, policy: Policy, *, read_tool_text: Callable[[str], str] | None = None
    ) -> None:
        self.name = name
        self._policy = policy
        self._read = read_tool_text
        """Reads a tool result as a model would (e.g. undoes the guard's datamarking); None: as is."""

    async def chat(
        self, messages: list[Message], tools: list[ToolSpec], *, max_output_tokens: int | None = None
    ) -> ModelResponse:
        try:
            seen = list(messages)
            if self._read is not None:
                read = self._read
                seen = [
                    m.model_copy(update={"content": read(m.content)}) if m.role == "tool" else m for m in seen
                ]
            result = self._policy(ScriptedTurn(messages=seen, tools=list(tools)))
        except ModelError:
            raise
        except Exception as exc:
            raise ModelError(f"scripted policy failed: {exc!r}") from exc
        response = _as_response(result)
        output = estimate_text_tokens(response.content) + sum(
            estimate_text_tokens(call.name + json.dumps(call.arguments, sort_keys=True))
            for call in response.tool_calls
        )
        if max_output_tokens is not None and output > max_output_tokens:
            output = max_output_tokens
        response.usage = Usage(input_tokens=estimate_prompt_tokens(messages, tools), output_tokens=output)
        response.model = self.name
        if "finish_reason" not in response.model_fields_set:  # a policy may play a cut-off answer
            response.finish_reason = "tool_calls" if response.tool_calls else "stop"
        return response


def _as_response(result: PolicyResult) -> ModelResponse:
    if isinstance(result, ModelResponse):
        return result.model_copy(deep=True)
    if isinstance(result, str):
        return ModelResponse(content=result)
    if isinstance(result, ToolCall):
        return ModelResponse(tool_calls=[result])
    if isinstance(result, list) and all(isinstance(item, ToolCall) for item in result):
        return ModelResponse(tool_calls=list(result))
    raise ModelError(
        f"scripted policy returned {type(result).__name__}; expected str, ToolCall or list of them"
    )
