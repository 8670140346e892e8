"""Liveness and readiness, for load balancers and orchestrators (no key needed)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from tether.api.deps import State
from tether.api.errors import database_outage
from tether.api.schemas import Health
from tether.store import db
from tether.store.faults import describe

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up and serving HTTP."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
async def readyz(state: State, response: Response) -> Health:
    """Database reachable and writable, migrations current, and a fresh worker heartbeat.

    Each check says what it found, so a 503 explains itself (e.g. `writes: refused: ... readonly`).
    """
    checks: dict[str, str] = {}
    try:
        checks["migrations"], checks["writes"] = await db.readiness(state.store.engine)
        checks["database"] = "ok"
        workers = await state.store.live_workers(within_s=state.settings.worker_fresh_s)
        checks["workers"] = str(len(workers)) if workers else "none with a recent heartbeat"
    except Exception as exc:
        checks["database"] = f"unreachable: {describe(exc)}"
        database_outage.failed(exc)
    else:
        database_outage.succeeded()
    ready = (
        checks.get("database") == "ok"
        and checks.get("migrations") == "current"
        and checks.get("writes") == "ok"
        and bool(checks.get("workers", "").isdigit())
    )
    if not ready:
        response.status_code = 503
    return Health(status="ok" if ready else "unavailable", checks=checks)
