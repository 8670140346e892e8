"""`tether incident open|note|close|list|show|cases|report`: incidents, from first page to postmortem."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from tether.cli.common import (
    ByOption,
    JsonOption,
    ProjectOption,
    actor,
    dump_json,
    open_session,
    out,
    print_table,
    run_command,
)

group = typer.Typer(help="Incidents: open, annotate, close, turn into tests and write up.")

RunsOption = Annotated[
    list[str] | None, typer.Option("--run", help="Link this run to the incident (repeatable).")
]


@group.command("open")
def incident_open(
    title: Annotated[str, typer.Argument(help="What is wrong, in a line.")],
    severity: Annotated[str, typer.Option(help="critical, high, medium or low.")] = "high",
    tenant: Annotated[str | None, typer.Option(help="The tenant affected, if only one.")] = None,
    runs: RunsOption = None,
    by: ByOption = "",
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Open an incident (alerts and automatic rollbacks open their own)."""

    async def body() -> None:
        from tether.incidents.service import open_incident

        async with open_session(project.resolve()) as session:
            incident = await open_incident(
                session.store,
                title=title,
                severity=severity,
                by=actor(by),
                tenant_id=tenant,
                runs=runs or [],
            )
        if as_json:
            dump_json(incident.model_dump(mode="json"))
        else:
            out.print(f"opened {incident.id}: {escape(incident.title)}", highlight=False)

    run_command(body)


@group.command("note")
def incident_note(
    incident_id: Annotated[str, typer.Argument(help="The incident.")],
    text: Annotated[str, typer.Argument(help="The note (may be empty when only linking runs).")] = "",
    runs: RunsOption = None,
    by: ByOption = "",
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Add a note to the timeline and/or link runs (the runs `incident cases` captures)."""

    async def body() -> None:
        from tether.incidents.service import add_note

        async with open_session(project.resolve()) as session:
            added = await add_note(session.store, incident_id, text=text, by=actor(by), runs=runs or [])
        if as_json:
            dump_json([entry.model_dump(mode="json") for entry in added])
        else:
            out.print(f"added {len(added)} entr{'y' if len(added) == 1 else 'ies'} to {escape(incident_id)}")

    run_command(body)


@group.command("close")
def incident_close(
    incident_id: Annotated[str, typer.Argument(help="The incident.")],
    resolution: Annotated[str, typer.Option("--resolution", "-r", help="What fixed it (required).")],
    by: ByOption = "",
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Close an incident with what resolved it."""

    async def body() -> None:
        if not resolution.strip():
            raise ValueError("say what resolved it (--resolution)")
        async with open_session(project.resolve()) as session:
            incident = await session.store.incidents.close(
                incident_id, closed_by=actor(by), resolution=resolution
            )
        if as_json:
            dump_json(incident.model_dump(mode="json"))
        else:
            out.print(f"closed {incident.id}; next: tether incident report {incident.id}", highlight=False)

    run_command(body)


@group.command("list")
def incident_list(
    status: Annotated[str | None, typer.Option(help="open or closed (default: both).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Incidents, newest first."""

    async def body() -> None:
        if status not in (None, "open", "closed"):
            raise ValueError("--status is open or closed")
        async with open_session(project.resolve()) as session:
            incidents = await session.store.incidents.recent(status=status, limit=limit)
        if as_json:
            dump_json([i.model_dump(mode="json") for i in incidents])
            return
        if not incidents:
            out.print("no incidents")
            return
        table = Table()
        for column in ("id", "status", "severity", "opened", "by", "title"):
            table.add_column(column)
        for i in incidents:
            table.add_row(
                i.id,
                i.status,
                i.severity,
                i.opened_at.isoformat(timespec="seconds"),
                escape(i.opened_by),
                escape(i.title),
            )
        print_table(table)

    run_command(body)


@group.command("show")
def incident_show(
    incident_id: Annotated[str, typer.Argument(help="The incident.")],
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """The incident and its timeline (alerts, control changes, releases, notes, linked runs)."""

    async def body() -> None:
        from tether.incidents.timeline import assemble

        async with open_session(project.resolve()) as session:
            timeline = await assemble(session.store, incident_id)
        incident = timeline.incident
        if as_json:
            dump_json(
                {
                    **incident.model_dump(mode="json"),
                    "timeline": [
                        {"at": m.at.isoformat(), "source": m.source, "text": m.text, "ref": m.ref}
                        for m in timeline.moments
                    ],
                    "runs": [run.id for run in timeline.runs],
                }
            )
            return
        out.print(f"[bold]{escape(incident.title)}[/bold]", highlight=False)
        facts = (incident.id, incident.severity, incident.status, f"opened by {escape(incident.opened_by)}")
        out.print(" · ".join(facts))
        table = Table()
        for column in ("time", "source", "what"):
            table.add_column(column)
        for m in timeline.moments:
            table.add_row(m.at.strftime("%Y-%m-%d %H:%M:%S"), m.source, escape(m.text))
        print_table(table)

    run_command(body)


@group.command("cases")
def incident_cases(
    incident_id: Annotated[str, typer.Argument(help="The incident.")],
    suite: Annotated[str | None, typer.Option(help="Suite to append to (default: incident-<id>).")] = None,
    expect: Annotated[
        list[str] | None,
        typer.Option(
            "--expect",
            "-e",
            help="KEY=VALUE expectation for every case (repeatable), e.g. tools_not_called=issue_refund. "
            "Default: what each run did; edit it into the behaviour you want.",
        ),
    ] = None,
    p0: Annotated[bool, typer.Option("--p0", help="A failure of these cases blocks a release.")] = False,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Turn the incident's linked runs into eval cases of a regression suite (via add-from-run)."""

    async def body() -> None:
        from tether.evals.capture import parse_expectations
        from tether.incidents.cases import capture_cases

        expectations = parse_expectations(expect or []) or None
        async with open_session(project.resolve()) as session:
            captured = await capture_cases(
                session.store, session.project, incident_id, suite=suite, expect=expectations, p0=p0
            )
        if as_json:
            dump_json(
                {
                    "suite": captured.suite,
                    "file": str(captured.path) if captured.path else None,
                    "cases": list(captured.case_ids),
                    "skipped": list(captured.skipped),
                }
            )
            return
        where = escape(str(captured.path)) if captured.path else "no file"
        out.print(f"added {len(captured.case_ids)} case(s) to suite {escape(captured.suite)} ({where})")
        for line in captured.skipped:
            out.print(f"[yellow]skipped[/yellow] {escape(line)}", highlight=False)
        if captured.case_ids:
            out.print(f"next: tether eval run --suite {escape(captured.suite)}", highlight=False)

    run_command(body)


@group.command("report")
def incident_report(
    incident_id: Annotated[str, typer.Argument(help="The incident.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the Markdown here (default: stdout).")
    ] = None,
    project: ProjectOption = Path("."),
) -> None:
    """Write a postmortem draft in Markdown, with the assembled timeline."""

    async def body() -> None:
        from tether.incidents.report import postmortem
        from tether.incidents.timeline import assemble

        async with open_session(project.resolve()) as session:
            text = postmortem(await assemble(session.store, incident_id))
        if output is None:
            out.print(text, highlight=False, markup=False, soft_wrap=True)
        else:
            output.write_text(text, encoding="utf-8")
            out.print(f"wrote {escape(str(output))}")

    run_command(body)
