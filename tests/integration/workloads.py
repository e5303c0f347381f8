"""Workloads the integration tests share: a side-effect counter and a long workflow."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Hits:
    """A local HTTP endpoint the workflow calls: counts each (execution, node) side effect."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        self.last = 0.0
        self.lock = threading.Lock()
        hits = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with hits.lock:
                    hits.counts[(body["execution"], body["node"])] += 1
                    hits.last = time.monotonic()
                payload = b'{"ok": true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hit"

    def quiet_for(self, seconds: float) -> bool:
        with self.lock:
            return bool(self.counts) and time.monotonic() - self.last > seconds


@contextmanager
def hits_server() -> Iterator[Hits]:
    hits = Hits()
    thread = threading.Thread(target=hits.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hits
    finally:
        hits.server.shutdown()
        hits.server.server_close()


def long_workflow(steps: int, pause: str) -> str:
    nodes = []
    previous = None
    for i in range(1, steps + 1):
        hit = {
            "id": f"hit{i}",
            "http": {
                "method": "POST",
                "url": "${inputs.url}",
                "json": {"execution": "${execution.id}", "node": f"hit{i}"},
            },
        }
        wait = {"id": f"wait{i}", "sleep": pause, "depends_on": [f"hit{i}"]}
        if previous:
            hit["depends_on"] = [previous]
        nodes += [hit, wait]
        previous = f"wait{i}"
    return json.dumps(
        {
            "name": "long",
            "version": "1.0.0",
            "inputs": {"url": {"type": "string"}},
            "nodes": nodes,
        }
    )
