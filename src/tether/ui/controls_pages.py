"""Dashboard pages for operators: controls (kill switches, one-click toggles, history) and incidents.

Every POST checks the CSRF token and the `operator` scope, and goes through the same service
functions as the CLI and the API, so a change records who (the session's user and key), why and
when, and reaches every process the same way. Each change is also logged (the audit trail's copy
in the logs; the rows themselves are the record).
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from tether.api.deps import State
from tether.api.operator_scope import is_global_operator, scope_refusal, visible
from tether.controls.kinds import ControlError, ControlKind, parse_duration
from tether.controls.service import clear_control, set_control
from tether.incidents.report import postmortem
from tether.incidents.service import add_note, open_incident
from tether.incidents.timeline import assemble
from tether.store.controls import ControlRecord
from tether.store.incidents import SEVERITIES
from tether.store.repository import ConflictError, NotFoundError, utc_now
from tether.ui.auth import PageError, checked_form, needs
from tether.ui.pages import render
from tether.ui.session import Session

log = logging.getLogger("tether.ui.audit")
router = APIRouter(prefix="/ui", include_in_schema=False)

Operator = Annotated[Session, Depends(needs("operator"))]
TOGGLES = (
    (ControlKind.READ_ONLY, "Read-only mode", "No write tool runs; the model is told it is unavailable."),
    (ControlKind.PAUSE_RUNS, "Pause new runs", "New runs are refused with 503 and Retry-After."),
    (
        ControlKind.STOP_BACKGROUND,
        "Stop background work",
        "Cancel queued and waiting runs now; running ones stop at their next step.",
    ),
    (ControlKind.FORCE_REVIEW, "Review every write", "Every write tool call waits for a human."),
)


def _who(session: Session) -> str:
    return f"{session.caller.user_id} (key {session.caller.key_id})"


def _text(form: FormData, name: str, limit: int = 2000) -> str:
    value = str(form.get(name) or "").strip()
    if len(value) > limit:
        raise PageError(400, "Too long", f"Keep {name} under {limit} characters.")
    return value


async def _tools(state: State) -> list[str]:
    releases = await state.store.list_releases(include_adhoc=True)
    return sorted(
        {
            str(tool.get("name"))
            for release in releases
            for tool in release.snapshot.get("tools", []) or []
            if isinstance(tool, dict) and tool.get("name")
        }
    )


# -- controls ---------------------------------------------------------------------------------------


@router.get("/controls", response_class=HTMLResponse)
async def controls_page(request: Request, state: State, session: Operator) -> HTMLResponse:
    caller, tenant = session.caller, state.settings.operator_tenant
    everything = is_global_operator(caller, tenant)
    # A tenant's operator toggles its own tenant; a global operator everything.
    toggle_scope = "all" if everything else f"tenant:{caller.tenant_id}"
    active = [c for c in await state.store.controls.active() if visible(caller, tenant, c)]
    on: dict[str, ControlRecord] = {c.kind: c for c in active if c.scope == toggle_scope}
    toggles = [
        {"kind": str(kind), "title": title, "help": help, "on": on.get(kind)} for kind, title, help in TOGGLES
    ]
    history = await state.store.controls.history(
        limit=100, tenant_view=None if everything else caller.tenant_id
    )
    return render(
        request,
        "controls.html",
        {
            "active": active,
            "history": history,
            "toggles": toggles,
            "toggle_scope": toggle_scope,
            "manageable": {c.id for c in active if scope_refusal(caller, tenant, c.scope) is None},
            "kinds": [str(k) for k in ControlKind],
            "tools": await _tools(state),
            "now": utc_now(),
            "notice": request.query_params.get("notice"),
        },
        session=session,
    )


@router.post("/controls")
async def set_from_page(request: Request, state: State, session: Operator) -> Response:
    form = await checked_form(request, session)
    kind = _text(form, "kind", 40)
    reason = _text(form, "reason") or f"switched from the dashboard by {session.caller.user_id}"
    expires = _text(form, "expires", 10)
    scope = _text(form, "scope", 240) or "all"
    refused = scope_refusal(session.caller, state.settings.operator_tenant, scope)
    if refused is not None:
        raise PageError(403, "Not allowed", refused)
    try:
        change = await set_control(
            state.store,
            state.runtime.live,
            kind=kind,
            scope=scope,
            value=_text(form, "value"),
            reason=reason,
            by=_who(session),
            expires_in=parse_duration(expires) if expires else None,
        )
    except (ControlError, NotFoundError) as exc:
        raise PageError(400, "Control not set", str(exc)) from None
    control = change.control
    log.warning(
        "control set from the dashboard",
        extra={"control": control.id, "kind": control.kind, "scope": control.scope, "by": control.created_by},
    )
    notice = f"{control.kind} set ({control.id})"
    if change.cancelled_runs:
        notice += f"; {len(change.cancelled_runs)} queued or waiting run(s) cancelled"
    return RedirectResponse(f"/ui/controls?notice={notice}", status_code=303)


@router.post("/controls/{control_id}/clear")
async def clear_from_page(control_id: str, request: Request, state: State, session: Operator) -> Response:
    form = await checked_form(request, session)
    reason = _text(form, "reason") or f"cleared from the dashboard by {session.caller.user_id}"
    tenant = state.settings.operator_tenant
    try:
        found = await state.store.controls.get(control_id)
    except NotFoundError:
        found = None
    if found is None or not visible(session.caller, tenant, found):
        raise PageError(404, "No such control", f"There is no control {control_id!r}.")
    refused = scope_refusal(session.caller, tenant, found.scope)
    if refused is not None:
        raise PageError(403, "Not allowed", refused)
    try:
        control = await clear_control(
            state.store, state.runtime.live, control_id, by=_who(session), reason=reason
        )
    except NotFoundError:
        raise PageError(404, "No such control", f"There is no control {control_id!r}.") from None
    except ConflictError as exc:
        raise PageError(409, "Already ended", str(exc)) from None
    log.warning("control cleared from the dashboard", extra={"control": control.id, "by": control.cleared_by})
    return RedirectResponse(f"/ui/controls?notice={control.kind} cleared ({control.id})", status_code=303)


# -- incidents --------------------------------------------------------------------------------------


@router.get("/incidents", response_class=HTMLResponse)
async def incidents_page(request: Request, state: State, session: Operator) -> HTMLResponse:
    return render(
        request,
        "incidents.html",
        {"incidents": await state.store.incidents.recent(limit=100), "severities": SEVERITIES},
        session=session,
    )


@router.post("/incidents")
async def open_from_page(request: Request, state: State, session: Operator) -> Response:
    form = await checked_form(request, session)
    try:
        incident = await open_incident(
            state.store,
            title=_text(form, "title", 500),
            severity=_text(form, "severity", 16),
            by=_who(session),
        )
    except ValueError as exc:
        raise PageError(400, "Incident not opened", str(exc)) from None
    log.warning(
        "incident opened from the dashboard", extra={"incident": incident.id, "by": incident.opened_by}
    )
    return RedirectResponse(f"/ui/incidents/{incident.id}", status_code=303)


@router.get("/incidents/{incident_id}", response_class=HTMLResponse)
async def incident_page(incident_id: str, request: Request, state: State, session: Operator) -> HTMLResponse:
    try:
        timeline = await assemble(state.store, incident_id)
    except NotFoundError:
        raise PageError(404, "No such incident", f"There is no incident {incident_id!r}.") from None
    return render(
        request, "incident.html", {"timeline": timeline, "incident": timeline.incident}, session=session
    )


@router.get("/incidents/{incident_id}/report.md", response_class=PlainTextResponse)
async def incident_report(incident_id: str, state: State, session: Operator) -> PlainTextResponse:
    try:
        text = postmortem(await assemble(state.store, incident_id))
    except NotFoundError:
        raise PageError(404, "No such incident", f"There is no incident {incident_id!r}.") from None
    return PlainTextResponse(text, media_type="text/markdown; charset=utf-8")


@router.post("/incidents/{incident_id}/notes")
async def note_from_page(incident_id: str, request: Request, state: State, session: Operator) -> Response:
    form = await checked_form(request, session)
    runs = [r for r in _text(form, "runs").replace(",", " ").split() if r]
    try:
        await add_note(
            state.store, incident_id, text=_text(form, "text", 10_000), by=_who(session), runs=runs
        )
    except NotFoundError as exc:
        raise PageError(404, "Not found", str(exc)) from None
    except ValueError as exc:
        raise PageError(400, "Nothing added", str(exc)) from None
    return RedirectResponse(f"/ui/incidents/{incident_id}", status_code=303)


@router.post("/incidents/{incident_id}/close")
async def close_from_page(incident_id: str, request: Request, state: State, session: Operator) -> Response:
    form = await checked_form(request, session)
    resolution = _text(form, "resolution", 10_000)
    if not resolution:
        raise PageError(400, "Resolution needed", "Say what resolved the incident.")
    try:
        await state.store.incidents.close(incident_id, closed_by=_who(session), resolution=resolution)
    except NotFoundError:
        raise PageError(404, "No such incident", f"There is no incident {incident_id!r}.") from None
    except ConflictError as exc:
        raise PageError(409, "Already closed", str(exc)) from None
    log.warning("incident closed from the dashboard", extra={"incident": incident_id, "by": _who(session)})
    return RedirectResponse(f"/ui/incidents/{incident_id}", status_code=303)
