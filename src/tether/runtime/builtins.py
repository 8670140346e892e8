"""Tools every agent has, handled by the loop itself rather than by user code."""

from __future__ import annotations

from tether.models.base import ToolSpec

ESCALATE = "escalate_to_human"

ESCALATE_SPEC = ToolSpec(
    name=ESCALATE,
    description=(
        "Hand the conversation to a human colleague and stop. Use it when the customer asks for a "
        "person, threatens legal action, or the request is outside what you may do."
    ),
    parameters={
        "type": "object",
        "properties": {"reason": {"type": "string", "description": "Why a human should take over."}},
        "required": ["reason"],
        "additionalProperties": False,
    },
)
