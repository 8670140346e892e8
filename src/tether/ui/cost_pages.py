"""The dashboard's Cost page: spend by model, tier, tag and user; cache hits and savings; breakers.

Read-only and scoped to the session's tenant, like the other pages (production runs only).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from tether.api.deps import State
from tether.store.repository import utc_now
from tether.ui.auth import PageError, needs
from tether.ui.pages import render
from tether.ui.session import Session
from tether.ui.views import WINDOWS, BadInput, window_named

router = APIRouter(prefix="/ui", include_in_schema=False)

Reader = Annotated[Session, Depends(needs("runs:read"))]
_GROUPS = ("model", "tier", "tag", "user", "release")
_TOP = 20


@router.get("/cost", response_class=HTMLResponse)
async def cost(request: Request, state: State, session: Reader, window: str | None = None) -> HTMLResponse:
    try:
        name = window_named(window or "7d")
    except BadInput as exc:
        raise PageError(400, "Bad window", str(exc)) from None
    tenant = session.caller.tenant_id
    since = utc_now() - WINDOWS[name][0]
    groups = {
        by: await state.store.costs.report(by, since=since, tenant_id=tenant, limit=_TOP)  # type: ignore[arg-type]
        for by in _GROUPS
    }
    caches = await state.store.costs.cache_stats(since=since, tenant_id=tenant)
    breakers = await state.runtime.breakers.backend.all()
    total = sum(line.cost_usd for line in groups["model"])
    context = {
        "window": name,
        "windows": WINDOWS,
        "groups": groups,
        "caches": caches,
        "breakers": breakers,
        "total": total,
        "saved": sum(stat.saved_usd for stat in caches),
    }
    return render(request, "cost.html", context, session=session)
