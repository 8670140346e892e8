"""Turning an incident's linked runs into regression cases (through evals' add-from-run)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tether.evals.capture import append_case, case_from_run
from tether.evals.cases import Category
from tether.store.repository import Store


@dataclass(frozen=True)
class CapturedCases:
    suite: str
    path: Path | None
    case_ids: tuple[str, ...]
    skipped: tuple[str, ...]
    """Runs not captured, each with why (still running, already in the suite)."""


async def capture_cases(
    store: Store,
    project: Path,
    incident_id: str,
    *,
    suite: str | None = None,
    expect: dict[str, Any] | None = None,
    p0: bool = False,
) -> CapturedCases:
    """Append one case per linked run to `evals/<suite>` (default `incident-<id>`).

    Without `expect`, each case expects what its run did (as `tether eval add-from-run` does):
    edit the expectation into the behaviour you want before the suite gates releases.
    """
    incident = await store.incidents.get(incident_id)
    suite = suite or f"incident-{incident.id.removeprefix('inc_')[:8]}"
    seen: list[str] = []
    for entry in await store.incidents.entries(incident_id):
        if entry.run_id is not None and entry.run_id not in seen:
            seen.append(entry.run_id)
    if not seen:
        raise ValueError(
            f"incident {incident_id} has no linked runs; link some with `tether incident note --run`"
        )
    path: Path | None = None
    added: list[str] = []
    skipped: list[str] = []
    for run_id in seen:
        try:
            case = await case_from_run(
                store,
                run_id,
                case_id=f"{incident.id}-{run_id.removeprefix('run_')[:12]}",
                expect=expect,
                category=Category.REGRESSION,
                p0=p0,
            )
            path = append_case(project, suite, case)
        except ValueError as exc:
            skipped.append(f"{run_id}: {exc}")
            continue
        added.append(case.id)
    return CapturedCases(suite, path, tuple(added), tuple(skipped))
