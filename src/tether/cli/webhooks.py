"""`tether webhook add|list|remove|deliveries|replay|test|prune`: webhook endpoints and their history."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Literal, cast

import typer
from rich.markup import escape
from rich.table import Table

from tether.cli.common import (
    JsonOption,
    ProjectOption,
    Session,
    dump_json,
    open_session,
    out,
    print_table,
    run_command,
)

group = typer.Typer(
    help="Send signed events to tenants' URLs: endpoints, deliveries, replays.", no_args_is_help=True
)

TenantOption = Annotated[
    str,
    typer.Option(help="The endpoint's tenant (`*`: an operator endpoint, every tenant's events)."),
]


@contextlib.asynccontextmanager
async def _open(project: Path) -> AsyncIterator[Session]:
    """`open_session`, where an unknown endpoint or delivery id is the user's mistake (one line)."""
    try:
        async with open_session(project) as session:
            yield session
    except LookupError as exc:
        raise ValueError(str(exc).strip("'\"")) from None


@group.command("add")
def webhook_add(
    url: Annotated[str, typer.Argument(help="Where to POST deliveries (http or https).")],
    event: Annotated[
        list[str],
        typer.Option("--event", "-e", help="An event type, a family like run.*, or * (repeatable)."),
    ],
    tenant: TenantOption = "default",
    description: Annotated[str | None, typer.Option(help="A note for whoever reads the list.")] = None,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Subscribe a URL to events; prints the whsec_ secret its deliveries are signed with."""

    async def body() -> None:
        from tether.webhooks.service import subscribe

        async with _open(project.resolve()) as session:
            endpoint = await subscribe(
                session.store,
                session.settings,
                tenant_id=tenant,
                url=url,
                events=event,
                created_by="cli",
                description=description,
            )
        if as_json:
            dump_json(endpoint.model_dump(mode="json"))
            return
        out.print(
            f"webhook {endpoint.id} -> {escape(endpoint.url)} ({', '.join(endpoint.events)})", highlight=False
        )
        out.print(f"signing secret: {endpoint.secret}", highlight=False)

    run_command(body)


@group.command("list")
def webhook_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's endpoints.")] = None,
    removed: Annotated[bool, typer.Option("--removed", help="Include removed endpoints.")] = False,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Endpoints, oldest first (secrets are not shown; `--json` shows them)."""

    async def body() -> None:
        async with _open(project.resolve()) as session:
            endpoints = await session.store.webhooks.list_endpoints(
                tenant_id=tenant, include_disabled=removed
            )
        if as_json:
            dump_json([e.model_dump(mode="json") for e in endpoints])
            return
        table = Table("webhook", "tenant", "url", "events", "created", "removed")
        for e in endpoints:
            table.add_row(
                e.id,
                escape(e.tenant_id),
                escape(e.url),
                ", ".join(e.events),
                e.created_at.isoformat(timespec="seconds"),
                e.disabled_at.isoformat(timespec="seconds") if e.disabled_at else "-",
            )
        print_table(table)

    run_command(body)


@group.command("remove")
def webhook_remove(
    webhook_id: Annotated[str, typer.Argument(help="The endpoint's id (whe_...).")],
    project: ProjectOption = Path("."),
) -> None:
    """Stop sending to an endpoint; its pending deliveries are dead-lettered, history stays."""

    async def body() -> None:
        async with _open(project.resolve()) as session:
            endpoint = await session.store.webhooks.disable_endpoint(webhook_id)
        out.print(f"removed webhook {endpoint.id} ({escape(endpoint.url)})", highlight=False)

    run_command(body)


@group.command("deliveries")
def webhook_deliveries(
    webhook: Annotated[str | None, typer.Option(help="Only deliveries to this endpoint.")] = None,
    status: Annotated[str | None, typer.Option(help="pending, succeeded or dead (the dead letters).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many, newest first.")] = 50,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Deliveries, newest first: attempts, last answer, when the next attempt is due."""

    async def body() -> None:
        if status not in (None, "pending", "succeeded", "dead"):
            raise ValueError("--status must be pending, succeeded or dead")
        async with _open(project.resolve()) as session:
            rows = await session.store.webhooks.list_deliveries(
                endpoint_id=webhook,
                status=cast('Literal["pending", "succeeded", "dead"] | None', status),
                limit=limit,
            )
        if as_json:
            dump_json([{**d.model_dump(mode="json"), "event_type": t} for d, t in rows])
            return
        table = Table("delivery", "event", "webhook", "status", "attempts", "last answer", "next attempt")
        for d, event_type in rows:
            answer = str(d.last_status_code) if d.last_status_code else (d.last_error or "-")
            table.add_row(
                d.id,
                event_type,
                d.endpoint_id,
                d.status,
                str(d.attempts),
                escape(answer[:60]),
                d.next_attempt_at.isoformat(timespec="seconds") if d.status == "pending" else "-",
            )
        print_table(table)

    run_command(body)


@group.command("replay")
def webhook_replay(
    delivery_id: Annotated[str, typer.Argument(help="The delivery's id (whd_...).")],
    project: ProjectOption = Path("."),
) -> None:
    """Queue a delivery again with fresh retries (same event id, so receivers can deduplicate)."""

    async def body() -> None:
        async with _open(project.resolve()) as session:
            delivery = await session.store.webhooks.replay(delivery_id)
        out.print(f"delivery {delivery.id} queued again; a worker sends it", highlight=False)

    run_command(body)


@group.command("test")
def webhook_test(
    webhook_id: Annotated[str, typer.Argument(help="The endpoint's id (whe_...).")],
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Send a signed webhook.test event to an endpoint now and show what it answered."""

    async def body() -> None:
        from tether.webhooks.dispatcher import Dispatcher
        from tether.webhooks.service import send_test

        async with _open(project.resolve()) as session:
            endpoint = await session.store.webhooks.get_endpoint(webhook_id)
            if endpoint.disabled_at is not None:
                raise ValueError(f"webhook {webhook_id} was removed")
            queued = await send_test(session.store, endpoint, sent_by="cli")
            dispatcher = Dispatcher(session.store, session.settings)
            try:
                delivery = await dispatcher.send_now(queued.id) or queued
            finally:
                await dispatcher.close()
        if as_json:
            dump_json(delivery.model_dump(mode="json"))
            return
        if delivery.status == "succeeded":
            out.print(f"delivered {delivery.id}: HTTP {delivery.last_status_code}", highlight=False)
            return
        out.print(
            f"[red]not delivered[/red] {delivery.id}: {escape(delivery.last_error or '')}; "
            "a worker retries it",
            highlight=False,
        )
        raise typer.Exit(1)

    run_command(body)


@group.command("prune")
def webhook_prune(
    days: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="Delete finished deliveries and events older than this many days "
            "(default: TETHER_WEBHOOK_RETENTION_DAYS).",
        ),
    ] = None,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Delete delivered and dead deliveries, their events and spent per-run callbacks, now (workers
    do the same every TETHER_WEBHOOK_PRUNE_INTERVAL_S); pending deliveries are kept."""

    async def body() -> None:
        from datetime import timedelta

        async with _open(project.resolve()) as session:
            keep = session.settings.webhook_retention_days if days is None else days
            pruned = await session.store.webhooks.prune(older_than=timedelta(days=keep))
        if as_json:
            dump_json({**pruned.model_dump(), "older_than_days": keep})
            return
        out.print(
            f"pruned {pruned.deliveries} deliveries, {pruned.events} events and {pruned.callbacks} "
            f"per-run callback endpoints older than {keep:g} days",
            highlight=False,
        )

    run_command(body)
