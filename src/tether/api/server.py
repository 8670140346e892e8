"""How the API is served: uvicorn with Tether's connection timeouts.

uvicorn bounds an idle keep-alive connection (`timeout_keep_alive`) but has no timeout for
receiving a request: its keep-alive timer is only armed after a response and is cancelled by the
first byte of the next request, so a client that sends half a request head keeps the connection
(and its slot) open for as long as it likes. `HeaderDeadlineProtocol` adds that missing bound: the
request line and headers must arrive within `TETHER_HTTP_HEADER_TIMEOUT_S` of the connection
opening (or of the previous response ending); otherwise the connection is closed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from tether.settings import Settings

log = logging.getLogger("tether.api.server")


class TetherServerConfig(uvicorn.Config):
    """uvicorn's config plus the header deadline the protocol below enforces."""

    def __init__(self, app: Any, *, header_timeout_s: float, **options: Any) -> None:
        super().__init__(app, http=HeaderDeadlineProtocol, **options)
        self.header_timeout_s = header_timeout_s


class HeaderDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing connections whose request head does not arrive in time."""

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self._header_timeout_s: float = getattr(config, "header_timeout_s", 10.0)
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the whole head is in: the request is being served
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm()  # the next request on this keep-alive connection gets the same bound

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._header_deadline = self.loop.call_later(self._header_timeout_s, self._header_timed_out)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _header_timed_out(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "unknown client"
        log.info(
            "closed a connection from %s: no complete request head within %gs",
            client,
            self._header_timeout_s,
        )
        self.transport.close()


def server_config(app: Any, *, host: str, port: int, settings: Settings) -> uvicorn.Config:
    """The uvicorn config `tether serve` and `tether api` run with."""
    return TetherServerConfig(
        app,
        header_timeout_s=settings.http_header_timeout_s,
        host=host,
        port=port,
        timeout_keep_alive=settings.http_keep_alive_s,
        log_level="info",
        lifespan="on",
        log_config=None,  # logging is configured once, by the CLI (JSON or console)
        access_log=False,  # the app logs each request itself (observe/http.py)
    )
