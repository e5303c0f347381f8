"""``mount``: the UI's routes and static files added to the orchestrator's REST app."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from orchestrator.services import Services
from orchestrator.ui import auth, events, execution, executions, overview, workflows
from orchestrator.ui.session import Sessions
from orchestrator.ui.web import PREFIX, STATIC, Ui


def mount(app: FastAPI, services: Services, *, api_token: str = "") -> None:
    """Serve the UI under ``/ui`` of ``app``; with ``api_token`` it asks for the token once."""
    app.state.ui = Ui(services, Sessions(api_token))
    for module in (overview, auth, executions, execution, events, workflows):
        app.include_router(module.router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC), name="ui-static")
