"""Database outages seen by the API: answered 503 with Retry-After, logged once per outage.

A request that fails because PostgreSQL is restarting or SQLite is busy is not a server bug:
the client should come back in a few seconds, and the log should say "the database is down"
once rather than print a traceback per request.
"""

from __future__ import annotations

import logging

from fastapi.responses import JSONResponse

from tether.outages import OutageLog

log = logging.getLogger("tether.api")

RETRY_AFTER_S = 5
"""What a client is told to wait: about the time a PostgreSQL restart or failover takes."""

database_outage = OutageLog(log, "database, as the API sees it", quiet_s=60.0)
"""Shared by the error handler (failures) and /readyz (failures and recoveries)."""


def database_unavailable(exc: BaseException) -> JSONResponse:
    database_outage.failed(exc)
    return JSONResponse(
        {"detail": "the database is unavailable right now; retry shortly"},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )
