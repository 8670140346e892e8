"""The dashboard's pages: login, health, runs, one run, approvals inbox, releases.

Every page is server-rendered. Reads go through the store (aggregates through `Store.insights`),
scoped to the session's tenant; the only write, deciding an approval, takes the same store path as
`POST /v1/runs/{run_id}/approvals/{approval_id}`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from tether.api.auth import authenticate
from tether.api.deps import ServiceState, State, client_address, get_state, tenant_run
from tether.api.limits import Refusal
from tether.runtime.approvals import Decider, FourEyesError
from tether.store.insights import RunStats
from tether.store.records import PRODUCTION_ORIGINS, RunRecord, RunStatus
from tether.store.repository import ConflictError, NotFoundError, utc_now
from tether.store.telemetry import ERROR_TYPES
from tether.ui import online_views
from tether.ui import session as sessions
from tether.ui.auth import PageError, checked_form, current_session, needs, safe_next
from tether.ui.banner import maintenance_notices
from tether.ui.format import FILTERS
from tether.ui.session import Session
from tether.ui.views import (
    ORIGIN_CHOICES,
    STATUSES,
    WINDOWS,
    BadInput,
    chart_series,
    health_cards,
    run_filter,
    runs_link,
    span_tree,
    step_tree,
    window_named,
)

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters.update(FILTERS)
templates.env.globals.update(runs_link=runs_link)

ResponseT = TypeVar("ResponseT", bound=Response)

router = APIRouter(prefix="/ui", include_in_schema=False)

Reader = Annotated[Session, Depends(needs("runs:read"))]
Approver = Annotated[Session, Depends(needs("approvals"))]
_PAGE_SIZE = 50

# Pages load scripts and styles from this origin only; nothing may frame them or cache them.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def render(
    request: Request, name: str, context: dict[str, Any], *, session: Session | None, status: int = 200
) -> HTMLResponse:
    caller = session.caller if session else None
    state = get_state(request)
    notices = maintenance_notices(
        state.runtime.controls.current, caller, state.settings.operator_tenant, utc_now()
    )
    base = {
        "caller": caller,
        "csrf": session.csrf_token if session else "",
        "path": request.url.path,
        "maintenance": notices,
    }
    page = templates.TemplateResponse(request, name, {**base, **context}, status_code=status)
    page.headers.update(SECURITY_HEADERS)
    return page


def _cookie_secure(request: Request) -> bool:
    return request.url.scheme == "https"


# -- login ------------------------------------------------------------------------------------------


@router.get("", response_class=RedirectResponse)
@router.get("/", response_class=RedirectResponse)
async def home() -> RedirectResponse:
    return RedirectResponse("/ui/health", status_code=303)


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str | None = None) -> HTMLResponse:
    token = sessions.login_token()
    page = render(
        request, "login.html", {"token": token, "next": safe_next(next), "error": None}, session=None
    )
    return _with_login_token(page, request, token)


def _with_login_token(page: ResponseT, request: Request, token: str) -> ResponseT:
    """The login form's double-submit token, in a short-lived cookie only the dashboard reads."""
    page.set_cookie(
        sessions.LOGIN_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=_cookie_secure(request),
        path=sessions.COOKIE_PATH,
        max_age=3600,
    )
    return page


def _slow_down(refusal: Refusal) -> PageError:
    """Too many failed logins from this client: the same limit as wrong API keys."""
    return PageError(
        refusal.status,
        "Too many attempts",
        f"Too many failed logins from here. Try again in {refusal.retry_after_s} seconds.",
        headers={"Retry-After": str(refusal.retry_after_s)},
    )


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, state: State) -> Response:
    form = await request.form()
    target = safe_next(str(form.get("next") or ""))
    token = form.get("csrf")
    if not sessions.same_token(
        request.cookies.get(sessions.LOGIN_COOKIE), token if isinstance(token, str) else None
    ):
        raise PageError(403, "Form expired", "The login form expired. Open the login page again.")
    key = str(form.get("key") or "").strip()
    client = client_address(request)
    if (blocked := await state.limiter.check_auth_client(client)) is not None:
        raise _slow_down(blocked)
    caller = await authenticate(state.store, key) if key else None
    record = await state.store.get_api_key(caller.key_id) if caller else None
    if caller is None or record is None:
        if (refusal := await state.limiter.auth_failed(client)) is not None:
            raise _slow_down(refusal)
        fresh = sessions.login_token()
        page = render(
            request,
            "login.html",
            {
                "token": fresh,
                "next": target,
                "error": "That API key is not valid (unknown, malformed or revoked).",
            },
            session=None,
            status=401,
        )
        return _with_login_token(page, request, fresh)
    done = RedirectResponse(target, status_code=303)
    done.set_cookie(
        sessions.SESSION_COOKIE,
        await sessions.start(
            state.store, record, state.session_secret, lifetime_s=state.settings.ui_session_hours * 3600
        ),
        httponly=True,
        samesite="strict",
        secure=_cookie_secure(request),
        path=sessions.COOKIE_PATH,
        max_age=int(state.settings.ui_session_hours * 3600),
    )
    done.delete_cookie(sessions.LOGIN_COOKIE, path=sessions.COOKIE_PATH)
    return done


@router.post("/logout")
async def logout(
    request: Request, state: State, session: Annotated[Session, Depends(current_session)]
) -> Response:
    """End the session on the server (its cookie is refused from now on), then forget the cookie."""
    await checked_form(request, session)
    await sessions.end(state.store, session)
    done = RedirectResponse("/ui/login", status_code=303)
    done.delete_cookie(sessions.SESSION_COOKIE, path=sessions.COOKIE_PATH)
    return done


# -- health -----------------------------------------------------------------------------------------


async def _status(state: ServiceState, tenant_id: str) -> dict[str, Any]:
    workers = await state.store.live_workers(within_s=state.settings.worker_fresh_s)
    active = await state.store.insights.active_runs(tenant_id=tenant_id)
    pending = len(
        await state.store.list_approvals(status="pending", tenant_id=tenant_id, origins=PRODUCTION_ORIGINS)
    )
    problems = [] if workers else ["no worker has sent a heartbeat recently: queued runs will wait"]
    return {
        "ok": not problems,
        "problems": problems,
        "workers": workers,
        "active": active,
        "active_total": sum(active.values()),
        "queued": active.get(RunStatus.QUEUED, 0),
        "pending_approvals": pending,
        "serving": state.release,
    }


@router.get("/health", response_class=HTMLResponse)
async def health(request: Request, state: State, session: Reader, window: str | None = None) -> HTMLResponse:
    try:
        name = window_named(window)
    except BadInput as exc:
        raise PageError(400, "Bad time window", str(exc)) from None
    length, bucket = WINDOWS[name]
    now = datetime.now(UTC)
    since, before = now - length, now - 2 * length
    tenant = session.caller.tenant_id
    insights = state.store.insights
    current = await insights.run_stats(tenant_id=tenant, since=since, until=now)
    previous = await insights.run_stats(tenant_id=tenant, since=before, until=since)
    by_release = await insights.run_stats(tenant_id=tenant, since=since, until=now, group_by="release")
    by_release_before = await insights.run_stats(
        tenant_id=tenant, since=before, until=since, group_by="release"
    )
    buckets = await insights.run_stats(
        tenant_id=tenant,
        since=since,
        until=now,
        group_by="bucket",
        bucket_s=int(bucket.total_seconds()),
    )
    empty = RunStats(key=tenant)
    status = await _status(state, tenant)
    alerts = await state.store.telemetry.list_alerts(tenant_id=tenant, limit=20)
    cards = health_cards(
        name,
        current.get(tenant, empty),
        previous.get(tenant, empty),
        status["active_total"],
        length.total_seconds() / 86400,
        FILTERS,
    )
    count = int(length / bucket)
    releases = sorted(by_release.values(), key=lambda s: (-s.runs, s.key))
    return render(
        request,
        "health.html",
        {
            "window": name,
            "windows": list(WINDOWS),
            "status": status,
            "alerts": alerts,
            "firing": [a for a in alerts if a.state == "firing"],
            "cards": cards,
            "releases": releases,
            "releases_before": by_release_before,
            "series": chart_series(buckets, since, bucket, count),
            "bucket_s": int(bucket.total_seconds()),
            "now": now,
            "online": await online_views.release_scores(
                state.store, tenant_id=tenant, since=since, until=now
            ),
            "online_scorers": online_views.SCORER_ORDER,
        },
        session=session,
    )


# -- runs -------------------------------------------------------------------------------------------


async def _choices(state: ServiceState) -> tuple[list[str], list[str]]:
    """Release versions and tool names for the search form (from the releases' snapshots)."""
    releases = await state.store.list_releases(include_adhoc=True)
    tools = {
        str(tool.get("name"))
        for release in releases
        for tool in release.snapshot.get("tools", []) or []
        if isinstance(tool, dict) and tool.get("name")
    }
    return [r.version for r in releases], sorted(tools | {"escalate_to_human"})


def _page_size(raw: str | None) -> int:
    if not raw:
        return _PAGE_SIZE
    if not raw.isdigit() or not 1 <= int(raw) <= 200:
        raise BadInput("limit must be a whole number from 1 to 200")
    return int(raw)


@router.get("/runs", response_class=HTMLResponse)
async def runs(request: Request, state: State, session: Reader) -> HTMLResponse:
    params = {k: v for k, v in request.query_params.items()}
    versions, tools = await _choices(state)
    error: str | None = None
    page_runs: list[RunRecord] = []
    next_cursor: str | None = None
    status = 200
    try:
        where = run_filter(params, session.caller.tenant_id, datetime.now(UTC))
        found = await state.store.insights.search_runs(
            where, cursor=params.get("cursor") or None, limit=_page_size(params.get("limit"))
        )
        page_runs, next_cursor = found.runs, found.next_cursor
    except (BadInput, ValueError) as exc:
        error, status = str(exc), 400
    kept = {k: v for k, v in params.items() if k != "cursor" and v}
    return render(
        request,
        "runs.html",
        {
            "params": params,
            "error": error,
            "runs": page_runs,
            "next_link": runs_link(**kept, cursor=next_cursor) if next_cursor else None,
            "first_link": runs_link(**kept) if params.get("cursor") else None,
            "statuses": STATUSES,
            "versions": versions,
            "tools": tools,
            "windows": list(WINDOWS),
            "error_types": ERROR_TYPES,
            "origins": ORIGIN_CHOICES,
        },
        session=session,
        status=status,
    )


# -- one run ----------------------------------------------------------------------------------------


async def _tenant_run(state: ServiceState, session: Session, run_id: str) -> RunRecord:
    """The API's tenant rule, answered as a page."""
    try:
        return await tenant_run(state, session.caller, run_id)
    except HTTPException:
        raise PageError(404, "No such run", f"There is no run {run_id!r} in your tenant.") from None


async def _run_context(state: ServiceState, run: RunRecord) -> dict[str, Any]:
    now = datetime.now(UTC)
    steps = await state.store.list_steps(run.id)
    approvals = await state.store.list_approvals(run_id=run.id)
    events = await state.store.list_events(run.id, limit=1000)
    spans = await state.store.telemetry.list_spans(run_id=run.id)
    return {
        "run": run,
        "trace": span_tree(spans),
        "trace_id": spans[0].trace_id if spans else None,
        "tree": step_tree(run, steps, approvals, now),
        "steps": steps,
        "approvals": approvals,
        "events": events,
        "live": not run.status.is_final,
        "now": now,
        "scores": await online_views.run_scores(state.store, run.id),
    }


@router.get("/runs/{run_id}", response_class=HTMLResponse)
async def run_page(run_id: str, request: Request, state: State, session: Reader) -> HTMLResponse:
    run = await _tenant_run(state, session, run_id)
    return render(request, "run.html", await _run_context(state, run), session=session)


@router.get("/runs/{run_id}/live", response_class=HTMLResponse)
async def run_live(run_id: str, request: Request, state: State, session: Reader) -> HTMLResponse:
    """The part of the run page that changes while it runs (htmx polls it until the run is final)."""
    run = await _tenant_run(state, session, run_id)
    return render(request, "_run_live.html", await _run_context(state, run), session=session)


# -- approvals --------------------------------------------------------------------------------------


@router.get("/approvals", response_class=HTMLResponse)
async def approvals(
    request: Request,
    state: State,
    session: Approver,
    decided: str | None = None,
    outcome: str | None = None,
) -> HTMLResponse:
    pending = await state.store.list_approvals(
        status="pending", tenant_id=session.caller.tenant_id, origins=PRODUCTION_ORIGINS
    )
    runs_by_id: dict[str, RunRecord] = {}
    for approval in pending:
        if approval.run_id not in runs_by_id:
            runs_by_id[approval.run_id] = await state.store.get_run(approval.run_id)
    notice = None
    if decided and outcome in ("approved", "rejected"):
        notice = f"{decided[:60]} {outcome}; the run is back in the queue for a worker."
    return render(
        request,
        "approvals.html",
        {"pending": pending, "runs": runs_by_id, "notice": notice},
        session=session,
    )


@router.post("/approvals/{run_id}/{approval_id}")
async def decide(
    run_id: str, approval_id: str, request: Request, state: State, session: Approver
) -> Response:
    form = await checked_form(request, session)
    decision = form.get("decision")
    reason = str(form.get("reason") or "").strip() or None
    if decision not in ("approve", "reject"):
        raise PageError(400, "Bad decision", "Choose approve or reject.")
    if reason is not None and len(reason) > 2000:
        raise PageError(400, "Reason too long", "Keep the reason under 2000 characters.")
    if decision == "reject" and reason is None:
        raise PageError(400, "Reason needed", "Say why you reject the call: the agent reads it.")
    run = await _tenant_run(state, session, run_id)
    try:
        record = await state.runtime.decide_approval(
            run,
            approval_id,
            approve=decision == "approve",
            reason=reason,
            decider=Decider(session.caller.user_id, session.caller.key_id),
        )
    except NotFoundError:
        raise PageError(
            404, "No such approval", f"There is no approval {approval_id!r} on run {run_id!r}."
        ) from None
    except FourEyesError as exc:
        raise PageError(403, "Another reviewer needed", str(exc)) from None
    except ConflictError as exc:
        raise PageError(409, "Already decided", str(exc)) from None
    state.work_available()
    return RedirectResponse(f"/ui/approvals?decided={record.id}&outcome={record.status}", status_code=303)


# -- releases ---------------------------------------------------------------------------------------


@router.get("/releases", response_class=HTMLResponse)
async def releases(request: Request, state: State, session: Reader) -> HTMLResponse:
    records = await state.store.list_releases(include_adhoc=True)
    counts = await state.store.insights.release_run_counts(tenant_id=session.caller.tenant_id)
    rows = []
    for r in records:
        verdict = await state.store.latest_gate_verdict(r.id)
        failed = [c for c in verdict.checks if not c.get("passed", True)] if verdict else []
        rows.append(
            {
                "release": r,
                "model": str(r.snapshot.get("config", {}).get("model", {}).get("primary", "")),
                "serving": r.id == state.release.id,
                "runs": counts.get(r.id, 0),
                "verdict": verdict,
                "verdict_detail": "; ".join(
                    f"{c.get('name')}: {c.get('detail') or c.get('value')}" for c in failed
                )
                or (f"all {len(verdict.checks)} checks passed" if verdict else ""),
            }
        )
    return render(request, "releases.html", {"rows": rows}, session=session)
