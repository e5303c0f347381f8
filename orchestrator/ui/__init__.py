"""The web UI at ``/ui``, served by the orchestrator's HTTP port (docs/ui.md).

Server-rendered pages (Jinja2) over the same service layer as the APIs, with htmx for the
fragments and Server-Sent Events for live updates; no build step, no second server.
``orchestrator.ui.app.mount`` adds it to the REST app.
"""
