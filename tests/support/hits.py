"""A local HTTP endpoint that workflows call to leave side effects the tests can count.

``POST /hit`` with a JSON body ``{"execution": ..., "node": ...}`` counts one side effect of that
(execution, node) -- a mapped node's items name themselves, e.g. ``"node": "m/3"``. Optional body
fields: ``hold`` (seconds to wait before answering: requests in flight overlap, and ``peak``
records how many did at once) and ``fail_first`` (answer 500 to the first call of that key).
"""

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
    """Counts each (execution, node) side effect, the requests in flight and their peak."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        self.last = 0.0
        self.inflight = 0
        self.peak = 0
        self.lock = threading.Lock()
        hits = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                key = (str(body["execution"]), str(body["node"]))
                with hits.lock:
                    hits.counts[key] += 1
                    first = hits.counts[key] == 1
                    hits.last = time.monotonic()
                    hits.inflight += 1
                    hits.peak = max(hits.peak, hits.inflight)
                try:
                    time.sleep(float(body.get("hold") or 0))
                finally:
                    with hits.lock:
                        hits.inflight -= 1
                failing = bool(body.get("fail_first")) and first
                payload = json.dumps({"ok": not failing, "node": key[1]}).encode()
                self.send_response(500 if failing else 200)
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

    def of(self, execution: str) -> dict[str, int]:
        """How often each node (or item) of ``execution`` was hit."""
        with self.lock:
            return {node: n for (e, node), n in self.counts.items() if e == execution}


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
