"""Liveness and readiness, for load balancers and orchestrators (no key needed)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from tether.api.deps import State
from tether.api.schemas import Health
from tether.store import db

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up and serving HTTP."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
async def readyz(state: State, response: Response) -> Health:
    """Database reachable, migrations current, and a worker heartbeat within the freshness window."""
    checks: dict[str, str] = {}
    try:
        checks["migrations"] = "current" if await db.is_current(state.store.engine) else "behind"
        checks["database"] = "ok"
        workers = await state.store.live_workers(within_s=state.settings.worker_fresh_s)
        checks["workers"] = str(len(workers)) if workers else "none with a recent heartbeat"
    except Exception as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
    ready = (
        checks.get("database") == "ok"
        and checks.get("migrations") == "current"
        and bool(checks.get("workers", "").isdigit())
    )
    if not ready:
        response.status_code = 503
    return Health(status="ok" if ready else "unavailable", checks=checks)
