"""Helpers for testing workflows: a scripted HTTP server that stands in for the services a
workflow's ``http`` nodes call.

    with scripted_server({"/approval": [(200, {"ackState": "NEXT"})]}) as server:
        result = await run_workflow(definition, {"actions_url": server.url})
    assert server.paths() == ["/approval"]

Each path answers from its own script, one entry per request (the last one repeats):
``(status, body)`` where a string body is sent as text and anything else as JSON. Every request
is recorded with its method, path, headers and (JSON-decoded) body. The server listens on
127.0.0.1, on a free port unless one is given.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Script = dict[str, list[tuple[int, Any]]]


class ScriptedServer:
    """The server; use ``scripted_server`` to run it in a background thread."""

    def __init__(self, script: Script, *, port: int = 0) -> None:
        self.script = {path: list(answers) for path, answers in script.items()}
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self._answer()

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode()
                status, payload = server.next_answer(
                    self.path, self.command, dict(self.headers), body
                )
                data = (
                    payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                )
                self.send_response(status)
                self.send_header(
                    "Content-Type", "text/plain" if isinstance(payload, str) else "application/json"
                )
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def next_answer(
        self, path: str, method: str, headers: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        """Record the request and return the next scripted answer for its path (404 if none)."""
        with self._lock:
            self.requests.append({"path": path, "method": method, "headers": headers, "body": body})
            answers = self.script.get(path.split("?")[0])
            if not answers:
                return 404, {"error": f"no script for {path}"}
            n = self._counts.get(path, 0)
            self._counts[path] = n + 1
            return answers[min(n, len(answers) - 1)]

    def paths(self) -> list[str]:
        """The paths requested so far, in order."""
        return [r["path"] for r in self.requests]


@contextmanager
def scripted_server(script: Script, *, port: int = 0) -> Iterator[ScriptedServer]:
    """Serve ``script`` from a daemon thread until the ``with`` block ends."""
    server = ScriptedServer(script, port=port)
    thread = threading.Thread(
        target=server.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
        thread.join(timeout=5)
