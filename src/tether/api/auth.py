"""API keys: issued once in plain text, stored as a SHA-256 hash, checked in constant time."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from tether.store.records import ApiKeyRecord
from tether.store.repository import Store
from tether.store.webhooks import OPERATOR_TENANT

SCOPES = ("runs:write", "runs:read", "approvals", "operator", "admin", "metrics")
"""`metrics` reads GET /metrics and nothing else (for Prometheus); `operator` changes what runs in
production (deployments, controls, flags) and pins runs to a release; `admin` holds every scope."""
_KEY = re.compile(r"^tk_([0-9a-f]{16})_([A-Za-z0-9_-]{20,})$")


@dataclass(frozen=True)
class Caller:
    """Who is calling: resolved from the API key on every request."""

    key_id: str
    user_id: str
    tenant_id: str
    scopes: frozenset[str]

    def has(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


def _hash(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def validate_scopes(scopes: list[str]) -> list[str]:
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scope(s) {', '.join(unknown)}; choose from {', '.join(SCOPES)}")
    if not scopes:
        raise ValueError(f"give at least one scope: {', '.join(SCOPES)}")
    return sorted(set(scopes))


async def issue_key(
    store: Store, *, user_id: str, tenant_id: str, scopes: list[str], label: str = ""
) -> tuple[ApiKeyRecord, str]:
    """Create a key; the plaintext is returned here once and never stored."""
    if not user_id.strip() or not tenant_id.strip():
        raise ValueError("a key needs a user and a tenant")
    if tenant_id.strip() == OPERATOR_TENANT:
        raise ValueError(f"tenant {OPERATOR_TENANT!r} is reserved for operator-level webhook endpoints")
    key_hex = secrets.token_hex(8)
    plaintext = f"tk_{key_hex}_{secrets.token_urlsafe(32)}"
    record = await store.add_api_key(
        key_id=f"key_{key_hex}",
        key_hash=_hash(plaintext),
        user_id=user_id,
        tenant_id=tenant_id,
        scopes=validate_scopes(scopes),
        label=label,
    )
    return record, plaintext


async def authenticate(store: Store, presented: str) -> Caller | None:
    """The caller a key belongs to, or None for anything malformed, unknown, wrong or revoked."""
    match = _KEY.match(presented.strip())
    if match is None:
        return None
    record = await store.get_api_key(f"key_{match.group(1)}")
    if record is None or record.revoked_at is not None:
        return None
    if not hmac.compare_digest(record.key_hash, _hash(presented.strip())):
        return None
    return Caller(record.id, record.user_id, record.tenant_id, frozenset(record.scopes))
