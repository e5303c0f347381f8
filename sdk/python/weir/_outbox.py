"""What the worker has to tell the server, gathered between writes: pure bookkeeping.

Results stay here until the server acknowledges them (``acked``); a new stream sends the
unacknowledged ones again (``reconnected``: the server answers a repeat with
``VERDICT_DUPLICATE``). Heartbeats are merged per task (the latest details win); released tokens
and the draining flag belong to one stream (a broken stream's tasks are offered again anyway).
``take`` empties what is pending into one ``FromWorker``.
"""

from __future__ import annotations

from weir.proto.v1 import worker_pb2 as pb


class Outbox:
    """Pending results, heartbeats, released tokens and the draining flag of one worker."""

    def __init__(self) -> None:
        self._unacked: dict[str, pb.TaskResult] = {}
        self._results: dict[str, None] = {}  # tokens to send, in order
        self._heartbeats: dict[str, bytes] = {}
        self._released: dict[str, None] = {}
        self._draining = False
        self._draining_sent = False

    @property
    def unacked(self) -> int:
        """Results sent or to send that the server has not acknowledged."""
        return len(self._unacked)

    def has_result(self, token: str) -> bool:
        return token in self._unacked

    def result(self, result: pb.TaskResult) -> None:
        self._unacked[result.token] = result
        self._results[result.token] = None
        self._heartbeats.pop(result.token, None)

    def heartbeat(self, token: str, details_json: bytes) -> None:
        self._heartbeats[token] = details_json

    def release(self, token: str) -> None:
        self._released[token] = None
        self._heartbeats.pop(token, None)

    def drain(self) -> None:
        """Say ``draining`` on this stream and every later one."""
        self._draining = True

    def acked(self, token: str) -> bool:
        """Forget ``token``'s result; False when none was waiting for an answer."""
        self._results.pop(token, None)
        return self._unacked.pop(token, None) is not None

    def reconnected(self) -> None:
        """A new stream: every unacknowledged result is sent again, ``draining`` too."""
        self._results = dict.fromkeys(self._unacked)
        self._released.clear()
        self._draining_sent = False

    def take(self) -> pb.FromWorker | None:
        """One message with everything pending, or None when nothing is."""
        draining = self._draining and not self._draining_sent
        if not (self._results or self._heartbeats or self._released or draining):
            return None
        message = pb.FromWorker(
            results=[self._unacked[token] for token in self._results],
            heartbeats=[
                pb.TaskHeartbeat(token=token, details_json=details)
                for token, details in self._heartbeats.items()
            ],
            released=list(self._released),
            draining=draining,
        )
        self._results.clear()
        self._heartbeats.clear()
        self._released.clear()
        self._draining_sent = self._draining
        return message
