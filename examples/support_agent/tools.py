"""The support agent's tools: policy search, order lookup, return eligibility and refunds.

Every tool acts for one customer of one tenant: it opens that tenant's shop (`shop_dir`, keyed by
`ctx.tenant_id`) and only ever reads or writes `ctx.user_id`'s orders there, because user ids repeat
across tenants. An order on another customer's account, or in another tenant's shop, is reported as
not found, never shown. Write tools store `ctx.idempotency_key` so a retried call is harmless.
"""

from __future__ import annotations

import calendar
import sqlite3
from contextlib import closing
from datetime import date
from typing import Any

from tether import ToolContext, tool

from .data import RETURN_WINDOW_DAYS, TODAY, connect, now_iso, shop_dir, transaction
from .text import terms


def _normalize_order_id(order_id: str) -> str:
    return order_id.strip().lstrip("#").strip()


def _own_order(conn: sqlite3.Connection, order_id: str, user_id: str) -> sqlite3.Row | None:
    """The order, if it exists and belongs to this customer."""
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM orders WHERE id = ? AND customer_id = ?", (order_id, user_id)
    ).fetchone()
    return row


def _shop(ctx: ToolContext) -> sqlite3.Connection:
    """The calling tenant's shop database (never another tenant's)."""
    return connect(shop_dir(ctx.data_dir, ctx.tenant_id))


def _not_found(order_id: str) -> dict[str, Any]:
    return {"error": f"no order {order_id} found for this customer"}


def _refund_record(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "refund_id": row["id"],
        "order_id": row["order_id"],
        "amount_usd": row["amount_usd"],
        "reason": row["reason"],
        "idempotency_key": row["idempotency_key"],
        "created_at": row["created_at"],
        "status": "issued",
    }


@tool(max_calls_per_run=6)
def search_policy(query: str, ctx: ToolContext) -> list[dict[str, Any]]:
    """Search the store's customer policies (returns, refunds, shipping, warranty, privacy, ...).

    Args:
        query: What the customer wants to know, in plain words, e.g. "how long do I have to return".

    Returns:
        Up to three best-matching policy sections, best first, each with id, title and body.
    """
    wanted = set(terms(query))
    if not wanted:
        return []
    with closing(_shop(ctx)) as conn:
        sections = conn.execute("SELECT id, title, body FROM policy_sections ORDER BY id").fetchall()
    scored: list[tuple[int, int, sqlite3.Row]] = []
    for row in sections:
        title_terms = terms(row["title"])
        body_terms = terms(row["body"])
        score = sum(3 * title_terms.count(t) + body_terms.count(t) for t in wanted)
        if score > 0:
            scored.append((-score, row["id"], row))
    scored.sort(key=lambda item: (item[0], item[1]))
    return [{"id": row["id"], "title": row["title"], "body": row["body"]} for _, _, row in scored[:3]]


@tool(max_calls_per_run=6)
def lookup_order(order_id: str, ctx: ToolContext) -> dict[str, Any]:
    """Look up one of the current customer's orders: item, amount, status, dates and tracking.

    Args:
        order_id: The 5-digit order number the customer gave, e.g. "12345".

    Returns:
        The order's details, or {"error": ...} when the customer has no such order.
    """
    order_id = _normalize_order_id(order_id)
    with closing(_shop(ctx)) as conn:
        row = _own_order(conn, order_id, ctx.user_id)
    if row is None:
        return _not_found(order_id)
    return {
        "order_id": row["id"],
        "item": row["item"],
        "amount_usd": row["amount_usd"],
        "status": row["status"],
        "ordered_on": row["ordered_on"],
        "delivered_on": row["delivered_on"],
        "carrier": row["carrier"],
        "tracking_number": row["tracking_number"],
        "note": row["note"],
        "final_sale": bool(row["final_sale"]),
        "warranty_until": _warranty_until(row),
    }


def _warranty_until(order: sqlite3.Row) -> str | None:
    """The last day of the item's manufacturer warranty, or None (no warranty, or not delivered)."""
    if not order["warranty_months"] or order["delivered_on"] is None:
        return None
    start = date.fromisoformat(order["delivered_on"])
    months = start.month - 1 + int(order["warranty_months"])
    year, month = start.year + months // 12, months % 12 + 1
    return date(year, month, min(start.day, calendar.monthrange(year, month)[1])).isoformat()


def _eligibility(conn: sqlite3.Connection, order: sqlite3.Row) -> dict[str, Any]:
    """Whether an (owned) order can be returned and refunded today, and for how much."""
    warranty_until = _warranty_until(order)
    result: dict[str, Any] = {
        "order_id": order["id"],
        "eligible": False,
        "max_refundable_usd": 0.0,
        "return_window_days": RETURN_WINDOW_DAYS,
        "days_since_delivery": None,
        "final_sale": bool(order["final_sale"]),
        "warranty_until": warranty_until,
        "under_warranty": warranty_until is not None and TODAY.isoformat() <= warranty_until,
        "as_of": TODAY.isoformat(),
    }
    if order["delivered_on"] is not None:
        result["days_since_delivery"] = (TODAY - date.fromisoformat(order["delivered_on"])).days
    days = result["days_since_delivery"]
    refunded = conn.execute("SELECT 1 FROM refunds WHERE order_id = ?", (order["id"],)).fetchone()
    if refunded is not None:
        result["reason"] = "this order has already been refunded"
    elif order["status"] == "cancelled":
        result["reason"] = "this order was cancelled, so it was never charged"
    elif order["status"] != "delivered" or days is None:
        result["reason"] = f"this order has not been delivered yet (status: {order['status']})"
    elif order["final_sale"]:
        result["reason"] = "it was sold as final sale, and final-sale items cannot be returned"
    elif days > RETURN_WINDOW_DAYS:
        result["reason"] = (
            f"it was delivered {days} days ago, outside the {RETURN_WINDOW_DAYS}-day return window"
        )
    else:
        result["eligible"] = True
        result["max_refundable_usd"] = float(order["amount_usd"])
        result["reason"] = f"delivered {days} days ago, within the {RETURN_WINDOW_DAYS}-day return window"
    return result


@tool(max_calls_per_run=6)
def check_return_eligibility(order_id: str, ctx: ToolContext) -> dict[str, Any]:
    """Check whether one of the customer's orders can be returned and refunded, and for how much.

    Args:
        order_id: The 5-digit order number to check, e.g. "12346".

    Returns:
        eligible (bool), reason, max_refundable_usd, days_since_delivery, final_sale and the
        manufacturer warranty (warranty_until, under_warranty), or {"error": ...}.
    """
    order_id = _normalize_order_id(order_id)
    with closing(_shop(ctx)) as conn:
        order = _own_order(conn, order_id, ctx.user_id)
        if order is None:
            return _not_found(order_id)
        return _eligibility(conn, order)


def _refundable_state(arguments: dict[str, Any], ctx: ToolContext) -> str | None:
    """Argument policy checked by Tether before a refund write runs: only delivered orders qualify."""
    with closing(_shop(ctx)) as conn:
        order = _own_order(conn, _normalize_order_id(str(arguments["order_id"])), ctx.user_id)
    if order is None:
        return f"no order {arguments['order_id']} found for this customer"
    if order["status"] not in REFUNDABLE_STATES:
        return f"order {order['id']} is {order['status']}; only delivered orders can be refunded"
    return None


REFUNDABLE_STATES = ("delivered",)
_REFUND_INTENT = r"refund|money back|reimburs|return|send (it|this|them) back|damaged|broken|defective|faulty"


@tool(
    side_effect="write",
    risk="low",
    idempotent=True,
    decisive=("order_id",),
    intent=_REFUND_INTENT,
    max_calls_per_run=2,
)
def draft_refund_note(order_id: str, note: str, ctx: ToolContext) -> dict[str, Any]:
    """Record an internal note on an order explaining why a refund is being requested.

    Args:
        order_id: The 5-digit order number the note is about.
        note: The note text for the refund specialist (what the customer asked for and why).

    Returns:
        The stored note, with its id; a retry of the same call returns the same note.
    """
    order_id = _normalize_order_id(order_id)
    with closing(_shop(ctx)) as conn, transaction(conn):
        if _own_order(conn, order_id, ctx.user_id) is None:
            return _not_found(order_id)
        conn.execute(
            "INSERT OR IGNORE INTO refund_notes (order_id, note, idempotency_key, created_at)"
            " VALUES (?, ?, ?, ?)",
            (order_id, note.strip(), ctx.idempotency_key, now_iso()),
        )
        row = conn.execute(
            "SELECT * FROM refund_notes WHERE idempotency_key = ?", (ctx.idempotency_key,)
        ).fetchone()
    return {
        "note_id": row["id"],
        "order_id": row["order_id"],
        "note": row["note"],
        "idempotency_key": row["idempotency_key"],
        "created_at": row["created_at"],
    }


@tool(
    side_effect="write",
    risk="high",
    requires_approval=True,
    idempotent=True,
    decisive=("order_id",),
    intent=_REFUND_INTENT,
    max_calls_per_run=1,
    bounds={"amount_usd": (0.01, 2000.0)},
    precheck=_refundable_state,
)
def issue_refund(order_id: str, amount_usd: float, reason: str, ctx: ToolContext) -> dict[str, Any]:
    """Refund money for one of the customer's orders to the original payment method.

    Args:
        order_id: The 5-digit order number to refund.
        amount_usd: How much to refund in US dollars; at most the order amount.
        reason: Why the refund is issued, in one sentence.

    Returns:
        The refund record (refund_id, amount_usd, ...), or {"error": ...} if the refund is not allowed.
    """
    order_id = _normalize_order_id(order_id)
    amount = round(amount_usd, 2)
    with closing(_shop(ctx)) as conn, transaction(conn):
        existing = conn.execute(
            "SELECT * FROM refunds WHERE idempotency_key = ?", (ctx.idempotency_key,)
        ).fetchone()
        if existing is not None:  # a retry of a call that already succeeded
            return _refund_record(existing)
        order = _own_order(conn, order_id, ctx.user_id)
        if order is None:
            return _not_found(order_id)
        if amount <= 0:
            return {"error": f"refund amount must be positive, got {amount_usd}"}
        if amount > float(order["amount_usd"]):
            total = float(order["amount_usd"])
            return {"error": f"refund amount ${amount:.2f} exceeds the order total ${total:.2f}"}
        if conn.execute("SELECT 1 FROM refunds WHERE order_id = ?", (order_id,)).fetchone() is not None:
            return {"error": f"order {order_id} has already been refunded"}
        conn.execute(
            "INSERT OR IGNORE INTO refunds (order_id, amount_usd, reason, idempotency_key, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (order_id, amount, reason.strip(), ctx.idempotency_key, now_iso()),
        )
        row = conn.execute(
            "SELECT * FROM refunds WHERE idempotency_key = ?", (ctx.idempotency_key,)
        ).fetchone()
    return _refund_record(row)
