"""Opt-in content on spans: messages, tool arguments and results, redacted like log lines.

Off by default (`TETHER_TRACE_CONTENT`), because prompts and tool results carry user data. When on,
each value is scrubbed by the logs' `Redactor` (API keys, bearer tokens, URL passwords, secret
fields and secret environment values) and cut to `TETHER_TRACE_CONTENT_MAX_CHARS`, then written
twice: as the OpenTelemetry GenAI attributes (`gen_ai.input.messages`, `gen_ai.output.messages`,
`gen_ai.system_instructions`, `gen_ai.tool.call.arguments`, `gen_ai.tool.call.result`, JSON in the
conventions' parts format) and as the OpenInference ones Phoenix shows (`input.value`,
`output.value`, `llm.input_messages.*`, `llm.output_messages.*`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from tether.models.base import Message
from tether.observe.logs import Redactor

_CUT = "…[truncated]"


class ContentCapture:
    """Turns run content into span attributes; one per process, shared by every run."""

    def __init__(self, redactor: Redactor, *, max_chars: int = 8_000) -> None:
        self.redactor = redactor
        self.max_chars = max_chars

    def text(self, value: str) -> str:
        scrubbed = self.redactor.scrub(value)
        if len(scrubbed) <= self.max_chars:
            return scrubbed
        return scrubbed[: max(self.max_chars - len(_CUT), 0)] + _CUT

    def json(self, value: Any) -> str:
        return self.text(json.dumps(self.redactor.clean(value), ensure_ascii=False, default=str))

    # -- model calls ----------------------------------------------------------------------------

    def model_input(self, messages: Sequence[Message]) -> dict[str, Any]:
        """Attributes for what a model call was sent (the system prompt kept apart, as GenAI asks)."""
        system = [m.content for m in messages if m.role == "system" and m.content]
        chat = [m for m in messages if m.role != "system"]
        attributes: dict[str, Any] = {
            "gen_ai.input.messages": self.json([_genai_message(m) for m in chat]),
            "input.value": self.json([_plain_message(m) for m in messages]),
            "input.mime_type": "application/json",
        }
        if system:
            attributes["gen_ai.system_instructions"] = self.json(
                [{"type": "text", "content": text} for text in system]
            )
        attributes.update(self._openinference("llm.input_messages", messages))
        return attributes

    def model_output(self, message: Message, finish_reason: str) -> dict[str, Any]:
        output = {**_genai_message(message), "finish_reason": finish_reason}
        attributes: dict[str, Any] = {"gen_ai.output.messages": self.json([output])}
        if message.tool_calls:  # Phoenix shows output.value as is: the calls are the answer
            attributes["output.value"] = self.json(_plain_message(message))
            attributes["output.mime_type"] = "application/json"
        else:
            attributes["output.value"] = self.text(message.content)
            attributes["output.mime_type"] = "text/plain"
        attributes.update(self._openinference("llm.output_messages", [message]))
        return attributes

    def _openinference(self, prefix: str, messages: Sequence[Message]) -> dict[str, Any]:
        flat: dict[str, Any] = {}
        for i, message in enumerate(messages):
            key = f"{prefix}.{i}.message"
            flat[f"{key}.role"] = message.role
            if message.content:
                flat[f"{key}.content"] = self.text(message.content)
            if message.tool_call_id:
                flat[f"{key}.tool_call_id"] = message.tool_call_id
            if message.name:
                flat[f"{key}.name"] = message.name
            for j, call in enumerate(message.tool_calls):
                call_key = f"{key}.tool_calls.{j}.tool_call"
                flat[f"{call_key}.id"] = call.id
                flat[f"{call_key}.function.name"] = call.name
                flat[f"{call_key}.function.arguments"] = self.json(call.arguments)
        return flat

    # -- tool calls and whole runs --------------------------------------------------------------

    def tool_call(self, arguments: dict[str, Any], result: str | None) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "gen_ai.tool.call.arguments": self.json(arguments),
            "input.value": self.json(arguments),
            "input.mime_type": "application/json",
        }
        if result is not None:
            attributes["gen_ai.tool.call.result"] = self.text(result)
            attributes["output.value"] = self.text(result)
            attributes["output.mime_type"] = "text/plain"
        return attributes

    def run(self, task: str, output: str | None) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "gen_ai.input.messages": self.json([_genai_message(Message(role="user", content=task))]),
            "input.value": self.text(task),
            "input.mime_type": "text/plain",
        }
        if output is not None:
            attributes["gen_ai.output.messages"] = self.json(
                [_genai_message(Message(role="assistant", content=output))]
            )
            attributes["output.value"] = self.text(output)
            attributes["output.mime_type"] = "text/plain"
        return attributes


def _genai_message(message: Message) -> dict[str, Any]:
    """One message in the GenAI conventions' shape: a role and typed parts."""
    parts: list[dict[str, Any]] = []
    if message.role == "tool":
        parts.append({"type": "tool_call_response", "id": message.tool_call_id, "response": message.content})
    elif message.content:
        parts.append({"type": "text", "content": message.content})
    for call in message.tool_calls:
        parts.append({"type": "tool_call", "id": call.id, "name": call.name, "arguments": call.arguments})
    return {"role": message.role, "parts": parts}


def _plain_message(message: Message) -> dict[str, Any]:
    return message.model_dump(mode="json", exclude_defaults=True)
