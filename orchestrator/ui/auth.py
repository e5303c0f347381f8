"""Signing in to the UI with ``API_TOKEN`` and signing out (``orchestrator.ui.session``)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from orchestrator.ui.session import COOKIE, cross_site
from orchestrator.ui.web import PREFIX, Action, Forbidden, Ui, UiRoute, set_session_cookie, ui_of

router = APIRouter(prefix=PREFIX, route_class=UiRoute, include_in_schema=False)
UiDep = Annotated[Ui, Depends(ui_of)]


def _local(target: str) -> str:
    """``target`` when it is a UI path of this server, else the overview (no open redirect)."""
    if target.startswith(PREFIX) and not target.startswith("//") and "\\" not in target:
        return target
    return PREFIX


def _login_page(ui: Ui, request: Request, target: str, problem: str, status: int) -> HTMLResponse:
    html = ui.templates.get_template("login.html").render(
        next=_local(target), problem=problem, csrf="", signed_in=False, path=request.url.path
    )
    return HTMLResponse(html, status_code=status)


@router.get("/login")
async def login_form(
    request: Request, ui: UiDep, next: Annotated[str, Query(max_length=2000)] = PREFIX
) -> Response:
    if not ui.sessions.required or ui.sessions.valid(request.cookies.get(COOKIE)):
        return RedirectResponse(_local(next), status_code=303)
    return _login_page(ui, request, next, "", 200)


@router.post("/login")
async def login(request: Request, ui: UiDep) -> Response:
    why = cross_site(request.headers, request.headers.get("host", ""))
    if why is not None:
        raise Forbidden(why)
    form = parse_qs((await request.body())[:65536].decode("utf-8", "replace"))
    target = _local((form.get("next") or [PREFIX])[0])
    if not ui.sessions.required:
        return RedirectResponse(target, status_code=303)
    if not ui.sessions.token_matches((form.get("token") or [""])[0]):
        return _login_page(ui, request, target, "That is not the API token.", 401)
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(response, request, ui.sessions.issue(), ui.sessions.ttl)
    return response


@router.post("/logout")
async def logout(current: Action) -> Response:
    response = RedirectResponse(f"{PREFIX}/login", status_code=303)
    response.delete_cookie(COOKIE, path=PREFIX, httponly=True, samesite="strict")
    return response
