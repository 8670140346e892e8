"""A small agent for the observability tests: one read tool, one failing tool, one gated write.

The policy reads the task as "<tool> <json args>" (or "escalate", or plain text to answer at
once) and reports the last observation back as its final answer.
"""

from __future__ import annotations

TOOLS = '''
from tether import tool


@tool
def lookup(order: str) -> str:
    """Look up an order.

    Args:
        order: The order number.
    """
    return f"order {order}: shipped"


@tool
def explode(reason: str) -> str:
    """Always fails.

    Args:
        reason: Put into the error message.
    """
    raise RuntimeError(f"boom: {reason}")


@tool(side_effect="write", risk="high", requires_approval=True)
def refund(order: str) -> str:
    """Refund an order (a human approves first).

    Args:
        order: The order number.
    """
    return f"refunded {order}"
'''

POLICY = """
import json
from tether.models.scripted import ScriptedTurn

def respond(turn: ScriptedTurn):
    if turn.observations:
        seen = turn.observations[-1]
        return f"{seen.tool} said: {seen.content}"
    text = turn.user_input
    if text == "escalate":
        return turn.call("escalate_to_human", reason="the customer asked for a person")
    name, _, args = text.partition(" ")
    if name in ("lookup", "explode", "refund"):
        return turn.call(name, **json.loads(args or "{}"))
    return "Hello! " + text
"""

PRICES = """
[prices."scripted:test-v1"]
input_per_mtok = 1.0
output_per_mtok = 2.0
"""
