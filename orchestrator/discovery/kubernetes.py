"""Kubernetes discovery: ready engines from the API server, through the official client.

Two sources (``K8S_WATCH``):

- ``endpointslices``: the ``discovery.k8s.io/v1`` EndpointSlices labelled
  ``kubernetes.io/service-name=<K8S_SERVICE_NAME>``, all slices of the Service combined. An
  endpoint counts when its ``ready`` condition is true *or unset*: the API documents that "a nil
  value should be interpreted as true" (the EndpointSlice controller always sets it). Its id is
  ``targetRef.name`` (the pod), else its address; of several addresses the first is used (the
  controller writes exactly one); the port is the slice's port named ``grpc``, else its first
  port, else ``ENGINE_PORT``.
- ``pods``: the pods matching ``K8S_LABEL_SELECTOR`` that are Running, have condition
  Ready=True and an IP, and are not being deleted; id = pod name, address = ``podIP:ENGINE_PORT``.

The loop is an informer without a cache library: list, keep the objects by name, watch from the
list's resourceVersion applying ADDED/MODIFIED/DELETED (BOOKMARKs only advance the
resourceVersion), and yield the endpoint set whenever it changes. A watch that ends (it asks the
server for ``timeoutSeconds=watch_timeout``, in whole seconds) resumes from the last
resourceVersion without a list. 410 Gone,
as the HTTP status or as an ERROR event, means the history is gone: list again at once (a second
410 in a row waits like any failure). Any other failure is logged and retried after a bounded
exponential backoff, 0.5 s doubling to 30 s, reset by the next successful list or watch event;
the last set is kept and the iterator never ends by itself. Nothing is yielded before the first
successful list.

The client is synchronous: every list call and every step of a watch runs on one worker thread
that ``updates()`` owns, never on the event loop. Every request has a timeout (``request_timeout``
to connect and for a list; a watch may stay silent ``watch_timeout`` longer). Cancelling
``updates()`` shuts the open watch's socket down (urllib3's ``HTTPResponse.shutdown()``), which
releases the worker at once; a request still waiting for its answer holds it at most its timeout.
The worker then closes the ``ApiClient`` and exits.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing, suppress
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, Protocol, TypeVar, cast

from kubernetes import client, config
from kubernetes.client import (
    ApiException,
    DiscoveryV1EndpointPort,
    V1EndpointSlice,
    V1EndpointSliceList,
    V1Pod,
    V1PodList,
)

from orchestrator.discovery import DiscoveryError, EngineEndpoint
from orchestrator.discovery.static import join_host_port

# The client's models and API methods are annotated, its ``config`` module is not: hence the two
# ``no-untyped-call`` ignores. Watches are read here rather than through ``kubernetes.watch``, so
# that a cancelled watch can be interrupted with urllib3's ``HTTPResponse.shutdown()``.

_log = logging.getLogger(__name__)

Mode = Literal["endpointslices", "pods"]
SERVICE_NAME_LABEL = "kubernetes.io/service-name"

_GONE = 410
_T = TypeVar("_T")
_Object = V1EndpointSlice | V1Pod
_Model = type[V1EndpointSlice] | type[V1Pod]
_ListCall = Callable[..., V1EndpointSliceList | V1PodList]


def slice_endpoints(endpoint_slice: V1EndpointSlice, default_port: int) -> list[EngineEndpoint]:
    """The ready endpoints of one EndpointSlice."""
    port = _slice_port(endpoint_slice.ports or [], default_port)
    found = []
    for endpoint in endpoint_slice.endpoints or []:
        conditions = endpoint.conditions
        if not endpoint.addresses or (conditions is not None and conditions.ready is False):
            continue
        address = join_host_port(endpoint.addresses[0], port)
        ref = endpoint.target_ref
        found.append(EngineEndpoint(ref.name if ref is not None and ref.name else address, address))
    return found


def _slice_port(ports: list[DiscoveryV1EndpointPort], default_port: int) -> int:
    named = [p.port for p in ports if p.name == "grpc" and p.port is not None]
    numbered = [p.port for p in ports if p.port is not None]
    return (named or numbered or [default_port])[0]


def pod_endpoint(pod: V1Pod, port: int) -> EngineEndpoint | None:
    """The pod as an engine, or None when it is not ready to take work."""
    meta, status = pod.metadata, pod.status
    if meta is None or not meta.name or meta.deletion_timestamp is not None or status is None:
        return None
    ready = any(c.type == "Ready" and c.status == "True" for c in status.conditions or [])
    if status.phase != "Running" or not ready or not status.pod_ip:
        return None
    return EngineEndpoint(meta.name, join_host_port(status.pod_ip, port))


def load_configuration(in_cluster: bool, kubeconfig: str | None) -> client.Configuration:
    """A client configuration of our own (the library's global default stays untouched)."""
    configuration = client.Configuration()
    try:
        if in_cluster:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, client_configuration=configuration
            )
    except Exception as exc:  # the loaders raise ConfigException, OSError, YAML errors, ...
        source = (
            "the pod's service account (IN_CLUSTER_CONFIG=true)"
            if in_cluster
            else f"kubeconfig {kubeconfig or '(KUBECONFIG or ~/.kube/config)'}"
        )
        raise DiscoveryError(f"cannot load Kubernetes credentials from {source}: {exc}") from exc
    return configuration


class KubernetesDiscovery:
    """List + watch EndpointSlices of a Service, or pods by label selector, in one namespace."""

    def __init__(
        self,
        namespace: str,
        *,
        mode: Mode,
        service_name: str,
        label_selector: str,
        port: int,
        in_cluster: bool,
        kubeconfig: str | None,
        watch_timeout: float,
        request_timeout: float = 10.0,
        backoff: tuple[float, float] = (0.5, 30.0),
    ) -> None:
        """Load the credentials now: ``DiscoveryError`` if they cannot work.

        ``request_timeout`` bounds connecting and each list call (a watch gets
        ``watch_timeout`` more to read); ``backoff`` is the first and the longest retry delay.
        """
        if mode not in ("endpointslices", "pods"):
            raise DiscoveryError(f"K8S_WATCH={mode!r} is neither 'endpointslices' nor 'pods'")
        if not namespace:
            raise DiscoveryError("kubernetes discovery needs a namespace (K8S_NAMESPACE)")
        if mode == "endpointslices" and not service_name:
            raise DiscoveryError("endpointslices discovery needs K8S_SERVICE_NAME")
        if not 0 < port < 65536:
            raise DiscoveryError(f"engine port {port} is not in 1-65535 (ENGINE_PORT)")
        self._namespace = namespace
        self._mode: Mode = mode
        self._selector = (
            f"{SERVICE_NAME_LABEL}={service_name}" if mode == "endpointslices" else label_selector
        )
        self._port = port
        self._watch_seconds = max(1, math.ceil(watch_timeout))
        self._request_timeout = request_timeout
        self._backoff = backoff
        self._configuration = load_configuration(in_cluster, kubeconfig)

    async def updates(self) -> AsyncIterator[frozenset[EngineEndpoint]]:
        """Yield the ready engines after the first list, then after every change."""
        worker = _Worker(self._configuration)
        list_call, model = self._source(worker.api_client)
        objects: dict[str, _Object] = {}
        version: str | None = None  # None: list before watching
        current: frozenset[EngineEndpoint] | None = None
        delay = _Backoff(*self._backoff)
        gone_in_a_row = 0
        try:
            while True:
                try:
                    if version is None:
                        objects, version = await self._list(worker, list_call)
                        delay.reset()
                        if (found := self._endpoints(objects)) != current:
                            current = found
                            yield found
                    watch = self._watch(worker, list_call, model, version)
                    async with aclosing(watch) as events:
                        async for event in events:
                            _apply(objects, event)
                            version = event.version
                            delay.reset()
                            gone_in_a_row = 0
                            if (found := self._endpoints(objects)) != current:
                                current = found
                                yield found
                    gone_in_a_row = 0
                except ApiException as exc:
                    if exc.status == _GONE and version is not None:
                        gone_in_a_row += 1
                        _log.info("resourceVersion %s is gone (410); listing again", version)
                        version = None
                        if gone_in_a_row == 1:
                            continue
                    await self._pause(delay, f"HTTP {exc.status} {exc.reason}")
                except Exception as exc:  # unreachable server, timeouts, bad payloads, ...
                    await self._pause(delay, f"{type(exc).__name__}: {exc}")
        finally:
            worker.close()

    def _source(self, api_client: client.ApiClient) -> tuple[_ListCall, _Model]:
        if self._mode == "endpointslices":
            return client.DiscoveryV1Api(api_client).list_namespaced_endpoint_slice, V1EndpointSlice
        return client.CoreV1Api(api_client).list_namespaced_pod, V1Pod

    def _endpoints(self, objects: dict[str, _Object]) -> frozenset[EngineEndpoint]:
        by_id: dict[str, str] = {}
        for obj in objects.values():
            if isinstance(obj, V1EndpointSlice):
                found = slice_endpoints(obj, self._port)
            else:
                found = [e for e in [pod_endpoint(obj, self._port)] if e is not None]
            for endpoint in found:  # a pod in two slices while it moves: the lower address
                by_id[endpoint.id] = min(by_id.get(endpoint.id, endpoint.address), endpoint.address)
        return frozenset(EngineEndpoint(i, a) for i, a in by_id.items())

    async def _list(self, worker: _Worker, list_call: _ListCall) -> tuple[dict[str, _Object], str]:
        listing = await worker.run(
            partial(
                list_call,
                self._namespace,
                label_selector=self._selector,
                _request_timeout=self._request_timeout,
            )
        )
        items: list[_Object] = list(listing.items)
        objects = {o.metadata.name: o for o in items if o.metadata and o.metadata.name}
        version = listing.metadata.resource_version if listing.metadata else None
        if not version:
            raise ValueError(f"{self._mode} list without a resourceVersion")
        _log.debug("listed %d %s at resourceVersion %s", len(objects), self._mode, version)
        return objects, version

    async def _watch(
        self, worker: _Worker, list_call: _ListCall, model: _Model, version: str
    ) -> AsyncGenerator[_Event, None]:
        """The events of one watch request from ``version``, until the server ends it."""
        request = partial(
            list_call,
            self._namespace,
            label_selector=self._selector,
            watch=True,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=self._watch_seconds,
            _preload_content=False,
            _request_timeout=(self._request_timeout, self._watch_seconds + self._request_timeout),
        )
        stream = _WatchStream(request, model)
        try:
            await worker.run(stream.open)
            while (event := await worker.run(partial(next, stream.events, None))) is not None:
                yield event
        finally:
            stream.interrupt()  # a read blocked in the worker returns now (we were cancelled)
            worker.submit(stream.close)  # queued behind open() or a read, if we were cancelled

    async def _pause(self, delay: _Backoff, reason: str) -> None:
        seconds = delay.next()
        _log.warning(
            "kubernetes discovery of %s in %s failed (%s); retrying in %gs",
            self._mode,
            self._namespace,
            reason,
            seconds,
        )
        await asyncio.sleep(seconds)


def _apply(objects: dict[str, _Object], event: _Event) -> None:
    """Apply one watch event to the objects we know, by name."""
    meta = event.obj.metadata if event.obj is not None else None
    if event.obj is None or meta is None or not meta.name:
        return  # a BOOKMARK only moves the resourceVersion on
    if event.type == "DELETED":
        objects.pop(meta.name, None)
    else:  # ADDED, MODIFIED
        objects[meta.name] = event.obj


class _RawResponse(Protocol):
    """What we use of the ``urllib3.HTTPResponse`` a ``_preload_content=False`` call returns."""

    def stream(self, amt: int | None = ..., decode_content: bool | None = ...) -> Iterator[bytes]:
        """Yield the body as it arrives (one chunk at a time when chunked)."""

    def shutdown(self) -> None:
        """Shut the socket down for reading, from any thread."""

    def close(self) -> None: ...

    def release_conn(self) -> None: ...


@dataclass(frozen=True, slots=True)
class _Event:
    """One watch event, parsed on the worker thread."""

    type: str  # ADDED, MODIFIED, DELETED or BOOKMARK
    version: str
    obj: _Object | None  # None for a BOOKMARK


class _WatchStream:
    """One watch response: newline-delimited JSON events, read on the worker thread."""

    def __init__(self, request: Callable[[], object], model: _Model) -> None:
        self._request = request
        self._model = model
        self._response: _RawResponse | None = None
        self.events = self._read()

    def open(self) -> None:
        """Send the request; on the worker thread."""
        # With _preload_content=False the client returns urllib3's response, not the model its
        # annotation names; non-2xx answers raise ApiException.
        self._response = cast(_RawResponse, self._request())

    def _read(self) -> Generator[_Event, None, None]:
        assert self._response is not None, "open() first"
        pending = b""
        for chunk in self._response.stream(amt=None, decode_content=True):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line.strip():
                    yield self._parse(json.loads(line))

    def _parse(self, data: dict[str, Any]) -> _Event:
        kind, raw = data["type"], data["object"]
        if kind == "ERROR":  # a metav1.Status: code 410 when the resourceVersion is too old
            reason = f"{raw.get('reason')}: {raw.get('message')}"
            raise ApiException(status=raw.get("code"), reason=reason)
        version = str(raw["metadata"]["resourceVersion"])
        return _Event(kind, version, None if kind == "BOOKMARK" else self._model.from_dict(raw))

    def interrupt(self) -> None:
        """From any thread: make a read blocked on this response return at once."""
        if self._response is not None:
            with suppress(OSError, RuntimeError, ValueError):  # already finished or released
                self._response.shutdown()

    def close(self) -> None:
        """On the worker thread, after ``open()`` and any read have returned."""
        self.events.close()
        if self._response is not None:
            self._response.close()
            self._response.release_conn()


class _Backoff:
    """Delays that double from ``first`` up to ``longest``."""

    def __init__(self, first: float, longest: float) -> None:
        self._first = first
        self._longest = longest
        self._next = first

    def next(self) -> float:
        delay, self._next = self._next, min(self._next * 2, self._longest)
        return delay

    def reset(self) -> None:
        self._next = self._first


class _Worker:
    """The one thread the blocking client runs on, and the ``ApiClient`` it uses."""

    def __init__(self, configuration: client.Configuration) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="weir-k8s-discovery")
        self.api_client = client.ApiClient(configuration)

    async def run(self, call: Callable[[], _T]) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def submit(self, call: Callable[[], object]) -> None:
        self._executor.submit(call)

    def close(self) -> None:
        """Close the client after whatever the thread is doing, then let the thread exit."""
        self._executor.submit(self.api_client.close)
        self._executor.shutdown(wait=False)
