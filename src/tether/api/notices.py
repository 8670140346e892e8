"""The maintenance message users see over HTTP: a `Tether-Notice` header on run responses.

While a `maintenance` control covers the caller's tenant (or the serving release, or everything),
every answer of the runs API carries its message, so a client that only reads runs (polling a
run, listing them) hears about the maintenance as well as one that creates runs. A refused create
(503) carries it in the header and in its `detail`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Response

from tether.api.auth import Caller
from tether.api.deps import State, authenticated
from tether.runtime.controls import maintenance_notice

HEADER = "Tether-Notice"


def header_value(message: str) -> str:
    """A header carries ASCII only: anything else becomes `?` (the body keeps the full text)."""
    return " ".join(message.encode("ascii", "replace").decode().split())


async def maintenance_header(
    state: State, caller: Annotated[Caller, Depends(authenticated)], response: Response
) -> None:
    """Router dependency: add the maintenance message in force for this caller, if any."""
    notice = maintenance_notice(state.runtime.controls, caller.tenant_id, state.release.version)
    if notice is not None:
        response.headers[HEADER] = header_value(notice)
