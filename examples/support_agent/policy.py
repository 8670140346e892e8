"""A deterministic support-agent policy for the `scripted:support-v1` model.

It decides the next step from the customer's latest message (and order numbers and offers made
earlier in the thread) plus the results of the tools it already called in this run. The rules, in
the order they apply:

1. a tool result that ends the run (an error, a rejection, an escalation) gets its answer;
2. legal threats and chargebacks go to a human;
3. attempts to change the rules (injected instructions, "skip the approval", "make an
   exception") are refused, and so are requests about other customers' data;
4. a request for a person goes to a human;
5. short follow-ups ("yes please", "thanks") continue the thread's last offer;
6. otherwise the request's intent picks a flow (policy question, status, return, refund,
   damaged item, warranty, cancellation, address change, price adjustment), which looks the
   order up before saying anything about it.

Tool results are read only as data: nothing inside them (such as an order note or a policy
section) can change which tools are called.
"""

from __future__ import annotations

import re
from typing import Any, TypeAlias

from tether.models.base import ModelResponse, ToolCall
from tether.models.scripted import Observation, ScriptedTurn

from . import replies
from .data import PRICE_ADJUSTMENT_DAYS, RETURN_WINDOW_DAYS

ORDER_ID = re.compile(r"(?<!\d)\d{5}(?!\d)")
MAX_TOOL_RESULTS = 8
"""Give a final answer after this many tool results in one run, whatever happens."""
MAX_ORDERS_PER_QUESTION = 3

ESCALATE_TOOL = "escalate_to_human"
REFUND_REASON = "Customer requested a refund for a delivered order within the 30-day return window."

# Kept importable under their old names.
HELP_TEXT = replies.HELP_TEXT
ASK_ORDER_TEXT = replies.ASK_ORDER_TEXT

Reply: TypeAlias = str | ToolCall | list[ToolCall] | ModelResponse

_LEGAL = re.compile(r"\b(lawyers?|attorneys?|legal action|lawsuit|sue|suing|court|small claims|solicitor)\b")
_CHARGEBACK = re.compile(r"\b(charge ?backs?|dispute (the|this|my) (charge|payment)|bank dispute)\b")
_HUMAN = re.compile(
    r"\b(manager|supervisor|human|real person|representative|someone in charge|speak to a person)\b"
)
_MANIPULATION = re.compile(
    r"\b(ignore|disregard|forget) (all |any |your |the |my )?(previous |prior |above |earlier |system )?"
    r"(instructions|rules|prompt|guidelines|polic(y|ies))|"
    r"\b(admin|developer|debug|god|maintenance|test) mode\b|\bjailbreak|\bdan mode\b|"
    r"\bsystem prompt\b|\byour (hidden |secret |internal )?(instructions|prompt|rules) (say|are)\b|"
    r"\b(show|print|reveal|repeat|tell me) (me )?(your|the) (hidden |secret |internal |system )?"
    r"(instructions|prompt|rules)\b|\byou are now\b|\bpretend (to be|you are|you're)\b|"
    r"^\s*\[?(system|admin|developer)\]?\s*:|\bnew (instructions|rules|system polic(y|ies))\b|"
    r"\bwithout (the |any |an |a |waiting for (the |an )?)?(approval|review|reviewer|verification|"
    r"eligibility check|checks?|specialist)\b|\bno approval\b|"
    r"\b(skip|bypass|override|circumvent|get around) (the |any |your |that )?(approval|review|checks?|"
    r"verification|polic(y|ies)|rules?|window|limits?)\b|\bbypass\b|\boverride\b|"
    r"\b(make|grant) (me )?an exception\b|\bexception to (the|your) (policy|rules?)\b|"
    r"\bregardless of (the |your )?(policy|window|rules|eligibility)\b|"
    r"\b(i'?m|i am) (a |an |the )?(acme |store |company )?(employee|staff member|admin|administrator|"
    r"developer|support lead)\b|\bauthori[sz]ed (you )?to\b"
)
_POSSESSIVE_NAME = re.compile(
    r"\b(?!(?:What|That|It|There|Here|Where|Who|How|Let|He|She)'s)[A-Z][a-z]+(?: [A-Z][a-z]+)?'s "
    r"(orders?|account|address|email|phone|package|purchases?|refunds?|details)\b"
)
_THIRD_PARTY = re.compile(
    r"\b(another|other|different) (customer|person|user|shopper)'?s?\b|\bsome(one|body) else'?s?\b|"
    r"\b(all|every|other|list of|your) (customers|users|shoppers)\b|"
    r"\bcustomer (list|database|emails?|records|addresses)\b|"
    r"\bwho (placed|ordered|bought|owns|made)\b|\bwhose (order|account|package)\b|"
    r"\b(his|her|their) (orders?|address|email|phone|account|package|purchases?|refunds?|details)\b|"
    r"\b(customer|user|account) u\d+\b|"
    r"\b(friend|neighbou?r|wife|husband|partner|mom|mother|dad|father|brother|sister|son|daughter|boss|"
    r"coworker|colleague|roommate)'s (orders?|account|address|email|package|purchases?|refunds?|details)\b"
)
_YES = re.compile(
    r"^(yes|yeah|yep|yup|sure|ok|okay|please do|go ahead|do it|please|absolutely|definitely|"
    r"that would be great)\b"
)
_NO = re.compile(r"^(no|nope|nah|not now)\b")
_THANKS = re.compile(
    r"\b(thanks|thank you|thx|cheers)\b|^(great|perfect|awesome|that's all|that is all|bye|goodbye)\b"
)
_GREETING = re.compile(r"^(hi|hello|hey|hiya|howdy|good (morning|afternoon|evening))\b")
_UPSET = re.compile(
    r"\b(unacceptable|ridiculous|furious|outrageous|outraged|worst|fed up|sick (and tired )?of|fuming|"
    r"disgusted|terrible service|awful service|useless|pathetic|incompetent|never (shop|order)ing|"
    r"third time|3rd time|nobody (has )?(helped|answers))\b"
)
_ACCOUNT = re.compile(
    r"\b(change|update|reset|edit) (my |the )?(email|e-mail|password|phone( number)?|name|username|"
    r"account details|login)\b|\b(delete|close|deactivate) (my )?account\b"
)
_REDIRECT = re.compile(
    r"\b(to|onto|into|on|via) (a |my |an |the )?(different|another|new|other|second|friend'?s|"
    r"wife'?s|husband'?s) (card|account|bank|payment method|credit card|debit card)\b|"
    r"\b(bitcoin|crypto|cash|wire transfer|bank transfer|zelle|venmo|western union|gift cards?)\b"
)
_REFUND = re.compile(r"\b(refund(ed|s)?|money back|reimburse(ment)?)\b")
_ELIGIBLE = re.compile(r"\beligib(le|ility)\b")
_RETURN = re.compile(r"\b(return(ing|ed|s)?|send (it|this|them) back|exchange)\b")
_CANCEL = re.compile(r"\bcancel\b")
_ADDRESS = re.compile(
    r"\b(change|update|correct|fix|edit) (the |my )?(shipping |delivery )?address\b|\bwrong address\b|"
    r"\b(ship|send|deliver) (it |this |them )?to (a |my )?(different|new|other) address\b|\bi moved\b"
)
_DAMAGED = re.compile(
    r"\b(damaged|defective|broken|broke|faulty|cracked|shattered|dented|torn|stopped working|not working|"
    r"doesn'?t work|does not work|won'?t (turn on|charge|work|start)|dead on arrival|wrong item|"
    r"missing parts?)\b"
)
_PRICE_DROP = re.compile(
    r"\bprice (drop(ped)?|went down|adjustment|match|is lower|is cheaper)\b|\b(cheaper|on sale|lower price) "
    r"(now|today|this week)\b|\bprice difference\b"
)
_WARRANTY = re.compile(r"\b(warrant(y|ies)|guarantee)\b")
_STATUS = re.compile(
    r"\b(where|status|track(ing)?|shipped|ship|arriv(e|ed|ing)|deliver(y|ed)?|when|package|parcel|order)\b"
)
_POLICY_TOPIC = re.compile(
    r"\b(polic(y|ies)|returns?|refunds?|ship(ping)?|deliver(y|ies)?|warrant(y|ies)|privacy|personal data|"
    r"data|exchanges?|damaged|defective|broken|cancel(s|led|lation|lations|ling)?|tracking|"
    r"price (match|adjustments?)|"
    r"final sale|clearance|gift cards?|payments?|pay|paypal|credit cards?|discount|promo|coupon|codes?|"
    r"rewards?|tiers?|gold|silver|members?(hip)?|address(es)?|internationally|international|express|"
    r"store credit)\b"
)
_GENERAL_QUESTION = re.compile(
    r"\b(how (long|many|much|do|does|can)|what (is|are)|what's|do you|does|can (i|you)|is there|which|"
    r"tell me about|are there|can (a|an|the|i|you|we))\b|^(can|could|do|does|is|are|will|would|should)\b"
)
_PRONOUN = re.compile(
    r"\b(for|on|with|about|return|refund|cancel) (it|this|that|them)\b|\b(it|this|that|them)\?*$"
)
_HYPOTHETICAL = re.compile(r"\b(what (happens|if|should i do|do i do)|in case|suppose|hypothetically)\b")
_PERSONAL = re.compile(
    r"\b(my|i want|i'd like|i would like|i need)\b|\b(return|refund|send back) (it|this|them|that)\b"
)
_ORDERISH = re.compile(
    r"(?:\border\s*(?:number|no\.?|id|#)\s*(?:is\s+|was\s+)?:?\s*#?|\border\s+#?(?=[\w-]*\d)|#)"
    r"([A-Za-z0-9][A-Za-z0-9-]*)",
    re.IGNORECASE,
)
_AMOUNT = re.compile(r"\$\s?(\d[\d,]*(?:\.\d{1,2})?)")
_REFUND_OFFER = re.compile(r"would you like me to start a refund", re.IGNORECASE)
_HANDOFF_OFFER = re.compile(
    r"pass (this|it) to (our customer care team|a human)|warranty claim|start a warranty", re.IGNORECASE
)
_REJECTED = re.compile(r"reject|declin|denied|not approved|disapproved")
_NOT_FOUND = re.compile(r"no order|not found|does not belong|not on (this|your) account")
_ERROR_TEXT = re.compile(r"^\s*(tool error|error)\b", re.IGNORECASE)


# --------------------------------------------------------------------------- reading the conversation


def _order_ids(text: str) -> list[str]:
    """The distinct 5-digit order numbers in a message, in order (at most a few)."""
    found: list[str] = []
    for order_id in ORDER_ID.findall(text):
        if order_id not in found:
            found.append(order_id)
    return found[:MAX_ORDERS_PER_QUESTION]


def _malformed_order_id(text: str) -> str | None:
    """Something the customer meant as an order number that is not 5 digits (e.g. '1234', 'A1234')."""
    for match in _ORDERISH.finditer(text):
        token = match.group(1)
        has_digit = any(ch.isdigit() for ch in token)
        explicit = "number" in match.group(0).lower() or "#" in match.group(0)
        if (has_digit and not ORDER_ID.fullmatch(token)) or (not has_digit and explicit):
            return token
    return None


def _order_from_history(turn: ScriptedTurn) -> str | None:
    """The order number the customer mentioned most recently earlier in the thread."""
    for message in reversed(turn.history):
        if message.role == "user":
            found = ORDER_ID.findall(message.content)
            if found:
                return str(found[-1])
    return None


def _earlier_intent(turn: ScriptedTurn) -> str | None:
    """What the customer's previous message asked for, when it was about an order."""
    for message in reversed(turn.history):
        if message.role == "user":
            intent = _intent(message.content.lower(), has_order=True)
            return intent if intent not in ("status", "other", "policy") else None
    return None


def _last_reply(turn: ScriptedTurn) -> str:
    """The assistant's last answer earlier in the thread ('' when none)."""
    for message in reversed(turn.history):
        if message.role == "assistant" and message.content:
            return message.content
    return ""


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
                return replies.short(value)
        text = " ".join(str(data.get(key) or "") for key in ("error", "message", "status"))
    else:
        text = observation.content
    match = re.search(r"(?:reason|comment|note)\s*[:=]\s*(.+)", text, re.IGNORECASE | re.DOTALL)
    if match is None:
        match = re.search(r":\s*(.+)", text, re.DOTALL)
    if match and match.group(1).strip():
        return replies.short(match.group(1).strip().rstrip("."))
    return None


# --------------------------------------------------------------------------- intents


def _intent(text: str, has_order: bool) -> str:
    """policy, cancel, address, damaged, price, warranty, refund, return, status or other."""
    if not has_order and _POLICY_TOPIC.search(text):
        general = _HYPOTHETICAL.search(text) or (
            _GENERAL_QUESTION.search(text) and not _PERSONAL.search(text)
        )
        if re.search(r"\bpolic(y|ies)\b", text) or general:
            return "policy"
    for intent, pattern in (
        ("cancel", _CANCEL),
        ("address", _ADDRESS),
        ("damaged", _DAMAGED),
        ("price", _PRICE_DROP),
        ("warranty", _WARRANTY),
    ):
        if pattern.search(text):
            return intent
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
    return None


# --------------------------------------------------------------------------- tool results that end the run


def _after_problem(observation: Observation) -> str | None:
    """A final answer when the latest tool result ends the run (escalated, rejected, failed)."""
    order_id = observation.arguments.get("order_id")
    if observation.tool == ESCALATE_TOOL:
        return replies.HANDOFF_TEXT
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
        f"I'm sorry — I wasn't able to {action} just now (the system reported: "
        f"{replies.short(error, 160)}).{done} I don't want to guess, so please try again in a little "
        "while, or ask me to pass this to a human specialist."
    )


# --------------------------------------------------------------------------- flows


def _call(turn: ScriptedTurn, tool: str, unavailable: str, **arguments: Any) -> str | ToolCall:
    """Call a tool if this agent has it, else answer with `unavailable`."""
    return turn.call(tool, **arguments) if turn.has_tool(tool) else unavailable


def _escalate(turn: ScriptedTurn, reason: str, said: str = "") -> Reply:
    """Hand over to a human, telling the customer `said` (the loop's default text when empty)."""
    if not turn.has_tool(ESCALATE_TOOL) or turn.called(ESCALATE_TOOL):
        return said or (
            "I understand, and I'm sorry for the trouble. I've flagged this conversation for our customer "
            "care team; a member of the team will contact you within one business day."
        )
    call = turn.call(ESCALATE_TOOL, reason=reason)
    return ModelResponse(content=said, tool_calls=[call]) if said else call


def _policy_flow(turn: ScriptedTurn, question: str) -> Reply:
    query = replies.short(question, 300)
    found = _observed(turn, "search_policy", query=query)
    if found is None:
        return _call(turn, "search_policy", "I'm sorry, I can't search our policies right now.", query=query)
    return replies.policy_answer(question, found.json())


def _lookup(turn: ScriptedTurn, order_id: str) -> ToolCall | str | dict[str, Any]:
    """The order (a dict), or the next step to get it."""
    lookup = _observed(turn, "lookup_order", order_id=order_id)
    if lookup is None:
        return _call(turn, "lookup_order", "I'm sorry, I can't look up orders right now.", order_id=order_id)
    order = lookup.json()
    if not isinstance(order, dict):
        return f"I'm sorry — I couldn't read the details of order {order_id} just now. Please try again soon."
    return order


def _eligibility(turn: ScriptedTurn, order_id: str) -> ToolCall | str | dict[str, Any]:
    """The eligibility check (a dict), or the next step to get it."""
    check = _observed(turn, "check_return_eligibility", order_id=order_id)
    if check is None:
        unavailable = f"I'm sorry, I can't check return eligibility for order {order_id} right now."
        return _call(turn, "check_return_eligibility", unavailable, order_id=order_id)
    eligibility = check.json()
    if not isinstance(eligibility, dict):
        return f"I'm sorry — I couldn't check if order {order_id} can be returned. Please try again soon."
    return eligibility


def _status_flow(turn: ScriptedTurn, order_ids: list[str]) -> Reply:
    """Look up every order asked about (in one step), then answer for each."""
    missing = [i for i in order_ids if _observed(turn, "lookup_order", order_id=i) is None]
    if missing and turn.has_tool("lookup_order"):
        calls = [turn.call("lookup_order", order_id=i) for i in missing]
        return calls[0] if len(calls) == 1 else calls
    answers: list[str] = []
    for order_id in order_ids:
        order = _lookup(turn, order_id)
        if isinstance(order, dict):
            answers.append(replies.status_answer(order))
        elif isinstance(order, str):
            answers.append(order)
    return " ".join(answers)


def _requested_amount(text: str) -> float | None:
    match = _AMOUNT.search(text)
    if match is None:
        return None
    amount = float(match.group(1).replace(",", ""))
    return amount if amount > 0 else None


def _refund_flow(
    turn: ScriptedTurn, order: dict[str, Any], eligibility: dict[str, Any], requested: float | None
) -> Reply:
    order_id = str(order.get("order_id"))
    if not eligibility.get("eligible"):
        return replies.not_refundable_answer(order, eligibility)
    limit = round(float(eligibility.get("max_refundable_usd") or 0.0), 2)
    amount = min(round(requested, 2), limit) if requested is not None else limit
    if _observed(turn, "draft_refund_note", order_id=order_id) is None and turn.has_tool("draft_refund_note"):
        note = (
            f"Customer asked for a refund of order {order_id} ({order.get('item')}). Eligibility check: "
            f"{eligibility.get('reason')}. Proposed refund: {replies.money(amount)}."
        )
        return turn.call("draft_refund_note", order_id=order_id, note=note)
    refund = _observed(turn, "issue_refund", order_id=order_id)
    if refund is None:
        if not turn.has_tool("issue_refund"):
            return (
                f"Order {order_id} ({order.get('item')}) is eligible for a refund of "
                f"{replies.money(amount)}, but I can't issue refunds myself right now. I've noted your "
                "request and a refund specialist will follow up by email."
            )
        return turn.call("issue_refund", order_id=order_id, amount_usd=amount, reason=REFUND_REASON)
    record = refund.json()
    if isinstance(record, dict) and record.get("refund_id") is not None:
        return replies.refund_answer(order, record)
    return (
        f"I've submitted the refund request for order {order_id}, but I couldn't confirm it went through. "
        "Please don't worry — a specialist will check it and email you."
    )


def _damaged_flow(turn: ScriptedTurn, order: dict[str, Any], eligibility: dict[str, Any]) -> Reply:
    days = eligibility.get("days_since_delivery")
    if "already been refunded" in str(eligibility.get("reason")):
        return replies.not_refundable_answer(order, eligibility)
    if isinstance(days, int) and days <= RETURN_WINDOW_DAYS:
        return replies.damaged_answer(order, eligibility)
    if eligibility.get("under_warranty"):
        said = (
            f"I'm sorry to hear order {order.get('order_id')} ({order.get('item')}) has a fault. It's past "
            f"the 30-day return window but still under the manufacturer warranty until "
            f"{eligibility.get('warranty_until')}, so it can be repaired or replaced. I've passed a warranty "
            "claim to our customer care team, who will email you the next steps within one business day."
        )
        return _escalate(turn, f"Warranty claim for order {order.get('order_id')}.", said)
    return replies.no_cover_answer(order, eligibility)


def _order_flow(turn: ScriptedTurn, intent: str, order_id: str, text: str) -> Reply:
    order = _lookup(turn, order_id)
    if not isinstance(order, dict):
        return order
    status = order.get("status")
    if intent == "status":
        return replies.status_answer(order)
    if intent == "cancel":
        if status == "processing":
            return _escalate(
                turn,
                f"Customer asked to cancel processing order {order_id}.",
                replies.cancel_escalation(order),
            )
        if status == "shipped":
            return replies.cancel_shipped_answer(order)
        if status == "cancelled":
            return replies.status_answer(order)
        intent = "return"  # delivered: the way out is a return
    if intent == "address":
        if status == "processing":
            reason = f"Customer asked to change the shipping address of processing order {order_id}."
            return _escalate(turn, reason, replies.address_escalation(order))
        return replies.address_answer(order)
    if intent == "price":
        days = replies.price_drop_days(order)
        if status != "cancelled" and days is not None and days <= PRICE_ADJUSTMENT_DAYS:
            reason = f"Price adjustment (store credit) requested for order {order_id}."
            return _escalate(turn, reason, replies.price_adjustment_escalation(order))
        return replies.price_adjustment_answer(order, days)
    if intent in ("damaged", "warranty") and status != "delivered":
        return replies.not_delivered_answer(
            order, "report a problem with it" if intent == "damaged" else "start its warranty"
        )

    eligibility = _eligibility(turn, order_id)
    if not isinstance(eligibility, dict):
        return eligibility
    if intent == "damaged":
        return _damaged_flow(turn, order, eligibility)
    if intent == "warranty":
        return replies.warranty_answer(order, eligibility)
    if intent == "return":
        return replies.return_answer(order, eligibility)
    return _refund_flow(turn, order, eligibility, _requested_amount(text))


# --------------------------------------------------------------------------- the policy


def _follow_up(turn: ScriptedTurn, lowered: str) -> Reply | None:
    """A short reply to the thread's last answer ("yes please", "no thanks", "thanks!")."""
    if len(lowered.split()) > 8 or ORDER_ID.search(lowered):
        return None
    offer = _last_reply(turn)
    if _YES.search(lowered):
        order_id = _order_from_history(turn)
        if _REFUND_OFFER.search(offer) and order_id is not None:
            return _order_flow(turn, "refund", order_id, "")
        if _HANDOFF_OFFER.search(offer):
            return _escalate(turn, "Customer accepted the offer to hand the conversation to a human.")
        return None
    if _NO.search(lowered):
        return replies.NO_PROBLEM_TEXT
    if _THANKS.search(lowered):
        return replies.THANKS_TEXT
    return None


def _decide(turn: ScriptedTurn, text: str, lowered: str) -> Reply:
    reason = _escalation_reason(lowered)
    if reason is not None:
        return _escalate(turn, reason)
    if _MANIPULATION.search(lowered):
        return replies.REFUSE_MANIPULATION_TEXT
    if _THIRD_PARTY.search(lowered) or _POSSESSIVE_NAME.search(text):
        return replies.PRIVACY_TEXT
    if _HUMAN.search(lowered):
        return _escalate(turn, "Customer asked to speak with a human or a manager.")
    if _ACCOUNT.search(lowered):
        return _escalate(turn, "Customer asked to change account details, which the assistant cannot do.")
    follow_up = _follow_up(turn, lowered)
    if follow_up is not None:
        return follow_up

    order_ids = _order_ids(text)
    intent = _intent(lowered, has_order=bool(order_ids))
    if intent == "refund" and _REDIRECT.search(lowered):
        return replies.REDIRECT_REFUND_TEXT
    if intent == "policy" and _PRONOUN.search(lowered) and _order_from_history(turn) is not None:
        intent = _intent(lowered, has_order=True)  # "Can I get a refund for it?" is about the thread's order
    if intent == "policy":
        return _policy_flow(turn, text)
    if intent == "other":
        if _malformed_order_id(text):
            return replies.bad_order_id_answer(str(_malformed_order_id(text)))
        if _UPSET.search(lowered):
            return _escalate(turn, "Customer is very upset and the request is unclear.")
        return (
            replies.HELP_TEXT
            if _GREETING.search(lowered) or len(lowered.split()) <= 3
            else replies.OFF_TOPIC_TEXT
        )
    if not order_ids:
        malformed = _malformed_order_id(text)
        if malformed is not None:
            return replies.bad_order_id_answer(malformed)
        remembered = _order_from_history(turn)
        if remembered is None:
            return replies.ASK_ORDER_TEXT
        order_ids = [remembered]
    if intent == "status" and not _STATUS.search(lowered):  # just an order number, e.g. "It's 12347"
        intent = _earlier_intent(turn) or intent
    if intent == "status":
        return _status_flow(turn, order_ids)
    return _order_flow(turn, intent, order_ids[0], text)


def respond(turn: ScriptedTurn) -> Reply:
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
    reply = _decide(turn, text, lowered)
    if isinstance(reply, str) and _UPSET.search(lowered) and not reply.startswith("I'm sorry"):
        return replies.UPSET_PREFIX + reply
    return reply
