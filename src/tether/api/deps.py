"""What every route needs: the service state and an authenticated, authorised caller."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Protocol

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from tether.api.auth import Caller, authenticate
from tether.api.key_cache import VerifiedKeys
from tether.api.limits import Limiter, Refusal
from tether.rollout.service import Rollout
from tether.runtime.notify import Notifier
from tether.runtime.service import Runtime
from tether.settings import Settings
from tether.store.records import ReleaseRecord, RunRecord
from tether.store.repository import NotFoundError, Store


class Wakeable(Protocol):
    """An in-process worker: a `Worker` on the API's loop, or `ThreadedWorker` on its own thread."""

    def wake(self) -> None: ...


@dataclass
class ServiceState:
    store: Store
    runtime: Runtime
    release: ReleaseRecord
    settings: Settings
    limiter: Limiter
    notifier: Notifier
    worker: Wakeable | None = None
    """The in-process worker of `tether serve`, woken when a run becomes claimable here."""
    session_secret: str = ""
    """Signs dashboard sessions (api/session_secret.py)."""
    rollout: Rollout | None = None
    """Release choice per run from the live deployment, and deployment changes (tether.rollout)."""
    keys: VerifiedKeys | None = None
    """Verified API keys remembered for a moment (api/key_cache.py); None: read every request."""

    async def authenticate(self, presented: str) -> Caller | None:
        """The caller a presented key belongs to, through the cache when there is one."""
        if self.keys is not None:
            return await self.keys.authenticate(presented)
        return await authenticate(self.store, presented)

    def work_available(self) -> None:
        if self.worker is not None:
            self.worker.wake()


def get_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.tether
    return state


# Dependencies are `async def` even when they never await: FastAPI runs a plain `def` dependency
# in a worker thread, a thread hop on every request for what is an attribute read.
async def _state(request: Request) -> ServiceState:
    return get_state(request)


State = Annotated[ServiceState, Depends(_state)]

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer tk_...`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="or `X-API-Key: tk_...`")


async def presented_key(
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header: Annotated[str | None, Depends(_header)],
) -> str | None:
    """The API key the request carries, from either header, not yet checked."""
    return bearer.credentials if bearer is not None else header


PresentedKey = Annotated[str | None, Depends(presented_key)]


def client_address(request: Request) -> str:
    """Who is knocking, for failed-authentication limits: the peer address uvicorn reports (behind a
    trusted proxy, the forwarded one; see `FORWARDED_ALLOW_IPS` in docs/deployment.md)."""
    return request.client.host if request.client is not None else "unknown"


def _too_many(refusal: Refusal) -> HTTPException:
    return HTTPException(refusal.status, refusal.message, headers={"Retry-After": str(refusal.retry_after_s)})


async def authenticated(state: State, presented: PresentedKey, request: Request) -> Caller:
    """The caller a key belongs to. A client that keeps presenting wrong keys is slowed down
    (429 with Retry-After) before its key is even checked; a request without a key is just 401."""
    client = client_address(request)
    if presented and (blocked := await state.limiter.check_auth_client(client)) is not None:
        raise _too_many(blocked)
    caller = await state.authenticate(presented) if presented else None
    if caller is None:
        if presented and (refusal := await state.limiter.auth_failed(client)) is not None:
            raise _too_many(refusal)
        raise HTTPException(401, "missing or invalid API key", headers={"WWW-Authenticate": "Bearer"})
    refusal = await state.limiter.check_request(caller.key_id)
    if refusal is not None:
        raise _too_many(refusal)
    return caller


def readable_user(caller: Caller, user: str | None) -> str | None:
    """The `user` filter a listing may apply: any (or none) with `runs:read`, else only the caller's own."""
    if caller.has("runs:read"):
        return user
    if user is not None and user != caller.user_id:
        raise HTTPException(403, "other users' runs need the runs:read scope")
    return caller.user_id


def require(*scopes: str) -> Callable[..., Awaitable[Caller]]:
    """A dependency admitting callers that hold any one of `scopes` (admin holds them all)."""

    async def check(caller: Annotated[Caller, Depends(authenticated)]) -> Caller:
        if not any(caller.has(scope) for scope in scopes):
            raise HTTPException(403, f"this needs the {' or '.join(scopes)} scope")
        return caller

    return check


async def tenant_run(state: ServiceState, caller: Caller, run_id: str) -> RunRecord:
    """The run, if it belongs to the caller's tenant; otherwise 404 (never confirm another tenant's run)."""
    try:
        run = await state.store.get_run(run_id)
    except NotFoundError:
        raise HTTPException(404, f"no run {run_id!r}") from None
    if run.tenant_id != caller.tenant_id:
        raise HTTPException(404, f"no run {run_id!r}")
    return run


async def visible_run(state: ServiceState, caller: Caller, run_id: str) -> RunRecord:
    """The run, if this caller may see it: its tenant's, and its own unless it holds `runs:read`."""
    run = await tenant_run(state, caller, run_id)
    if not caller.has("runs:read") and run.user_id != caller.user_id:
        raise HTTPException(404, f"no run {run_id!r}")
    return run
