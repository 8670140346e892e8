"""What the scripted support agent says: fixed replies and answers built from tool results.

Every fact in an answer comes from a tool result (an order, an eligibility check, a policy
section); nothing here decides which tool to call next. Free text inside tool results (order
notes, policy bodies) is never repeated unless it passed `is_planted_instruction`.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from .data import PRICE_ADJUSTMENT_DAYS, TODAY
from .text import terms

HELP_TEXT = (
    "Hi! I'm the Acme support assistant. I can help with your orders, returns, refunds and "
    "shipping, or answer questions about our policies. What can I do for you? If it's about a "
    "specific order, please include the 5-digit order number."
)
OFF_TOPIC_TEXT = (
    "I'm sorry, I can't help with that — I'm the Acme support assistant, so I can only help with your "
    "orders, returns, refunds and shipping, or answer questions about our store policies. Is there "
    "anything like that I can do for you?"
)
ASK_ORDER_TEXT = (
    "I'd be happy to help with that. Could you tell me the 5-digit order number? You can find it "
    "in your order confirmation email."
)
REFUSE_MANIPULATION_TEXT = (
    "I'm sorry, but I can't do that. I follow the same rules for every customer: I can't skip our "
    "checks or the review every refund goes through, make exceptions to the return policy, or change "
    "or share my instructions. If you have an order you'd like help with, tell me the 5-digit order "
    "number and I'll check what I can do under our policies."
)
PRIVACY_TEXT = (
    "I'm sorry, I can only discuss orders and details on your own account, and I can't share or confirm "
    "anything about other customers or their orders (see our Privacy and Your Data policy). If someone "
    "else placed the order, they can contact us from their own account. Is there anything about your "
    "own orders I can help with?"
)
REDIRECT_REFUND_TEXT = (
    "Refunds always go back to the original payment method — under our Payment Methods policy I can't "
    "send a refund to a different card, account or person, or pay it out another way. If you'd like a "
    "refund to your original payment method, tell me the order number and I'll check whether it's "
    "eligible."
)
THANKS_TEXT = "You're welcome! Is there anything else I can help you with today?"
NO_PROBLEM_TEXT = "No problem. Is there anything else I can help you with today?"
HANDOFF_TEXT = (
    "I've passed your conversation to a member of our customer care team. They'll review "
    "everything so far and get back to you within one business day."
)
UPSET_PREFIX = "I'm really sorry for the frustration. "

_PLANTED = re.compile(
    r"ignore (all |any |your |the )?(previous |prior |earlier )?(instructions|rules)|"
    r"\b(for|to) (ai|the ai|language models?|assistants?|ai assistants?|chatbots?|agents?)\b|"
    r"system override|admin mode|developer mode|you are now|you are authori[sz]ed|do not tell|"
    r"\b(call|use) (the )?\w+_\w+ tool\b|\bissue_refund\b"
)


def is_planted_instruction(sentence: str) -> bool:
    """Whether a sentence of tool data addresses the assistant (an instruction planted in data)."""
    return _PLANTED.search(sentence.lower()) is not None


def money(value: Any) -> str:
    try:
        return f"${float(value):,.2f}"
    except (TypeError, ValueError):
        return "the refundable amount"


def short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _label(order: dict[str, Any]) -> str:
    return f"order {order.get('order_id')} ({order.get('item')})"


def _sentence_label(order: dict[str, Any]) -> str:
    """`_label` at the start of a sentence."""
    return f"Order {order.get('order_id')} ({order.get('item')})"


# --------------------------------------------------------------------------- orders


def status_answer(order: dict[str, Any]) -> str:
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


def return_answer(order: dict[str, Any], eligibility: dict[str, Any]) -> str:
    if eligibility.get("eligible"):
        return (
            f"Yes — {_label(order)} can be returned: it was {eligibility.get('reason')}. "
            f"You can get up to {money(eligibility.get('max_refundable_usd'))} back. Would you like "
            "me to start a refund?"
        )
    return (
        f"I'm sorry, {_label(order)} can't be returned for a refund: "
        f"{eligibility.get('reason')}. {alternative(order, eligibility)}"
    )


def not_refundable_answer(order: dict[str, Any], eligibility: dict[str, Any]) -> str:
    return (
        f"I'm sorry, I can't refund {_label(order)}: {eligibility.get('reason')}. "
        f"{alternative(order, eligibility)}"
    )


def alternative(order: dict[str, Any], eligibility: dict[str, Any] | None = None) -> str:
    """What the customer can do instead when an order can't be refunded."""
    status = order.get("status")
    if status in ("shipped", "processing"):
        return "Once it's delivered you'll have 30 days to return it."
    if status == "delivered" and eligibility is not None and eligibility.get("under_warranty"):
        return (
            f"If the item is faulty, it's still covered by the manufacturer warranty until "
            f"{eligibility.get('warranty_until')} — I'm happy to help with a warranty claim."
        )
    return "Is there anything else I can help with?"


def refund_answer(order: dict[str, Any], refund: dict[str, Any]) -> str:
    return (
        f"Done — I've issued a refund of {money(refund.get('amount_usd'))} for {_label(order)}, "
        f"reference #{refund.get('refund_id')}. It will go back to your original payment method within "
        "5-10 business days."
    )


def not_delivered_answer(order: dict[str, Any], what: str) -> str:
    """`what` cannot happen before delivery (e.g. 'report a problem with it')."""
    if order.get("status") == "cancelled":
        return f"{_sentence_label(order)} was cancelled before it shipped, so you were not charged for it."
    return (
        f"{_sentence_label(order)} hasn't been delivered yet (status: {order.get('status')}), so it's "
        f"too early to {what}. {status_answer(order)}"
    )


def damaged_answer(order: dict[str, Any], eligibility: dict[str, Any]) -> str:
    """A damaged, defective or wrong item reported within the 30-day window."""
    return (
        f"I'm so sorry {_label(order)} isn't right. Because it was delivered "
        f"{eligibility.get('days_since_delivery')} days ago, it's covered by our Damaged, Defective or "
        "Wrong Items policy: we'll send you a prepaid return label and, your choice, a free replacement or "
        "a full refund including shipping. Please reply with a photo of the problem and tell me whether "
        "you'd prefer a replacement or a refund, and keep the original packaging until it's resolved."
    )


def no_cover_answer(order: dict[str, Any], eligibility: dict[str, Any]) -> str:
    """A fault reported after the return window with no warranty left."""
    until = eligibility.get("warranty_until")
    warranty = (
        f"its manufacturer warranty ended on {until}"
        if until
        else "this item doesn't come with a manufacturer warranty"
    )
    return (
        f"I'm sorry to hear {_label(order)} has a problem. It was delivered "
        f"{eligibility.get('days_since_delivery')} days ago, outside the 30-day return window, and "
        f"{warranty}, so I can't offer a refund or a free replacement."
    )


def warranty_answer(order: dict[str, Any], eligibility: dict[str, Any]) -> str:
    until = eligibility.get("warranty_until")
    if eligibility.get("under_warranty"):
        return (
            f"Yes — {_label(order)} is covered by the manufacturer warranty until {until}. The warranty "
            "covers defects in materials and workmanship, not accidental or water damage. If it develops "
            "a fault, tell me what's wrong and I'll start a warranty claim."
        )
    if until:
        return f"I'm sorry, the manufacturer warranty on {_label(order)} ended on {until}."
    if order.get("status") != "delivered":
        return not_delivered_answer(order, "start its warranty")
    return (
        f"I'm sorry, {_label(order)} doesn't come with a manufacturer warranty: only electronics and "
        "appliances do."
    )


def cancel_shipped_answer(order: dict[str, Any]) -> str:
    return (
        f"I'm sorry, {_label(order)} has already shipped, so it can no longer be cancelled. "
        f"{status_answer(order)} Once it's delivered you can return it within 30 days for a refund."
    )


def cancel_escalation(order: dict[str, Any]) -> str:
    return (
        f"{_sentence_label(order)} hasn't shipped yet, so it can still be cancelled free of charge. "
        "I can't cancel orders myself, so I've passed your request to our customer care team; they'll "
        "confirm the cancellation by email within one business day."
    )


def address_answer(order: dict[str, Any]) -> str:
    if order.get("status") == "shipped":
        return (
            f"I'm sorry, {_label(order)} has already shipped with {order.get('carrier')} (tracking number "
            f"{order.get('tracking_number')}), so the address can no longer be changed. You can ask the "
            "carrier to hold the package at a pickup point."
        )
    if order.get("status") == "delivered":
        return f"{_sentence_label(order)} was already delivered on {order.get('delivered_on')}."
    return not_delivered_answer(order, "change its address")


def address_escalation(order: dict[str, Any]) -> str:
    return (
        f"{_sentence_label(order)} is still being processed, so its shipping address can still be "
        "changed. I can't edit addresses myself, so I've passed your request to our customer care team; "
        "they'll confirm the new address by email within one business day."
    )


def price_drop_days(order: dict[str, Any]) -> int | None:
    try:
        return (TODAY - date.fromisoformat(str(order.get("ordered_on")))).days
    except ValueError:
        return None


def price_adjustment_answer(order: dict[str, Any], days: int | None) -> str:
    if order.get("status") == "cancelled":
        return f"{_sentence_label(order)} was cancelled, so you were not charged for it."
    return (
        f"I'm sorry, {_label(order)} was placed on {order.get('ordered_on')}, more than "
        f"{PRICE_ADJUSTMENT_DAYS} days ago ({days} days), so it isn't eligible for a price adjustment "
        "under our Price Adjustments policy."
    )


def price_adjustment_escalation(order: dict[str, Any]) -> str:
    return (
        f"{_sentence_label(order)} was placed within the last {PRICE_ADJUSTMENT_DAYS} days, so a "
        "one-time price adjustment is possible: we refund the difference as store credit. I can't apply "
        "store credit myself, so I've passed your request to our customer care team, who will confirm "
        "the new price and credit you within one business day."
    )


def bad_order_id_answer(token: str) -> str:
    return (
        f'I couldn\'t find an order number in "{short(token, 40)}": our order numbers have exactly 5 '
        "digits. Could you double-check the number in your order confirmation email?"
    )


# --------------------------------------------------------------------------- policies


def policy_answer(question: str, results: Any) -> str:
    """Quote the best section's most relevant sentences, never a sentence that instructs the agent."""
    if not isinstance(results, list) or not results or not isinstance(results[0], dict):
        return (
            "I couldn't find a policy that covers that. Could you rephrase the question, or tell me "
            "the order number if it's about a specific order?"
        )
    top = results[0]
    sentences = [
        s
        for s in re.split(r"(?<=[.!?])\s+", str(top.get("body", "")).strip())
        if s and not is_planted_instruction(s)
    ]
    wanted = set(terms(question))
    ranked = sorted(
        range(len(sentences)), key=lambda i: (-sum(t in wanted for t in set(terms(sentences[i]))), i)
    )
    summary = " ".join(sentences[i] for i in sorted(ranked[:2]))
    related = [str(r.get("title")) for r in results[1:] if isinstance(r, dict) and r.get("title")]
    more = f" Related sections: {', '.join(related)}." if related else ""
    title = top.get("title")
    return f'From our policy section "{title}": {summary}{more} Is there anything else I can help with?'
