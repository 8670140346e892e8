"""The maintenance banner every dashboard page shows while a `maintenance` control is in force.

Read from this process's live snapshot of the controls (no query per page), so the banner appears
and disappears with the same one-second bound as the switch itself. A page shows the messages that
bear on the person looking: global ones and their own tenant's (every one for a global operator);
the login page, with nobody known yet, only the global ones.
"""

from __future__ import annotations

from datetime import datetime

from tether.api.auth import Caller
from tether.api.operator_scope import visible
from tether.controls.effect import ControlSet
from tether.controls.kinds import ControlKind
from tether.store.controls import ControlRecord


def maintenance_notices(
    controls: ControlSet, caller: Caller | None, operator_tenant: str, now: datetime
) -> list[ControlRecord]:
    """The maintenance messages to show, most specific first (release, tenant, all), newest first."""
    found = [c for c in controls.controls if c.kind == ControlKind.MAINTENANCE and c.active_at(now)]
    shown = [
        c for c in found if (c.scope == "all" if caller is None else visible(caller, operator_tenant, c))
    ]
    order = {"release": 0, "tenant": 1, "all": 2}
    return sorted(shown, key=lambda c: (order.get(c.scope.partition(":")[0], 3), -c.created_at.timestamp()))
