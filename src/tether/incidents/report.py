"""The postmortem draft: the timeline in Markdown, with the sections a review fills in."""

from __future__ import annotations

from tether.incidents.timeline import Timeline


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def postmortem(timeline: Timeline) -> str:
    incident = timeline.incident
    lines = [
        f"# Postmortem draft: {incident.title}",
        "",
        f"- Incident: `{incident.id}` ({incident.severity}, {incident.status})",
        f"- Opened: {incident.opened_at.isoformat(timespec='seconds')} by {incident.opened_by}"
        f" ({incident.source})",
    ]
    if incident.closed_at is not None:
        lines.append(f"- Closed: {incident.closed_at.isoformat(timespec='seconds')} by {incident.closed_by}")
        duration = incident.closed_at - incident.opened_at
        lines.append(f"- Duration: {int(duration.total_seconds() // 60)} min")
    if incident.tenant_id:
        lines.append(f"- Tenant: {incident.tenant_id}")
    lines += ["", "## Summary", "", incident.resolution or "_What happened, in two sentences._", ""]
    lines += ["## Timeline (UTC)", "", "| time | source | what |", "| --- | --- | --- |"]
    for moment in timeline.moments:
        lines.append(
            f"| {moment.at.strftime('%Y-%m-%d %H:%M:%S')} | {moment.source} | {_cell(moment.text)} |"
        )
    lines += ["", "## Affected runs", ""]
    if timeline.runs:
        lines += ["| run | status | release | user | error |", "| --- | --- | --- | --- | --- |"]
        for run in timeline.runs:
            cells = (
                f"`{run.id}`",
                run.status,
                run.release_version,
                _cell(run.user_id),
                _cell(run.error or ""),
            )
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", f"Turn them into regression cases: `tether incident cases {incident.id}`."]
    else:
        lines.append("_No runs linked (`tether incident note INCIDENT --run RUN_ID`)._")
    lines += [
        "",
        "## Impact",
        "",
        "_Who was affected, for how long, and what it cost._",
        "",
        "## Root cause",
        "",
        "_Why it happened (not who)._",
        "",
        "## What stopped the damage",
        "",
        "_Which controls were set (see the timeline), and when._",
        "",
        "## Follow-ups",
        "",
        "- [ ] Regression cases added to the eval suite and passing",
        "- [ ] ...",
        "",
    ]
    return "\n".join(lines)
