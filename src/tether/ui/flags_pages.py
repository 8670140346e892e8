"""Dashboard pages for feature flags (list, targeting, history, on/off switch) and experiment reports.

The switch is the dashboard's only flag write: a form behind CSRF and the `operator` scope, with a
required reason, committed through the same `save_flag` as the CLI and `POST /v1/flags/{name}/switch`,
so it is audited (who, why, when, revision) and reaches every node through the live configuration.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from tether.api.deps import State
from tether.rollout.experiment_report import experiment_report
from tether.rollout.flag_edits import edit, save_flag
from tether.store.flags import FlagNotFoundError
from tether.ui.auth import PageError, checked_form, needs
from tether.ui.pages import render
from tether.ui.session import Session

router = APIRouter(prefix="/ui", include_in_schema=False)

Reader = Annotated[Session, Depends(needs("runs:read"))]
Operator = Annotated[Session, Depends(needs("operator"))]


@router.get("/flags", response_class=HTMLResponse)
async def flags(request: Request, state: State, session: Reader, changed: str | None = None) -> HTMLResponse:
    records = await state.store.flags.all()
    return render(
        request,
        "flags.html",
        {"flags": records, "operator": session.caller.has("operator"), "changed": (changed or "")[:100]},
        session=session,
    )


@router.get("/flags/{name}", response_class=HTMLResponse)
async def flag_page(name: str, request: Request, state: State, session: Reader) -> HTMLResponse:
    try:
        flag = await state.store.flags.get(name)
    except FlagNotFoundError:
        raise PageError(404, "No such flag", f"There is no flag {name!r}.") from None
    history = await state.store.flags.history(subject=name, limit=100)
    return render(
        request,
        "flag.html",
        {"flag": flag, "history": history, "operator": session.caller.has("operator")},
        session=session,
    )


@router.post("/flags/{name}/switch")
async def switch(name: str, request: Request, state: State, session: Operator) -> Response:
    form = await checked_form(request, session)
    wanted = form.get("enabled")
    reason = str(form.get("reason") or "").strip()
    if wanted not in ("on", "off"):
        raise PageError(400, "Bad switch", "Choose on or off.")
    if not reason or len(reason) > 2000:
        raise PageError(400, "Reason needed", "Say why (under 2000 characters): it goes in the audit log.")
    try:
        flag = await state.store.flags.get(name)
        await save_flag(
            state.store,
            state.runtime.live,
            name,
            edit(flag.spec, enabled=wanted == "on"),
            actor=f"{session.caller.user_id} (key {session.caller.key_id})",
            reason=reason,
            action="switch",
            expected_version=flag.version,
        )
    except FlagNotFoundError:
        raise PageError(404, "No such flag", f"There is no flag {name!r}.") from None
    except ValueError as exc:
        raise PageError(409, "Flag changed meanwhile", str(exc)) from None
    return RedirectResponse(f"/ui/flags?changed={name}", status_code=303)


@router.get("/experiments", response_class=HTMLResponse)
async def experiments(request: Request, state: State, session: Reader) -> HTMLResponse:
    records = await state.store.experiments.all()
    return render(request, "experiments.html", {"experiments": records}, session=session)


@router.get("/experiments/{name}", response_class=HTMLResponse)
async def experiment_page(name: str, request: Request, state: State, session: Reader) -> HTMLResponse:
    try:
        experiment = await state.store.experiments.get(name)
    except FlagNotFoundError:
        raise PageError(404, "No such experiment", f"There is no experiment {name!r}.") from None
    report = await experiment_report(state.store, name)
    total = sum(arm.weight for arm in experiment.spec.arms)
    return render(
        request,
        "experiment.html",
        {"experiment": experiment, "report": report, "total_weight": total},
        session=session,
    )
