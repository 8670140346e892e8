"""Dashboard sessions: a signed cookie naming a server-side session, never the key itself.

The cookie carries a random session id, signed with itsdangerous under the server's session secret
(`TETHER_UI_SESSION_SECRET`, or a random one the server keeps in a private file; see
`api/session_secret.py`). The database keeps only a hash of the id, with the key it acts as, when
it expires and whether it was ended: every request checks that row, so logging out (or revoking
the key) ends the session on every node, and reading the database is not enough to forge one.
The session's CSRF token is a signature of its id under the same secret.
"""

from __future__ import annotations

import hmac
import math
import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, Signer, URLSafeTimedSerializer

from tether.api.auth import Caller
from tether.store.records import ApiKeyRecord
from tether.store.repository import Store

SESSION_COOKIE = "tether_session"
LOGIN_COOKIE = "tether_login"
COOKIE_PATH = "/ui"
_SESSION_SALT = "tether.ui.session"
_CSRF_SALT = "tether.ui.csrf"


@dataclass(frozen=True)
class Session:
    """A checked session: who it acts as, the token its forms must carry, and its id (for logout)."""

    caller: Caller
    csrf_token: str
    session_id: str


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=_SESSION_SALT)


def _csrf(secret: str, session_id: str) -> str:
    return Signer(secret, salt=_CSRF_SALT).get_signature(session_id).decode()


async def start(store: Store, record: ApiKeyRecord, secret: str, *, lifetime_s: float) -> str:
    """Record a new session for this (already authenticated) key; returns the cookie value."""
    session_id = secrets.token_urlsafe(32)
    await store.ui_sessions.start(session_id, key_id=record.id, lifetime_s=lifetime_s)
    return _serializer(secret).dumps({"sid": session_id})


async def check(store: Store, cookie: str | None, secret: str, *, max_age_s: float) -> Session | None:
    """The session a cookie proves, or None if it is malformed, forged, expired, ended or its key revoked."""
    if not cookie:
        return None
    try:
        payload = _serializer(secret).loads(cookie, max_age=math.ceil(max_age_s))
    except BadSignature:  # also covers SignatureExpired
        return None
    session_id = payload.get("sid") if isinstance(payload, dict) else None
    if not isinstance(session_id, str):
        return None
    key_id = await store.ui_sessions.active_key(session_id)
    if key_id is None:
        return None
    record = await store.get_api_key(key_id)
    if record is None or record.revoked_at is not None:
        return None
    caller = Caller(record.id, record.user_id, record.tenant_id, frozenset(record.scopes))
    return Session(caller, _csrf(secret, session_id), session_id)


async def end(store: Store, session: Session) -> None:
    """Log out: the row is marked ended, so this cookie is refused from now on, everywhere."""
    await store.ui_sessions.end(session.session_id)


def login_token() -> str:
    """A random token for the login form, echoed in a cookie (double submit: no session yet)."""
    return secrets.token_urlsafe(24)


def same_token(expected: str | None, presented: str | None) -> bool:
    return bool(expected) and bool(presented) and hmac.compare_digest(str(expected), str(presented))
