"""Deciding approvals, with the four-eyes rule for high-risk tools.

A high-risk call (a tool declared `risk="high"`) must be approved by someone other than whoever
asked for the run: not the API key that created it, and not the same user. Rejecting is always
allowed (it only takes risk away). The rule is on by default; `TETHER_FOUR_EYES=false` turns it off.
The API, the dashboard and `tether approve` all decide through `decide_approval`, and the approval
records who decided and with which key (none for the local CLI).
"""

from __future__ import annotations

from dataclasses import dataclass

from tether.store.records import ApprovalRecord, ReleaseRecord, RunRecord
from tether.store.repository import ConflictError, NotFoundError, Store


@dataclass(frozen=True)
class Decider:
    """Who decides: a user, through an API key or a dashboard session (`key_id`), or the local CLI."""

    user_id: str
    key_id: str | None = None


class FourEyesError(ConflictError):
    """The decider asked for the run themselves, so they may not approve its high-risk call."""


def tool_risk(release: ReleaseRecord, tool: str) -> str | None:
    """The risk a release declares for a tool (None if the release does not list it)."""
    for described in release.snapshot.get("tools", []):
        if isinstance(described, dict) and described.get("name") == tool:
            risk = described.get("risk")
            return str(risk) if risk is not None else None
    return None


def four_eyes_refusal(run: RunRecord, decider: Decider) -> str | None:
    """Why this decider may not approve a high-risk call of this run, or None if they may."""
    if decider.key_id is not None and decider.key_id == run.key_id:
        return "the API key that created this run cannot approve its high-risk call"
    if decider.user_id == run.user_id:
        return f"user {run.user_id!r} asked for this run, so cannot approve its high-risk call"
    return None


async def decide_approval(
    store: Store,
    run: RunRecord,
    approval_id: str,
    *,
    approve: bool,
    reason: str | None,
    decider: Decider,
    four_eyes: bool,
) -> ApprovalRecord:
    """Record the decision on one of the run's approvals, enforcing the four-eyes rule first."""
    approval = next((a for a in await store.list_approvals(run_id=run.id) if a.id == approval_id), None)
    if approval is None:
        raise NotFoundError(f"no approval {approval_id!r} on run {run.id!r}")
    if approve and four_eyes and approval.status == "pending":
        release = await store.get_release(run.release_id)
        refusal = four_eyes_refusal(run, decider) if tool_risk(release, approval.tool) == "high" else None
        if refusal is not None:
            raise FourEyesError(f"four-eyes rule: {refusal}; another reviewer must approve it")
    return await store.decide_approval(
        approval_id,
        approve=approve,
        decided_by=decider.user_id,
        decided_by_key=decider.key_id,
        reason=reason,
    )
