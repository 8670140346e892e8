"""The operator dashboard: server-rendered pages under `/ui/`, behind the same API keys as the API."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from tether.ui import cost_pages
from tether.ui.auth import LoginRequired, PageError
from tether.ui.pages import render, router

STATIC = Path(__file__).parent / "static"


async def _login_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    target = f"/ui/login?next={quote(exc.next_path, safe='')}"
    if request.headers.get("hx-request"):  # an htmx poll: tell the page to go to the login itself
        return Response(status_code=401, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


async def _page_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PageError)
    context = {"title": exc.title, "message": exc.message}
    page = render(request, "error.html", context, session=None, status=exc.status)
    page.headers.update(exc.headers)
    return page


def mount(app: FastAPI) -> None:
    """Serve the dashboard from `app`: pages at /ui/, vendored scripts and styles at /ui/static/."""
    app.include_router(router)
    app.include_router(cost_pages.router)  # /ui/cost
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(PageError, _page_error)
