"""A client that goes away mid-response is normal, not a server error.

When a client closes an event stream (SSE), the stream's writer finds the connection gone and the
request ends with an exception (an exception group of `anyio.BrokenResourceError` and friends).
Without this middleware that surfaced as two ERROR lines with a full traceback per closed stream.
Here it becomes one INFO line, as does a stream that noticed the disconnect itself and ended
cleanly; anything else, or anything before the response started, is raised as before.
"""

from __future__ import annotations

import logging

import anyio
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("tether.api")

_GONE = (
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    ClientDisconnect,
    ConnectionResetError,
    BrokenPipeError,
)


def is_disconnect(exc: BaseException) -> bool:
    """Whether an exception (or every leaf of an exception group) says the client went away."""
    if isinstance(exc, BaseExceptionGroup):
        return all(is_disconnect(inner) for inner in exc.exceptions)
    return isinstance(exc, _GONE)


class ClientDisconnects:
    """ASGI middleware: a response cut short by its client is logged at INFO, without a traceback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = completed = False

        async def tracking_send(message: Message) -> None:
            nonlocal started, completed
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                completed = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except BaseException as exc:
            if not (started and is_disconnect(exc)):
                raise
            gone = True
        else:
            # A stream that noticed the disconnect itself (by receiving `http.disconnect`) ends
            # cleanly but never sends its last body part: the same event, reported the same way.
            gone = started and not completed
        if gone:
            log.info("client closed the connection during %s %s", scope["method"], scope["path"])
