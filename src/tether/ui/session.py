"""Dashboard sessions: a signed cookie naming an API key, never the key itself.

The cookie is `<key id>.<issued at>.<signature>`. The signature is an HMAC keyed by the stored hash
of the API key (plus `TETHER_UI_SESSION_SECRET` when set), so every API node can check it without
shared session state, and revoking the key ends every session made with it. The CSRF token of a
session is another HMAC under the same key, so it cannot be computed without the server's records.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from tether.api.auth import Caller
from tether.store.records import ApiKeyRecord
from tether.store.repository import Store

SESSION_COOKIE = "tether_session"
LOGIN_COOKIE = "tether_login"
COOKIE_PATH = "/ui"
_SESSION = re.compile(r"^(key_[0-9a-f]{16})\.(\d{1,12})\.([0-9a-f]{64})$")


@dataclass(frozen=True)
class Session:
    """A checked session: who it acts as, and the token its forms must carry."""

    caller: Caller
    csrf_token: str


def _mac(record: ApiKeyRecord, secret: str | None, message: str) -> str:
    key = (record.key_hash + "|" + (secret or "")).encode()
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def issue(record: ApiKeyRecord, secret: str | None, *, now: float | None = None) -> str:
    """The cookie value for a session of this (already authenticated) key."""
    issued = int(time.time() if now is None else now)
    message = f"{record.id}.{issued}"
    return f"{message}.{_mac(record, secret, 'session|' + message)}"


async def check(
    store: Store, cookie: str | None, secret: str | None, *, max_age_s: float, now: float | None = None
) -> Session | None:
    """The session a cookie proves, or None if it is malformed, forged, expired or its key revoked."""
    match = _SESSION.match(cookie or "")
    if match is None:
        return None
    key_id, issued, signature = match.group(1), int(match.group(2)), match.group(3)
    age = (time.time() if now is None else now) - issued
    if age < 0 or age > max_age_s:
        return None
    record = await store.get_api_key(key_id)
    if record is None or record.revoked_at is not None:
        return None
    message = f"{key_id}.{issued}"
    if not hmac.compare_digest(signature, _mac(record, secret, "session|" + message)):
        return None
    caller = Caller(record.id, record.user_id, record.tenant_id, frozenset(record.scopes))
    return Session(caller, _mac(record, secret, "csrf|" + message))


def login_token() -> str:
    """A random token for the login form, echoed in a cookie (double submit: no session yet)."""
    return secrets.token_urlsafe(24)


def same_token(expected: str | None, presented: str | None) -> bool:
    return bool(expected) and bool(presented) and hmac.compare_digest(str(expected), str(presented))
