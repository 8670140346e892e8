"""Named, immutable releases of an agent project, and ad-hoc releases of its working copy."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tether.agent.project import ProjectSnapshot, snapshot_project
from tether.store.records import ReleaseRecord
from tether.store.repository import ConflictError, Store

RELEASE = "release"
ADHOC = "adhoc"


@dataclass(frozen=True)
class ReleaseResult:
    release: ReleaseRecord
    created: bool


def snapshot_of(release: ReleaseRecord) -> ProjectSnapshot:
    return ProjectSnapshot.model_validate(release.snapshot)


def _read(project_dir: Path) -> ProjectSnapshot:
    snapshot = snapshot_project(project_dir)
    # Imported here: reading releases (`tether release list`) needs no model prices or clients.
    from tether.runtime.models import check_prices

    check_prices(snapshot.parsed_config())
    return snapshot


async def _next_version(store: Store, base: str) -> str:
    taken = set(await store.release_versions_like(base))
    if base not in taken:
        return base
    number = 2
    while f"{base}.{number}" in taken:
        number += 1
    return f"{base}.{number}"


async def create_release(store: Store, project_dir: Path, *, version: str | None = None) -> ReleaseResult:
    """Snapshot the project into a named release; unchanged inputs return the existing release."""
    snapshot = _read(project_dir)
    content_hash = snapshot.content_hash
    existing = await store.find_release(content_hash=content_hash, kind=RELEASE)
    if existing is not None:
        return ReleaseResult(existing, created=False)
    name = snapshot.parsed_config().agent.name
    chosen = version or await _next_version(store, f"{name}-{datetime.now(UTC):%Y-%m-%d}")
    release = await store.add_release(
        version=chosen,
        agent_name=name,
        kind=RELEASE,
        content_hash=content_hash,
        snapshot=snapshot.model_dump(),
    )
    return ReleaseResult(release, created=True)


async def working_copy_release(store: Store, project_dir: Path) -> ReleaseRecord:
    """The release a run uses when none is named: the working copy, recorded like any release.

    If a named release has exactly this content, the run is recorded against it.
    """
    snapshot = _read(project_dir)
    content_hash = snapshot.content_hash
    for kind in (RELEASE, ADHOC):
        existing = await store.find_release(content_hash=content_hash, kind=kind)
        if existing is not None:
            return existing
    name = snapshot.parsed_config().agent.name
    try:
        return await store.add_release(
            version=f"{name}-wc-{content_hash[:12]}",
            agent_name=name,
            kind=ADHOC,
            content_hash=content_hash,
            snapshot=snapshot.model_dump(),
        )
    except ConflictError:  # another process recorded the same working copy a moment ago
        return await store.get_release(f"{name}-wc-{content_hash[:12]}")
