"""`tether keys create|list|revoke`: API keys."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from tether.cli.common import (
    JsonOption,
    ProjectOption,
    dump_json,
    open_session,
    out,
    print_table,
    run_command,
)

group = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)

# Named here for --help, which must not import the API room; a test keeps it equal to api.auth.SCOPES.
SCOPE_NAMES = ("runs:write", "runs:read", "approvals", "operator", "admin", "metrics")


@group.command("create")
def keys_create(
    user: Annotated[str, typer.Option(help="The user the key acts as.")],
    tenant: Annotated[str, typer.Option(help="The tenant the key belongs to.")] = "default",
    scopes: Annotated[
        str, typer.Option(help=f"Comma-separated, from: {', '.join(SCOPE_NAMES)}.")
    ] = "runs:write",
    label: Annotated[str, typer.Option(help="A note for whoever reads `keys list`.")] = "",
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Create an API key. Its secret is printed once and stored only as a hash."""

    async def body() -> None:
        from tether.api.auth import issue_key

        async with open_session(project.resolve()) as session:
            record, plaintext = await issue_key(
                session.store,
                user_id=user,
                tenant_id=tenant,
                scopes=[s.strip() for s in scopes.split(",") if s.strip()],
                label=label,
            )
        if as_json:
            dump_json(
                {
                    "key_id": record.id,
                    "key": plaintext,
                    "user_id": user,
                    "tenant_id": tenant,
                    "scopes": record.scopes,
                }
            )
        else:
            out.print(
                f"created {record.id} for {user}@{tenant} ({', '.join(record.scopes)}); the key, shown once:"
            )
            out.print(plaintext, highlight=False)

    run_command(body)


@group.command("list")
def keys_list(project: ProjectOption = Path("."), as_json: JsonOption = False) -> None:
    """API keys (never their secrets)."""

    async def body() -> None:
        async with open_session(project.resolve()) as session:
            records = await session.store.list_api_keys()
        if as_json:
            dump_json([r.model_dump(mode="json", exclude={"key_hash"}) for r in records])
            return
        table = Table("key_id", "user", "tenant", "scopes", "label", "created", "revoked")
        for r in records:
            table.add_row(
                r.id,
                r.user_id,
                r.tenant_id,
                ", ".join(r.scopes),
                escape(r.label),
                r.created_at.isoformat(timespec="seconds"),
                r.revoked_at.isoformat(timespec="seconds") if r.revoked_at else "-",
            )
        print_table(table)

    run_command(body)


@group.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument()], project: ProjectOption = Path(".")) -> None:
    """Revoke a key; requests with it get 401 from now on (API processes that remember verified keys
    forget them within TETHER_LIVE_POLL_S, at once with Redis)."""

    async def body() -> None:
        from tether.live import LiveConfig
        from tether.store.repository import API_KEYS_TOPIC

        async with open_session(project.resolve()) as session:
            record = await session.store.revoke_api_key(key_id)
            # The revision moved with the revocation; with Redis, tell every API process now.
            announcer = LiveConfig(session.store, redis_url=session.settings.redis_url)
            try:
                await announcer.changed(API_KEYS_TOPIC)
            finally:
                await announcer.close()
        out.print(f"revoked {record.id} ({record.user_id}@{record.tenant_id})")

    run_command(body)
