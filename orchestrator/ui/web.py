"""What every UI route shares: the templates, the session of the request, errors as pages.

A route takes a ``View`` (``Annotated[View, Depends(view)]``): the request's checked session
and ``render``, which fills the page's template with what every page needs (the CSRF token,
whether signing in is needed, the navigation) and sets a new session's cookie. A route that
changes something takes an ``Action`` instead: the same, after the CSRF checks of
``orchestrator.ui.session``, with the submitted form parsed.

Errors of the service layer become the HTML error page (or, for a fragment htmx asked for, a
short message it shows in place), with the status the REST API would answer; nothing else of
the app's JSON error handling applies under ``/ui``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

import jinja2
from fastapi import Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute

from engine.errors import DefinitionError, InputError
from orchestrator.api.errors import INTERNAL, classify
from orchestrator.services import Services
from orchestrator.ui import filters
from orchestrator.ui.layouts import Layouts
from orchestrator.ui.session import COOKIE, Sessions, cross_site

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
PREFIX = "/ui"
MAX_FORM_BYTES = 1 << 20
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
"""On every UI answer: scripts only from this server (no inline script, so an escaped value that
slipped through could still not run), no framing (clickjacking), no MIME sniffing."""


class SignInNeeded(Exception):
    """No valid session while ``API_TOKEN`` is set."""


class Forbidden(Exception):
    """A state-changing request failed the cross-site checks."""


class Ui:
    """The UI's shared parts: services, templates and sessions."""

    def __init__(self, services: Services, sessions: Sessions) -> None:
        self.services = services
        self.sessions = sessions
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters.update(filters.FILTERS)
        self.templates.globals["static"] = self.static_url
        self._versions: dict[str, str] = {}
        self.layouts = Layouts()
        """Laid-out graphs by workflow version (``orchestrator.ui.layouts``)."""

    def static_url(self, name: str) -> str:
        """``/ui/static/NAME?v=<content hash>``: cached for good, replaced when it changes."""
        version = self._versions.get(name)
        if version is None:
            version = hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:12]
            self._versions[name] = version
        return f"{PREFIX}/static/{name}?v={version}"


@dataclass(slots=True)
class View:
    """One request to the UI, with its session; see the module docstring."""

    ui: Ui
    request: Request
    session: str
    new_session: bool = False
    form: Mapping[str, list[str]] = field(default_factory=dict)

    @property
    def services(self) -> Services:
        return self.ui.services

    @property
    def fragment(self) -> bool:
        """Whether htmx asked for part of a page (``HX-Request``), not a whole page."""
        return self.request.headers.get("hx-request") == "true"

    def field(self, name: str, default: str = "") -> str:
        """A submitted form field's (first) value."""
        values = self.form.get(name)
        return values[0] if values else default

    def render(
        self,
        template: str,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        **context: Any,
    ) -> HTMLResponse:
        """The template filled with ``context`` and what every page needs."""
        page = self.ui.templates.get_template(template)
        html = page.render(
            csrf=self.ui.sessions.csrf(self.session),
            signed_in=self.ui.sessions.required,
            path=self.request.url.path,
            **context,
        )
        response = HTMLResponse(html, status_code=status, headers=dict(headers or {}))
        self.keep_session(response)
        return response

    def redirect(self, url: str) -> Response:
        """To ``url`` after an action: htmx follows ``HX-Redirect``, a plain form a 303."""
        if self.fragment:
            response: Response = Response(status_code=204, headers={"HX-Redirect": url})
        else:
            response = RedirectResponse(url, status_code=303)
        self.keep_session(response)
        return response

    def keep_session(self, response: Response) -> None:
        if self.new_session:
            set_session_cookie(response, self.request, self.session, self.ui.sessions.ttl)


def set_session_cookie(response: Response, request: Request, value: str, ttl: float) -> None:
    response.set_cookie(
        COOKIE,
        value,
        max_age=int(ttl),
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def ui_of(request: Request) -> Ui:
    ui: Ui = request.app.state.ui
    return ui


def view(request: Request, ui: Annotated[Ui, Depends(ui_of)]) -> View:
    """The request's session: a valid cookie, else a new one (no ``API_TOKEN``), else sign in."""
    cookie = request.cookies.get(COOKIE)
    if ui.sessions.valid(cookie):
        assert cookie is not None
        return View(ui, request, cookie)
    if ui.sessions.required:
        raise SignInNeeded()
    return View(ui, request, ui.sessions.issue(), new_session=True)


async def action(current: Annotated[View, Depends(view)]) -> View:
    """A state-changing request: same-site, with the session's CSRF token, its form parsed."""
    request = current.request
    why = cross_site(request.headers, request.headers.get("host", ""))
    if why is not None:
        raise Forbidden(why)
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(413, f"the form is larger than {MAX_FORM_BYTES} bytes")
    current.form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    given = request.headers.get("x-csrf-token") or current.field("csrf")
    if current.new_session or not current.ui.sessions.csrf_matches(current.session, given):
        raise Forbidden("the form's CSRF token is missing or stale: reload the page and try again")
    return current


Page = Annotated[View, Depends(view)]
Action = Annotated[View, Depends(action)]

Endpoint = Callable[[Request], Coroutine[Any, Any, Response]]


class UiRoute(APIRoute):
    """A UI route: every error it raises is answered as a page (see the module docstring)."""

    def get_route_handler(self) -> Endpoint:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                response = await handler(request)
            except Exception as exc:  # every error becomes a page, never the JSON shape
                response = error_page(request, exc)
            response.headers.update(SECURITY_HEADERS)
            return response

        return handle


def error_page(request: Request, exc: Exception) -> Response:
    """The page (or fragment) for ``exc``: sign in, forbidden, or the service error's status."""
    ui = ui_of(request)
    fragment = request.headers.get("hx-request") == "true"
    if isinstance(exc, SignInNeeded):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        login = f"{PREFIX}/login?next={quote(target, safe='')}"
        if fragment or request.method != "GET":
            return Response("sign in first", status_code=401, headers={"HX-Redirect": login})
        return RedirectResponse(login, status_code=303)
    issues: list[tuple[str, str]] = []
    if isinstance(exc, Forbidden):
        status, title, message = 403, "Forbidden", str(exc)
    elif isinstance(exc, HTTPException):
        status, title, message = exc.status_code, "Error", str(exc.detail)
    elif isinstance(exc, RequestValidationError):
        status, title = 422, "Invalid request"
        for error in exc.errors():
            loc = ".".join(str(p) for p in error.get("loc", ())[1:]) or "request"
            issues.append((loc, str(error.get("msg", "is invalid"))))
        message = "; ".join(f"{p}: {m}" for p, m in issues)
    else:
        kind = classify(exc)
        if kind is None:
            log.exception("internal error on %s %s", request.method, request.url.path, exc_info=exc)
            kind = INTERNAL
            message = f"internal error: {type(exc).__name__}"
        else:
            message = str(exc)
        if isinstance(exc, DefinitionError | InputError):
            issues = [(i.path, i.message) for i in exc.issues]
        status, title = kind.http_status, kind.code.replace("_", " ").capitalize()
    template = "_error.html" if fragment else "error.html"
    html = ui.templates.get_template(template).render(
        status=status,
        title=title,
        message=message,
        issues=issues,
        csrf="",
        signed_in=ui.sessions.required,
        path=request.url.path,
    )
    return HTMLResponse(html, status_code=status)
