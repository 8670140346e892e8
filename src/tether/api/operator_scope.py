"""Which controls an operator key may see and change: its own tenant's, or all of them.

An `operator` key of the operator tenant (`TETHER_OPERATOR_TENANT`, default `default`) or an
`admin` key is a global operator. An operator key of any other tenant acts for that tenant only:
it sets and clears controls scoped `tenant:<its tenant>` (which still name a tool or a model in
their value), and never `all`, `release:` or `tool:` ones, because those reach every tenant. It
sees its own tenant's controls and the global ones that bear on its runs, never another tenant's.
The API and the dashboard ask the same questions here, so they refuse alike.
"""

from __future__ import annotations

from tether.api.auth import Caller
from tether.controls.kinds import ControlError, parse_scope
from tether.store.controls import ControlRecord


def is_global_operator(caller: Caller, operator_tenant: str) -> bool:
    """Admin keys, and operator keys of the operator tenant, act on every scope."""
    return "admin" in caller.scopes or ("operator" in caller.scopes and caller.tenant_id == operator_tenant)


def scope_refusal(caller: Caller, operator_tenant: str, scope: str) -> str | None:
    """Why this caller may not set or clear a control with `scope` (None: it may).

    A malformed scope passes here so the service's own check explains it (a 400, not a 403)."""
    if is_global_operator(caller, operator_tenant):
        return None
    try:
        parsed = parse_scope(scope)
    except ControlError:
        return None
    if parsed.kind == "tenant" and parsed.name == caller.tenant_id:
        return None
    return (
        f"an operator key of tenant {caller.tenant_id!r} sets and clears controls scoped "
        f"tenant:{caller.tenant_id} only; {parsed} reaches other tenants (ask a global operator)"
    )


def visible(caller: Caller, operator_tenant: str, control: ControlRecord) -> bool:
    """Whether the caller may see this control: all for a global operator; otherwise its own
    tenant's and the global ones (all, release, tool) that also bear on its runs."""
    if is_global_operator(caller, operator_tenant):
        return True
    kind, _, name = control.scope.partition(":")
    return kind != "tenant" or name == caller.tenant_id
