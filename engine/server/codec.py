"""Conversions between protobuf messages and engine domain types.

User data (inputs, outputs, event data) is JSON in ``bytes`` fields; see
``proto/weir/proto/v1/engine.proto``.
Values JSON cannot represent (a Python task returning a ``set``, say) are sent as their
``str()``, so a result always crosses the wire.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from weir.proto.v1 import engine_pb2 as pb

from engine.state.events import Event, ExecutionStatus, NodeResult, NodeStatus

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode
_loads = json.loads

EXECUTION_STATUS_TO_PB: dict[str, pb.ExecutionStatus.ValueType] = {
    ExecutionStatus.PENDING: pb.EXECUTION_STATUS_PENDING,
    ExecutionStatus.RUNNING: pb.EXECUTION_STATUS_RUNNING,
    ExecutionStatus.COMPLETED: pb.EXECUTION_STATUS_COMPLETED,
    ExecutionStatus.FAILED: pb.EXECUTION_STATUS_FAILED,
    ExecutionStatus.CANCELLED: pb.EXECUTION_STATUS_CANCELLED,
    ExecutionStatus.WAITING: pb.EXECUTION_STATUS_WAITING,
}
EXECUTION_STATUS_FROM_PB = {v: ExecutionStatus(k) for k, v in EXECUTION_STATUS_TO_PB.items()}

NODE_STATUS_TO_PB: dict[str, pb.NodeStatus.ValueType] = {
    NodeStatus.PENDING: pb.NODE_STATUS_PENDING,
    NodeStatus.RUNNING: pb.NODE_STATUS_RUNNING,
    NodeStatus.COMPLETED: pb.NODE_STATUS_COMPLETED,
    NodeStatus.FAILED: pb.NODE_STATUS_FAILED,
    NodeStatus.SKIPPED: pb.NODE_STATUS_SKIPPED,
    NodeStatus.CANCELLED: pb.NODE_STATUS_CANCELLED,
}
NODE_STATUS_FROM_PB = {v: NodeStatus(k) for k, v in NODE_STATUS_TO_PB.items()}


class CodecError(ValueError):
    """A message that cannot be turned into domain types (bad JSON, unknown enum value)."""


def to_json(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON; ``None`` becomes empty bytes."""
    if value is None:
        return b""
    return _dumps(value).encode()


def from_json(data: bytes, what: str = "value") -> Any:
    """Decode a ``*_json`` field (empty bytes are ``None``); ``CodecError`` names ``what``."""
    if not data:
        return None
    try:
        return _loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CodecError(f"{what}: not UTF-8 JSON ({exc})") from None


def canonical_definition(document: Any) -> tuple[bytes, str]:
    """The definition snapshot engines receive, and its digest."""
    data = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return data, canonical_digest(data)


def canonical_digest(data: bytes) -> str:
    """sha256 of a definition snapshot, in hex."""
    return hashlib.sha256(data).hexdigest()


def seconds(ts: Timestamp) -> float:
    return ts.seconds + ts.nanos / 1e9


def set_time(field: Timestamp, at: float) -> None:
    """Fill a message's Timestamp field in place (twice as fast as building one and copying)."""
    whole = int(at // 1)
    field.seconds = whole
    field.nanos = int((at - whole) * 1e9)


def fill_result(m: pb.NodeResult, execution_id: str, lease: int, r: NodeResult) -> None:
    """Write ``r`` into ``m`` (an element added to a repeated field: no copy)."""
    m.execution_id = execution_id
    m.lease = lease
    m.node = r.node
    m.visit = r.visit
    m.attempt = r.attempt
    m.status = NODE_STATUS_TO_PB[r.status]
    if r.output is not None:
        m.output_json = to_json(r.output)
    if r.outcome is not None:
        m.outcome = r.outcome
    if r.error is not None:
        m.error = r.error
    m.retryable = r.retryable
    if r.route is not None:
        m.route = r.route
    set_time(m.started_at, r.started_at)
    set_time(m.finished_at, r.finished_at)
    if r.item is not None:
        m.item = r.item
    if r.reused_from is not None:
        m.reused_from = r.reused_from


_ENDS = (NodeStatus.COMPLETED, NodeStatus.FAILED, NodeStatus.SKIPPED)


def result_from_pb(m: pb.NodeResult) -> NodeResult:
    """Raises ``CodecError`` for a record that is neither the end of an attempt nor a map's
    expansion (attempt 0, status RUNNING, no item), or for bad output JSON."""
    status = NODE_STATUS_FROM_PB.get(m.status)
    item = m.item if m.HasField("item") else None
    if not m.node or m.visit < 1:
        raise CodecError(f"node result {m.node!r}: node, visit and attempt are required")
    if status is NodeStatus.RUNNING:
        if m.attempt != 0 or item is not None:
            raise CodecError(
                f"node result {m.node!r}: status RUNNING is only a map's expansion "
                "(attempt 0, no item)"
            )
    elif status not in _ENDS:
        raise CodecError(f"node result {m.node!r}: status {m.status} cannot end an attempt")
    elif m.attempt < 1:
        raise CodecError(f"node result {m.node!r}: node, visit and attempt are required")
    return NodeResult(
        m.node,
        m.visit,
        m.attempt,
        status,
        output=from_json(m.output_json, f"node result {m.node!r} output"),
        outcome=m.outcome if m.HasField("outcome") else None,
        error=m.error if m.HasField("error") else None,
        retryable=m.retryable,
        route=m.route if m.HasField("route") else None,
        started_at=seconds(m.started_at),
        finished_at=seconds(m.finished_at),
        item=item,
        reused_from=m.reused_from or None,
    )


def fill_event(m: pb.ExecutionEvent, lease: int, e: Event) -> None:
    """Write ``e`` into ``m`` (an element added to a repeated field: no copy)."""
    m.execution_id = e.execution_id
    m.lease = lease
    m.type = e.type
    if e.node is not None:
        m.node = e.node
    m.visit = e.visit
    m.attempt = e.attempt
    if e.data:
        m.data_json = to_json(e.data)
    set_time(m.at, e.at)
