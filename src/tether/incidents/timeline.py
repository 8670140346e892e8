"""An incident's timeline, assembled from what is already recorded rather than typed up later.

Alerts, control changes and releases come from their own tables, read for the incident's window
(an hour before it opened, so the cause is usually in view, until it closed); notes and linked
runs come from the incident itself. Nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from tether.controls.effect import label
from tether.store.incidents import IncidentEntryRecord, IncidentRecord
from tether.store.records import RunRecord
from tether.store.repository import NotFoundError, Store, utc_now

LOOKBACK = timedelta(hours=1)
"""How long before an incident opened its timeline starts."""


@dataclass(frozen=True)
class Moment:
    at: datetime
    source: str
    """incident, note, run, alert, control, release, deployment."""
    text: str
    ref: str = ""
    """The id of what it is about (run, alert, control, release)."""


@dataclass(frozen=True)
class Timeline:
    incident: IncidentRecord
    start: datetime
    end: datetime
    moments: tuple[Moment, ...]
    runs: tuple[RunRecord, ...]
    """The linked runs, as stored now."""


def _within(at: datetime | None, start: datetime, end: datetime) -> bool:
    return at is not None and start <= at <= end


async def assemble(store: Store, incident_id: str) -> Timeline:
    incident = await store.incidents.get(incident_id)
    entries = await store.incidents.entries(incident_id)
    start = incident.opened_at - LOOKBACK
    end = incident.closed_at or utc_now()
    moments = [Moment(incident.opened_at, "incident", f"opened by {incident.opened_by}: {incident.title}")]
    if incident.closed_at is not None:
        closed = f"closed by {incident.closed_by}: {incident.resolution or 'no resolution given'}"
        moments.append(Moment(incident.closed_at, "incident", closed))
    runs = await _linked_runs(store, entries)
    moments += _entry_moments(entries, {run.id: run for run in runs})
    moments += await _alert_moments(store, incident, start, end)
    moments += await _control_moments(store, start, end)
    moments += await _release_moments(store, start, end)
    moments += await _deployment_moments(store, start, end)
    moments.sort(key=lambda m: (m.at, m.source))
    return Timeline(incident, start, end, tuple(moments), tuple(runs))


async def _linked_runs(store: Store, entries: list[IncidentEntryRecord]) -> list[RunRecord]:
    runs: dict[str, RunRecord] = {}
    for entry in entries:
        if entry.run_id is not None and entry.run_id not in runs:
            try:
                runs[entry.run_id] = await store.get_run(entry.run_id)
            except NotFoundError:  # pruned since it was linked: the entry still says it was there
                continue
    return list(runs.values())


def _entry_moments(entries: list[IncidentEntryRecord], runs: dict[str, RunRecord]) -> list[Moment]:
    moments: list[Moment] = []
    for entry in entries:
        if entry.kind == "note":
            moments.append(Moment(entry.created_at, "note", f"{entry.author}: {entry.text}"))
            continue
        run = runs.get(entry.run_id or "")
        about = (
            f"{run.status} on {run.release_version}, user {run.user_id}"
            + (f": {run.error}" if run.error else "")
            if run is not None
            else "no longer stored"
        )
        moments.append(
            Moment(
                entry.created_at,
                "run",
                f"run {entry.run_id} linked by {entry.author} ({about})",
                entry.run_id or "",
            )
        )
    return moments


async def _alert_moments(
    store: Store, incident: IncidentRecord, start: datetime, end: datetime
) -> list[Moment]:
    moments: list[Moment] = []
    for alert in await store.telemetry.list_alerts(tenant_id=incident.tenant_id, limit=500):
        if _within(alert.fired_at, start, end):
            text = f"alert {alert.rule} fired ({alert.severity}, tenant {alert.tenant_id}): {alert.message}"
            moments.append(Moment(alert.fired_at, "alert", text, alert.id))
        if alert.resolved_at is not None and _within(alert.resolved_at, start, end):
            moments.append(Moment(alert.resolved_at, "alert", f"alert {alert.rule} resolved", alert.id))
    return moments


async def _control_moments(store: Store, start: datetime, end: datetime) -> list[Moment]:
    moments: list[Moment] = []
    for control in await store.controls.history(limit=500, since=start, until=end):
        name = label(control)
        if _within(control.created_at, start, end):
            moments.append(
                Moment(
                    control.created_at,
                    "control",
                    f"{control.created_by} set {name}: {control.reason}",
                    control.id,
                )
            )
        if control.cleared_at is not None and _within(control.cleared_at, start, end):
            why = control.cleared_reason or "no reason given"
            moments.append(
                Moment(
                    control.cleared_at, "control", f"{control.cleared_by} cleared {name}: {why}", control.id
                )
            )
        elif control.cleared_at is None and _within(control.expires_at, start, end):
            assert control.expires_at is not None
            moments.append(Moment(control.expires_at, "control", f"{name} expired", control.id))
    return moments


async def _release_moments(store: Store, start: datetime, end: datetime) -> list[Moment]:
    return [
        Moment(
            release.created_at, "release", f"release {release.version} created ({release.kind})", release.id
        )
        for release in await store.list_releases(include_adhoc=True)
        if _within(release.created_at, start, end)
    ]


async def _deployment_moments(store: Store, start: datetime, end: datetime) -> list[Moment]:
    """Deployment revisions (switches, canary steps, promotions, rollbacks) with who and why."""
    moments: list[Moment] = []
    for latest in await store.deployments.all_latest():
        for change in await store.deployments.history(latest.agent_name, limit=200):
            if _within(change.created_at, start, end):
                text = (
                    f"deployment of {change.agent_name} revision {change.revision}: {change.action} "
                    f"by {change.actor} ({change.reason})"
                )
                moments.append(Moment(change.created_at, "deployment", text, str(change.revision)))
    return moments
