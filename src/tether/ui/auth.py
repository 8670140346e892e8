"""Who is looking at a page: the session cookie checked on every request, scopes, and CSRF on forms."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request
from starlette.datastructures import FormData

from tether.api.deps import ServiceState, get_state
from tether.ui import session as sessions
from tether.ui.session import Session

Scope = str


class LoginRequired(Exception):
    """No valid session: send the browser to the login page (and back here afterwards)."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class PageError(Exception):
    """A refusal shown as a page (403 scope, 403 CSRF, 404, 429), never a traceback."""

    def __init__(
        self, status: int, title: str, message: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message
        self.headers = headers or {}


def safe_next(path: str | None) -> str:
    """Only ever redirect back into the dashboard (no open redirects)."""
    if not path or not path.startswith("/ui/") or path.startswith("//") or "\\" in path:
        return "/ui/health"
    return path


async def current_session(request: Request) -> Session:
    state: ServiceState = get_state(request)
    settings = state.settings
    found = await sessions.check(
        state.store,
        request.cookies.get(sessions.SESSION_COOKIE),
        state.session_secret,
        max_age_s=settings.ui_session_hours * 3600,
    )
    if found is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target)
    refusal = await state.limiter.check_request(found.caller.key_id)
    if refusal is not None:
        raise PageError(refusal.status, "Slow down", refusal.message)
    return found


def needs(scope: Scope) -> Callable[..., Awaitable[Session]]:
    """A dependency admitting sessions whose key holds `scope` (admin holds them all)."""

    async def check(found: Annotated[Session, Depends(current_session)]) -> Session:
        if not found.caller.has(scope):
            raise PageError(403, "Not allowed", f"This page needs an API key with the {scope} scope.")
        return found

    return check


def same_origin(request: Request) -> bool:
    """A browser's Origin (or Referer) header, when sent, must name this very host."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host")


async def checked_form(request: Request, found: Session) -> FormData:
    """The posted form, once its CSRF token matches the session's and it came from this origin."""
    form = await request.form()
    token = form.get("csrf")
    if not same_origin(request) or not sessions.same_token(
        found.csrf_token, token if isinstance(token, str) else None
    ):
        raise PageError(403, "Form expired", "The form's security token did not match. Reload the page.")
    return form
