"""Opening, annotating and closing incidents, by hand or automatically.

An automatic incident carries a source key (`alert:<id>`, `rollback:<from>-><to>`) that the
store keeps unique, so several API processes evaluating the same alert open one incident.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

from tether.rollout.events import RollbackEvent
from tether.store.incidents import IncidentEntryRecord, IncidentRecord
from tether.store.records import RunStatus
from tether.store.repository import Store
from tether.store.telemetry import AlertRecord

log = logging.getLogger("tether.incidents")

_ALERT_SEVERITY = {"critical": "critical", "warning": "medium"}
"""Alert severity -> incident severity; `info` alerts open no incident."""
_LINKED_FROM_ALERT = 20
"""How many of the tenant's recent failed runs an alert-opened incident links, as evidence."""
_EVIDENCE_WINDOW = timedelta(hours=1)
"""How far back before the alert fired its evidence runs are looked for."""
_BAD = (RunStatus.FAILED, RunStatus.ESCALATED, RunStatus.BUDGET_EXHAUSTED)


async def open_incident(
    store: Store,
    *,
    title: str,
    severity: str,
    by: str,
    tenant_id: str | None = None,
    runs: Sequence[str] = (),
) -> IncidentRecord:
    """Open an incident by hand, linking the given runs (each must exist)."""
    for run_id in runs:
        await store.get_run(run_id)
    incident = await store.incidents.open(title=title, severity=severity, opened_by=by, tenant_id=tenant_id)
    assert incident is not None  # only keyed (automatic) opens can find one already there
    for run_id in runs:
        await store.incidents.add_entry(incident.id, kind="run", author=by, run_id=run_id)
    return incident


async def add_note(
    store: Store, incident_id: str, *, text: str, by: str, runs: Sequence[str] = ()
) -> list[IncidentEntryRecord]:
    """A note and/or runs linked to the incident (runs are what `tether incident cases` captures)."""
    if not text.strip() and not runs:
        raise ValueError("give a note, or --run to link a run")
    await store.incidents.get(incident_id)
    added: list[IncidentEntryRecord] = []
    if text.strip():
        added.append(await store.incidents.add_entry(incident_id, kind="note", author=by, text=text.strip()))
    for run_id in runs:
        await store.get_run(run_id)  # NotFoundError names a mistyped id
        added.append(await store.incidents.add_entry(incident_id, kind="run", author=by, run_id=run_id))
    return added


async def open_for_alert(store: Store, alert: AlertRecord) -> IncidentRecord | None:
    """Open the incident of a firing alert (once, however many processes see it), linking the
    tenant's recent failed production runs as the first evidence."""
    severity = _ALERT_SEVERITY.get(alert.severity)
    if severity is None:
        return None
    incident = await store.incidents.open(
        title=f"alert {alert.rule} firing for tenant {alert.tenant_id}: {alert.message}",
        severity=severity,
        opened_by="alerts",
        source="alert",
        source_key=f"alert:{alert.id}",
        tenant_id=alert.tenant_id,
    )
    if incident is None:
        return None
    recent = await store.page_runs(
        tenant_id=alert.tenant_id, since=alert.fired_at - _EVIDENCE_WINDOW, limit=200
    )
    bad = [run for run in recent.runs if run.status in _BAD]
    for run in bad[:_LINKED_FROM_ALERT]:
        await store.incidents.add_entry(incident.id, kind="run", author="alerts", run_id=run.id)
    log.warning("incident %s opened by alert %s", incident.id, alert.rule, extra={"incident": incident.id})
    return incident


async def open_for_rollback(store: Store, event: RollbackEvent) -> IncidentRecord | None:
    """Open the incident of a rollback (once per deployment revision), its evidence as the first note."""
    incident = await store.incidents.open(
        title=(
            f"{event.agent_name} rolled back from {event.from_release or '?'} to "
            f"{event.to_release or 'no live release'} by {event.actor}: {event.reason}"
        ),
        severity="high",
        opened_by="rollout",
        source="rollback",
        source_key=f"rollback:{event.agent_name}:{event.revision}"[:240],
    )
    if incident is None:
        return None
    if event.evidence:
        evidence = json.dumps(event.evidence, sort_keys=True, default=str)
        await store.incidents.add_entry(
            incident.id, kind="note", author="rollout", text=f"evidence: {evidence}"
        )
    log.warning("incident %s opened by a rollback of %s", incident.id, event.agent_name)
    return incident


def rollback_hook(store: Store) -> Callable[[RollbackEvent], Awaitable[None]]:
    """What the rollout room calls after every rollback in this process (`rollout.events.on_rollback`)."""

    async def on_rollback(event: RollbackEvent) -> None:
        await open_for_rollback(store, event)

    return on_rollback


def alert_hook(store: Store) -> Callable[[AlertRecord], Awaitable[None]]:
    """What the alert evaluator calls for every alert that starts firing."""

    async def on_fire(alert: AlertRecord) -> None:
        await open_for_alert(store, alert)

    return on_fire
