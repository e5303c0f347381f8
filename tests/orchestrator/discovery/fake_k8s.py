"""A fake Kubernetes API server for the discovery tests: real HTTP on 127.0.0.1, no mocks.

It serves the two list/watch collections ``KubernetesDiscovery`` reads, in the JSON shapes the
official client deserializes (``V1EndpointSliceList``/``V1PodList`` for lists, one watch event
per line for watches)::

    GET /apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices?labelSelector=...
    GET /api/v1/namespaces/{ns}/pods?labelSelector=...
        &watch=true&resourceVersion=N&timeoutSeconds=T   -> chunked newline-delimited events

Like etcd behind a real API server, one resourceVersion counter covers every object, and every
change is kept in a history that watches replay from their ``resourceVersion``. Tests change
objects with ``apply``/``delete`` (open watches see the events at once) and inject faults:

- ``compact(in_stream=...)``: forget the history, as the API server does after a while. Open
  watches end, either with an in-stream ``ERROR`` event of code 410 (``in_stream=True``) or
  cleanly; a later watch from an older resourceVersion is answered with an ERROR 410 event or
  with HTTP 410 Gone.
- ``fail_next(kind, status)``: the next list or watch requests answer HTTP ``status``.
- ``end_watches()``: open watches end as if their ``timeoutSeconds`` had run out.
- ``apply(..., notify=False)``: a change that no watch will ever report (a lost event); only a
  re-list can see it.

Every response carries ``Connection: close``, so no handler thread waits on a kept-alive socket
and ``stop()`` returns once open watches have noticed it. A watch also ends when its client goes
away (checked every 50 ms), so ``open_watches`` tells whether a client really let go. The
objects themselves are built with ``manifests.py``.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import select
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from tests.orchestrator.discovery.manifests import Json, status

_log = logging.getLogger(__name__)

Resource = Literal["endpointslices", "pods"]
RequestKind = Literal["list", "watch"]

_PATH = re.compile(
    r"^(?:/apis/discovery\.k8s\.io/v1|/api/v1)/namespaces/(?P<namespace>[^/]+)"
    r"/(?P<resource>endpointslices|pods)$"
)
_TYPES: dict[str, tuple[str, str]] = {  # resource -> (apiVersion, kind)
    "endpointslices": ("discovery.k8s.io/v1", "EndpointSlice"),
    "pods": ("v1", "Pod"),
}


@dataclass(frozen=True, slots=True)
class Request:
    kind: RequestKind
    resource: str
    namespace: str
    query: dict[str, str]


@dataclass(frozen=True, slots=True)
class _Event:
    rv: int
    resource: str
    namespace: str
    type: str
    object: Json


def _matches(selector: str, obj: Json) -> bool:
    labels = obj["metadata"].get("labels") or {}
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key) != value:
                return False
        else:
            raise ValueError(f"unsupported label selector term {term!r}")
    return True


class FakeKubernetes:
    """The API server; ``with FakeKubernetes() as api:`` serves on ``api.url`` until exit."""

    def __init__(self, port: int = 0) -> None:
        self._cond = threading.Condition()
        self._rv = 1
        self._objects: dict[tuple[str, str, str], Json] = {}
        self._history: list[_Event] = []
        self._compacted = 0
        self._gone_in_stream = True
        self._epoch = 0
        self._ended: dict[int, Literal["closed", "expired"]] = {}
        self._faults: dict[RequestKind, list[int]] = {"list": [], "watch": []}
        self._requests: list[Request] = []
        self._open_watches = 0
        self._closing = False
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self._server.daemon_threads = False  # server_close() joins the handler threads
        self._server.fake = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-k8s"
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread.ident is not None:  # shutdown() waits for serve_forever() to run
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def __enter__(self) -> FakeKubernetes:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- objects -----------------------------------------------------------------------------

    def apply(
        self, resource: Resource, obj: Json, *, namespace: str = "default", notify: bool = True
    ) -> None:
        """Create or replace ``obj`` (by ``metadata.name``): an ADDED or MODIFIED event."""
        stored = copy.deepcopy(obj)
        meta = stored["metadata"]
        key = (resource, namespace, meta["name"])
        with self._cond:
            previous = self._objects.get(key)
            self._rv += 1
            meta["namespace"] = namespace
            meta["resourceVersion"] = str(self._rv)
            meta["uid"] = previous["metadata"]["uid"] if previous else str(uuid.uuid4())
            self._objects[key] = stored
            if notify:
                kind = "MODIFIED" if previous else "ADDED"
                self._record(resource, namespace, kind, stored)

    def delete(
        self, resource: Resource, name: str, *, namespace: str = "default", notify: bool = True
    ) -> None:
        """Remove an object: a DELETED event carrying its last state."""
        with self._cond:
            stored = self._objects.pop((resource, namespace, name))
            self._rv += 1
            stored = copy.deepcopy(stored)
            stored["metadata"]["resourceVersion"] = str(self._rv)
            if notify:
                self._record(resource, namespace, "DELETED", stored)

    def _record(self, resource: str, namespace: str, kind: str, obj: Json) -> None:
        self._history.append(_Event(self._rv, resource, namespace, kind, obj))
        self._cond.notify_all()

    # -- faults ------------------------------------------------------------------------------

    def compact(self, *, in_stream: bool) -> None:
        """Forget the history: watches from an older resourceVersion get 410 Gone."""
        with self._cond:
            self._history.clear()
            self._compacted = self._rv
            self._gone_in_stream = in_stream
            self._end_watches("expired" if in_stream else "closed")

    def end_watches(self) -> None:
        """End open watches the way ``timeoutSeconds`` does: a clean end of the stream."""
        with self._cond:
            self._end_watches("closed")

    def fail_next(self, kind: RequestKind, status_code: int, count: int = 1) -> None:
        """Answer the next ``count`` list or watch requests with HTTP ``status_code``."""
        with self._cond:
            self._faults[kind].extend([status_code] * count)

    def _end_watches(self, how: Literal["closed", "expired"]) -> None:
        self._ended[self._epoch] = how
        self._epoch += 1
        self._cond.notify_all()

    # -- observation -------------------------------------------------------------------------

    def requests(self, kind: RequestKind | None = None) -> list[Request]:
        with self._cond:
            return [r for r in self._requests if kind is None or r.kind == kind]

    @property
    def open_watches(self) -> int:
        with self._cond:
            return self._open_watches

    # -- serving (handler threads) -----------------------------------------------------------

    def handle(self, handler: _Handler) -> None:
        url = urlsplit(handler.path)
        match = _PATH.match(url.path)
        if match is None:
            handler.send_json(404, status(404, "NotFound", f"no route for {url.path}"))
            return
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        resource, namespace = match["resource"], match["namespace"]
        kind: RequestKind = "watch" if query.get("watch") == "true" else "list"
        with self._cond:
            self._requests.append(Request(kind, resource, namespace, query))
            fault = self._faults[kind].pop(0) if self._faults[kind] else None
        if fault is not None:
            handler.send_json(fault, status(fault, "InjectedFault", f"injected HTTP {fault}"))
            return
        selector = query.get("labelSelector", "")
        if kind == "list":
            self._list(handler, resource, namespace, selector)
        else:
            self._watch(handler, resource, namespace, selector, query)

    def _list(self, handler: _Handler, resource: str, namespace: str, selector: str) -> None:
        api_version, kind = _TYPES[resource]
        with self._cond:
            items = [
                obj
                for (res, ns, _), obj in sorted(self._objects.items())
                if res == resource and ns == namespace and _matches(selector, obj)
            ]
            body = {
                "kind": f"{kind}List",
                "apiVersion": api_version,
                "metadata": {"resourceVersion": str(self._rv)},
                "items": items,
            }
            handler.send_json(200, body)

    def _watch(
        self,
        handler: _Handler,
        resource: str,
        namespace: str,
        selector: str,
        query: dict[str, str],
    ) -> None:
        api_version, kind = _TYPES[resource]
        deadline = time.monotonic() + float(query.get("timeoutSeconds", "1800"))
        with self._cond:
            since = int(query.get("resourceVersion") or self._rv)
            too_old = since < self._compacted
            if too_old and not self._gone_in_stream:
                gone = status(410, "Expired", f"too old resource version: {since}")
                handler.send_json(410, gone)
                return
            epoch = self._epoch
            self._open_watches += 1
        gone_event = {"type": "ERROR", "object": status(410, "Expired", "too old resource version")}
        try:
            handler.start_stream()
            if too_old:
                handler.send_chunk(gone_event)
                return
            while True:
                with self._cond:
                    while True:
                        pending = [
                            e
                            for e in self._history
                            if e.rv > since and e.resource == resource and e.namespace == namespace
                        ]
                        ended = self._ended.get(epoch) or ("closed" if self._closing else None)
                        left = deadline - time.monotonic()
                        if pending or ended or left <= 0:
                            break
                        if handler.client_gone():
                            return
                        self._cond.wait(min(left, 0.05))
                if ended is not None or not pending:  # ended, or timed out
                    if ended == "expired":
                        handler.send_chunk(gone_event)
                    return
                for event in pending:
                    since = event.rv
                    if _matches(selector, event.object):
                        obj = {"kind": kind, "apiVersion": api_version, **event.object}
                        handler.send_chunk({"type": event.type, "object": obj})
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away (discovery stopped or shut the socket down)
        finally:
            handler.end_stream()
            with self._cond:
                self._open_watches -= 1


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.close_connection = True
        self.server.fake.handle(self)  # type: ignore[attr-defined]

    def send_json(self, code: int, body: Json) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.flush()

    def send_chunk(self, event: Json) -> None:
        data = json.dumps(event).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def client_gone(self) -> bool:
        """Whether the client closed (or shut down) its end, as an API server notices."""
        readable, _, _ = select.select([self.connection], [], [], 0)
        if not readable:
            return False
        try:
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def end_stream(self) -> None:
        try:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("fake-k8s: %s", format % args)
