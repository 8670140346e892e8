"""A deterministic support-agent policy for the `scripted:support-v1` model.

It decides the next step from the customer's latest message (and order numbers mentioned earlier
in the thread) plus the results of the tools it already called in this run. Tool results are read
only as data: nothing inside them (such as an order note) can change which tools are called.
"""

from __future__ import annotations

import re
from typing import Any

from tether.models.base import ToolCall
from tether.models.scripted import Observation, ScriptedTurn

ORDER_ID = re.compile(r"(?<!\d)\d{5}(?!\d)")
MAX_TOOL_RESULTS = 8
"""Give a final answer after this many tool results in one run, whatever happens."""

ESCALATE_TOOL = "escalate_to_human"
REFUND_REASON = "Customer requested a refund for a delivered order within the 30-day return window."

HELP_TEXT = (
    "Hi! I'm the Acme support assistant. I can help with your orders, returns, refunds and "
    "shipping, or answer questions about our policies. What can I do for you? If it's about a "
    "specific order, please include the 5-digit order number."
)
ASK_ORDER_TEXT = (
    "I'd be happy to help with that. Could you tell me the 5-digit order number? You can find it "
    "in your order confirmation email."
)

_LEGAL = re.compile(r"\b(lawyers?|attorneys?|legal action|lawsuit|sue|suing|court|small claims|solicitor)\b")
_CHARGEBACK = re.compile(r"\b(charge ?backs?|dispute (the|this|my) (charge|payment)|bank dispute)\b")
_HUMAN = re.compile(
    r"\b(manager|supervisor|human|real person|representative|someone in charge|speak to a person)\b"
)
_REFUND = re.compile(r"\b(refund(ed|s)?|money back|reimburse(ment)?)\b")
_ELIGIBLE = re.compile(r"\beligib(le|ility)\b")
_RETURN = re.compile(r"\b(return(ing|ed|s)?|send (it|this|them) back|exchange)\b")
_STATUS = re.compile(
    r"\b(where|status|track(ing)?|shipped|ship|arriv(e|ed|ing)|deliver(y|ed)?|when|package|parcel|order)\b"
)
_POLICY_TOPIC = re.compile(
    r"\b(polic(y|ies)|returns?|refunds?|ship(ping)?|deliver(y|ies)?|warrant(y|ies)|privacy|personal data|"
    r"data|exchanges?|damaged|defective|broken|cancel(lation|ling)?|price (match|adjustment)|tracking)\b"
)
_GENERAL_QUESTION = re.compile(
    r"\b(how (long|many|much|do|does|can)|what (is|are)|what's|do you|does|can (i|you)|is there|which|"
    r"tell me about)\b"
)
_PERSONAL = re.compile(
    r"\b(my|i want|i'd like|i would like|i need)\b|\b(return|refund|send back) (it|this|them|that)\b"
)
_REJECTED = re.compile(r"reject|declin|denied|not approved|disapproved")
_NOT_FOUND = re.compile(r"no order|not found|does not belong|not on (this|your) account")
_ERROR_TEXT = re.compile(r"^\s*(tool error|error)\b", re.IGNORECASE)


# --------------------------------------------------------------------------- helpers


def _money(value: Any) -> str:
    try:
        return f"${float(value):,.2f}"
    except (TypeError, ValueError):
        return "the refundable amount"


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _first_order_id(text: str) -> str | None:
    match = ORDER_ID.search(text)
    return match.group(0) if match else None


def _order_from_history(turn: ScriptedTurn) -> str | None:
    """The order number the customer mentioned most recently earlier in the thread."""
    for message in reversed(turn.history):
        if message.role == "user":
            found = ORDER_ID.findall(message.content)
            if found:
                return str(found[-1])
    return None


def _observed(turn: ScriptedTurn, tool: str, **arguments: Any) -> Observation | None:
    """The latest result of `tool` called with (at least) these arguments in this run."""
    for observation in reversed(turn.observations):
        if observation.tool == tool and all(observation.arguments.get(k) == v for k, v in arguments.items()):
            return observation
    return None


def _error_of(observation: Observation) -> str | None:
    """The error message if a tool result is an error, else None."""
    data = observation.json()
    if isinstance(data, dict) and data.get("error"):
        return str(data["error"])
    if _ERROR_TEXT.match(observation.content):
        return observation.content.strip()
    return None


def _is_rejection(observation: Observation) -> bool:
    """Whether a tool result says a human reviewer did not approve the call.

    Only the result's own status fields count, never free text inside returned data.
    """
    data = observation.json()
    if isinstance(data, dict):
        if data.get("approved") is False:
            return True
        fields = (data.get(key) for key in ("error", "status", "decision", "message", "result"))
        return any(isinstance(value, str) and _REJECTED.search(value.lower()) for value in fields)
    if data is None:  # plain text, e.g. a runtime notice
        return bool(_REJECTED.search(observation.content.lower()))
    return False


def _rejection_reason(observation: Observation) -> str | None:
    data = observation.json()
    if isinstance(data, dict):
        for key in ("reason", "comment", "reviewer_comment", "note", "detail"):
            value = data.get(key)
            if isinstance(value, str) and value.strip():
                return _short(value)
        text = " ".join(str(data.get(key) or "") for key in ("error", "message", "status"))
    else:
        text = observation.content
    match = re.search(r"(?:reason|comment|note)\s*[:=]\s*(.+)", text, re.IGNORECASE | re.DOTALL)
    if match is None:
        match = re.search(r":\s*(.+)", text, re.DOTALL)
    if match and match.group(1).strip():
        return _short(match.group(1).strip().rstrip("."))
    return None


# --------------------------------------------------------------------------- intents


def _intent(text: str, has_order: bool) -> str:
    """One of: policy, refund, return, status, other (escalation is checked before)."""
    if not has_order and _POLICY_TOPIC.search(text):
        general = _GENERAL_QUESTION.search(text) and not _PERSONAL.search(text)
        if re.search(r"\bpolic(y|ies)\b", text) or general:
            return "policy"
    if _REFUND.search(text):  # asking whether/what the rules are is not asking for the money
        return "return" if _ELIGIBLE.search(text) or re.search(r"\bpolic(y|ies)\b", text) else "refund"
    if _RETURN.search(text) or _ELIGIBLE.search(text):
        return "return"
    if has_order or _STATUS.search(text):
        return "status"
    if _POLICY_TOPIC.search(text):
        return "policy"
    return "other"


def _escalation_reason(text: str) -> str | None:
    if _LEGAL.search(text):
        return "Customer mentioned legal action; needs a human specialist."
    if _CHARGEBACK.search(text):
        return "Customer mentioned a chargeback or payment dispute; needs a human specialist."
    if _HUMAN.search(text):
        return "Customer asked to speak with a human or a manager."
    return None


# --------------------------------------------------------------------------- answers


def _after_problem(observation: Observation) -> str | None:
    """A final answer when the latest tool result ends the run (escalated, rejected, failed)."""
    order_id = observation.arguments.get("order_id")
    if observation.tool == ESCALATE_TOOL:
        return (
            "I've passed your conversation to a member of our customer care team. They'll review "
            "everything so far and get back to you within one business day."
        )
    if _is_rejection(observation):
        reason = _rejection_reason(observation)
        because = f" The reason given was: {reason}." if reason else ""
        what = "the refund" if observation.tool == "issue_refund" else "the refund request"
        return (
            f"I'm sorry — a refund specialist reviewed {what} for order {order_id} and declined "
            f"it, so no refund has been issued.{because} If you'd like, I can pass this to our "
            "customer care team for a second look."
        )
    error = _error_of(observation)
    if error is None:
        return None
    if observation.tool == "lookup_order" and _NOT_FOUND.search(error.lower()):
        return (
            f"I'm sorry, I couldn't find order {order_id} on your account. Could you double-check "
            "the 5-digit order number in your confirmation email?"
        )
    action = {
        "lookup_order": f"look up order {order_id}",
        "check_return_eligibility": f"check whether order {order_id} can be returned",
        "search_policy": "search our policies",
        "draft_refund_note": f"record the refund request for order {order_id}",
        "issue_refund": f"issue the refund for order {order_id}",
    }.get(observation.tool, f"complete a step ({observation.tool})")
    done = " No refund has been issued." if observation.tool in ("draft_refund_note", "issue_refund") else ""
    return (
        f"I'm sorry — I wasn't able to {action} just now (the system reported: {_short(error, 160)})."
        f"{done} I don't want to guess, so please try again in a little while, or ask me to pass "
        "this to a human specialist."
    )


def _status_answer(order: dict[str, Any]) -> str:
    order_id, item, status = order.get("order_id"), order.get("item"), order.get("status")
    ordered = order.get("ordered_on")
    carrier, tracking = order.get("carrier"), order.get("tracking_number")
    via = f" via {carrier}" if carrier else ""
    track = f", tracking number {tracking}" if tracking else ""
    if status == "shipped":
        return (
            f"Good news — order {order_id} ({item}) has shipped{via}{track}. It was ordered on "
            f"{ordered} and is on its way to you."
        )
    if status == "delivered":
        return (
            f"Order {order_id} ({item}) was delivered on {order.get('delivered_on')}{via}{track}. "
            f"It was ordered on {ordered}. Let me know if anything is wrong with it."
        )
    if status == "processing":
        return (
            f"Order {order_id} ({item}) was placed on {ordered} and is still being processed in our "
            "warehouse, so it hasn't shipped and there's no tracking number yet. You'll get an email "
            "with tracking as soon as it ships."
        )
    if status == "cancelled":
        return (
            f"Order {order_id} ({item}), placed on {ordered}, was cancelled, so you were not charged for it."
        )
    return f"Order {order_id} ({item}) was placed on {ordered}; its current status is {status}."


def _return_answer(order: dict[str, Any], eligibility: dict[str, Any]) -> str:
    order_id, item = order.get("order_id"), order.get("item")
    if eligibility.get("eligible"):
        return (
            f"Yes — order {order_id} ({item}) can be returned: it was {eligibility.get('reason')}. "
            f"You can get up to {_money(eligibility.get('max_refundable_usd'))} back. Would you like "
            "me to start a refund?"
        )
    return (
        f"I'm sorry, order {order_id} ({item}) can't be returned for a refund: "
        f"{eligibility.get('reason')}. {_alternative(order)}"
    )


def _not_refundable_answer(order: dict[str, Any], eligibility: dict[str, Any]) -> str:
    return (
        f"I'm sorry, I can't refund order {order.get('order_id')} ({order.get('item')}): "
        f"{eligibility.get('reason')}. {_alternative(order)}"
    )


def _alternative(order: dict[str, Any]) -> str:
    status = order.get("status")
    if status in ("shipped", "processing"):
        return "Once it's delivered you'll have 30 days to return it."
    if status == "delivered":
        return (
            "If the item is faulty, it may still be covered by the 1-year manufacturer warranty — "
            "I'm happy to help with that."
        )
    return "Is there anything else I can help with?"


def _refund_answer(order: dict[str, Any], refund: dict[str, Any]) -> str:
    return (
        f"Done — I've issued a refund of {_money(refund.get('amount_usd'))} for order "
        f"{order.get('order_id')} ({order.get('item')}), reference #{refund.get('refund_id')}. It will "
        "go back to your original payment method within 5-10 business days."
    )


def _policy_answer(results: Any) -> str:
    if not isinstance(results, list) or not results or not isinstance(results[0], dict):
        return (
            "I couldn't find a policy that covers that. Could you rephrase the question, or tell me "
            "the order number if it's about a specific order?"
        )
    top = results[0]
    sentences = re.split(r"(?<=[.!?])\s+", str(top.get("body", "")).strip())
    summary = " ".join(sentences[:2])
    related = [str(r.get("title")) for r in results[1:] if isinstance(r, dict) and r.get("title")]
    more = f" Related sections: {', '.join(related)}." if related else ""
    title = top.get("title")
    return f'From our policy section "{title}": {summary}{more} Is there anything else I can help with?'


# --------------------------------------------------------------------------- flows


def _call(turn: ScriptedTurn, tool: str, unavailable: str, **arguments: Any) -> str | ToolCall:
    """Call a tool if this agent has it, else answer with `unavailable`."""
    return turn.call(tool, **arguments) if turn.has_tool(tool) else unavailable


def _policy_flow(turn: ScriptedTurn, question: str) -> str | ToolCall:
    query = _short(question, 300)
    found = _observed(turn, "search_policy", query=query)
    if found is None:
        return _call(turn, "search_policy", "I'm sorry, I can't search our policies right now.", query=query)
    return _policy_answer(found.json())


def _order_flow(turn: ScriptedTurn, intent: str, order_id: str) -> str | ToolCall:
    lookup = _observed(turn, "lookup_order", order_id=order_id)
    if lookup is None:
        return _call(turn, "lookup_order", "I'm sorry, I can't look up orders right now.", order_id=order_id)
    order = lookup.json()
    if not isinstance(order, dict):
        return f"I'm sorry — I couldn't read the details of order {order_id} just now. Please try again soon."
    if intent == "status":
        return _status_answer(order)

    check = _observed(turn, "check_return_eligibility", order_id=order_id)
    if check is None:
        unavailable = f"I'm sorry, I can't check return eligibility for order {order_id} right now."
        return _call(turn, "check_return_eligibility", unavailable, order_id=order_id)
    eligibility = check.json()
    if not isinstance(eligibility, dict):
        return f"I'm sorry — I couldn't check if order {order_id} can be returned. Please try again soon."
    if intent == "return":
        return _return_answer(order, eligibility)
    if not eligibility.get("eligible"):
        return _not_refundable_answer(order, eligibility)

    amount = round(float(eligibility.get("max_refundable_usd") or 0.0), 2)
    if _observed(turn, "draft_refund_note", order_id=order_id) is None and turn.has_tool("draft_refund_note"):
        note = (
            f"Customer asked for a refund of order {order_id} ({order.get('item')}). Eligibility check: "
            f"{eligibility.get('reason')}. Proposed refund: {_money(amount)}."
        )
        return turn.call("draft_refund_note", order_id=order_id, note=note)
    refund = _observed(turn, "issue_refund", order_id=order_id)
    if refund is None:
        if not turn.has_tool("issue_refund"):
            return (
                f"Order {order_id} ({order.get('item')}) is eligible for a refund of {_money(amount)}, but "
                "I can't issue refunds myself right now. I've noted your request and a refund specialist "
                "will follow up by email."
            )
        return turn.call("issue_refund", order_id=order_id, amount_usd=amount, reason=REFUND_REASON)
    record = refund.json()
    if isinstance(record, dict) and record.get("refund_id") is not None:
        return _refund_answer(order, record)
    return (
        f"I've submitted the refund request for order {order_id}, but I couldn't confirm it went through. "
        "Please don't worry — a specialist will check it and email you."
    )


def respond(turn: ScriptedTurn) -> str | ToolCall | list[ToolCall]:
    """Choose the next step: a tool call, or the final answer to the customer."""
    text = turn.user_input.strip()
    lowered = text.lower()
    observations = turn.observations

    if observations:
        final = _after_problem(observations[-1])
        if final is not None:
            return final
        if len(observations) >= MAX_TOOL_RESULTS:
            return (
                "I'm sorry, this is taking longer than it should. Let me pass this to a human specialist, "
                "who will follow up with you by email."
            )

    reason = _escalation_reason(lowered)
    if reason is not None:
        if turn.has_tool(ESCALATE_TOOL) and not turn.called(ESCALATE_TOOL):
            return turn.call(ESCALATE_TOOL, reason=reason)
        return (
            "I understand, and I'm sorry for the trouble. I've flagged this conversation for our customer "
            "care team; a member of the team will contact you within one business day."
        )

    order_id = _first_order_id(text)
    intent = _intent(lowered, has_order=order_id is not None)
    if intent == "policy":
        return _policy_flow(turn, text)
    if intent == "other":
        return HELP_TEXT
    order_id = order_id or _order_from_history(turn)
    if order_id is None:
        return ASK_ORDER_TEXT
    return _order_flow(turn, intent, order_id)
