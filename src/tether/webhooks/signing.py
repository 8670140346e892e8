"""Signatures in the shape of the Standard Webhooks specification (standardwebhooks.com).

Every delivery carries `webhook-id` (the event id: the same on every retry, for deduplication),
`webhook-timestamp` (Unix seconds of this attempt) and `webhook-signature`: `v1,` and the base64
HMAC-SHA256, keyed with the base64-decoded part of the `whsec_` secret, of `id.timestamp.body`.
Hand-written on the standard library's hmac because no maintained PyPI package is available here;
`verify` is what a receiver does, and the tests check deliveries with it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

PREFIX = "whsec_"
TOLERANCE_S = 300
"""How far a receiver should let `webhook-timestamp` stray from its clock (the spec's 5 minutes)."""


def _key(secret: str) -> bytes:
    if not secret.startswith(PREFIX):
        raise ValueError("a webhook secret starts with whsec_")
    return base64.b64decode(secret[len(PREFIX) :])


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value for one attempt."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
        "content-type": "application/json",
    }


def verify(secret: str, received: dict[str, str], body: bytes, *, now: int) -> bool:
    """Whether a request is a genuine, fresh delivery: any `v1` signature matches, in constant time."""
    lowered = {name.lower(): value for name, value in received.items()}
    try:
        msg_id = lowered["webhook-id"]
        timestamp = int(lowered["webhook-timestamp"])
        signatures = lowered["webhook-signature"].split(" ")
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > TOLERANCE_S:
        return False
    expected = sign(secret, msg_id, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in signatures)
