"""One structured log line per API request: method, path, status, duration, and which key called."""

from __future__ import annotations

import re
import time

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger("tether.api.access")

_KEY_ID = re.compile(rb"tk_([0-9a-f]{16})_")
_QUIET = frozenset({"/healthz", "/readyz", "/metrics"})  # probes and scrapes: debug level only


class AccessLog:
    """ASGI middleware; logs after the response is sent (or when the app raised)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            path = str(scope.get("path", ""))
            emit = log.debug if path in _QUIET or path.startswith("/static") else log.info
            emit(
                "api request",
                method=scope.get("method"),
                path=path,
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 3),
                key_id=_key_id(scope),
            )


def _key_id(scope: Scope) -> str | None:
    """The public id of the presented key (never the key itself), for correlating a caller's requests."""
    for name, value in scope.get("headers", []):
        if name in (b"authorization", b"x-api-key"):
            match = _KEY_ID.search(value)
            if match:
                return f"key_{match.group(1).decode()}"
    return None
