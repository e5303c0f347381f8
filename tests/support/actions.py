"""A local service for asynchronous HTTP actions: it records each request, answers it (at once,
when released, or with an error status) and may report back later, as the FSL seed's actions do.

``with action_server() as actions``: ``actions.url`` is its base URL; ``actions.of("/ci")`` the
JSON bodies posted to ``/ci`` so far (``headers_of`` their headers). ``hold("/ci")`` keeps the
answers to ``/ci`` until ``release("/ci")``; ``fail("/ci", 400)`` answers with that status.
``report("/ci", ["FAIL", "SUCCESS"], to=URL, after=0.05)`` makes each accepted request to ``/ci``
report back after ``after`` seconds: with ``to`` ending in ``/step`` as the seed's actions do
(``{flowId, stepName, ackState, uuid, done: true}``, the outcomes in turn, the last repeating),
otherwise to the request's ``Weir-Callback-Url`` + ``/complete`` with ``{"outcome": ...}``.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx


@dataclass
class _Script:
    outcomes: list[str]
    to: str
    after: float
    sent: int = 0


@dataclass
class ActionServer:
    """See the module docstring."""

    bodies: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    headers: dict[str, list[dict[str, str]]] = field(default_factory=lambda: defaultdict(list))
    reports: list[tuple[str, int, str]] = field(default_factory=list)
    """(path reported for, HTTP status of the report, its body)."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    gates: dict[str, threading.Event] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    scripts: dict[str, _Script] = field(default_factory=dict)
    url: str = ""

    def of(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.bodies.get(path, []))

    def headers_of(self, path: str) -> list[dict[str, str]]:
        with self.lock:
            return list(self.headers.get(path, []))

    def hold(self, path: str) -> None:
        self.gates[path] = threading.Event()

    def release(self, path: str) -> None:
        gate = self.gates.pop(path, None)
        if gate is not None:
            gate.set()

    def fail(self, path: str, status: int) -> None:
        self.statuses[path] = status

    def report(self, path: str, outcomes: list[str], *, to: str, after: float = 0.05) -> None:
        self.scripts[path] = _Script(outcomes, to, after)

    def _accepted(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> None:
        script = self.scripts.get(path)
        if script is None:
            return
        with self.lock:
            outcome = script.outcomes[min(script.sent, len(script.outcomes) - 1)]
            script.sent += 1
        threading.Thread(
            target=self._report, args=(path, script, outcome, body, headers), daemon=True
        ).start()

    def _report(
        self,
        path: str,
        script: _Script,
        outcome: str,
        body: dict[str, Any],
        headers: dict[str, str],
    ) -> None:
        time.sleep(script.after)
        if script.to.endswith("/step"):
            url = script.to
            report: dict[str, Any] = {
                "flowId": body.get("flowId", ""),
                "stepName": body.get("stepName", ""),
                "ackState": outcome,
                "uuid": body.get("uuid", ""),
                "done": True,
            }
        else:
            url = headers.get("weir-callback-url", "") + "/complete"
            report = {"output": {"reported": outcome}, "outcome": outcome}
        try:
            answer = httpx.post(url, json=report, timeout=10)
            status, text = answer.status_code, answer.text
        except httpx.HTTPError as exc:
            status, text = 0, str(exc)
        with self.lock:
            self.reports.append((path, status, text))


@contextmanager
def action_server(port: int = 0) -> Iterator[ActionServer]:
    actions = ActionServer()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else {}
            headers = {k.lower(): v for k, v in self.headers.items()}
            path = self.path
            with actions.lock:
                actions.bodies[path].append(body)
                actions.headers[path].append(headers)
            gate = actions.gates.get(path)
            if gate is not None:
                gate.wait(30)
            status = actions.statuses.get(path, 202)
            payload = json.dumps({"accepted": status < 300}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            if status < 300:
                actions._accepted(path, body, headers)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    actions.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield actions
    finally:
        for gate in list(actions.gates.values()):
            gate.set()
        server.shutdown()
        server.server_close()
