"""``DefinitionCache``: the definitions an engine was sent, parsed once, by digest.

Definitions travel as a canonical JSON snapshot with its sha256 (``definition_digest``). An
orchestrator sends the body the first time it uses a digest on a stream; the engine checks the
digest, parses the body with the very parser the orchestrator validated it with, and keeps it
(LRU, ``size`` entries). An ``Execute`` naming a digest the cache lacks, without a body, is refused
with ``REASON_UNKNOWN_DEFINITION``, and the orchestrator sends the body again.
"""

from __future__ import annotations

from collections import OrderedDict

from weir.proto.v1 import engine_pb2 as pb

from engine.definition.model import Definition
from engine.definition.parser import from_document
from engine.errors import DefinitionError
from engine.lua import LuaSandbox
from engine.server import codec

Reason = pb.ExecutionRejected.Reason

SIZE = 512


class Rejected(Exception):
    """An ``Execute`` the engine refuses; ``reason`` goes back in ``ExecutionRejected``."""

    def __init__(self, reason: pb.ExecutionRejected.Reason.ValueType, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class DefinitionCache:
    """Parsed definitions by digest, least recently used out first."""

    def __init__(self, sandbox: LuaSandbox, size: int = SIZE) -> None:
        self._sandbox = sandbox
        self._size = size
        self._by_digest: OrderedDict[str, Definition] = OrderedDict()

    def get(self, digest: str, body: bytes) -> Definition:
        """The definition ``digest`` names, parsed from ``body`` when not cached; raises
        ``Rejected`` (unknown definition, a digest that does not match, an invalid body)."""
        cached = self._by_digest.get(digest)
        if cached is not None:
            self._by_digest.move_to_end(digest)
            return cached
        if not body:
            raise Rejected(Reason.REASON_UNKNOWN_DEFINITION, f"definition {digest} is not cached")
        actual = codec.canonical_digest(body)
        if actual != digest:
            raise Rejected(Reason.REASON_INVALID, "definition_digest does not match its body")
        try:
            definition = from_document(
                codec.from_json(body, "definition_json"),
                source=f"definition {actual[:12]}",
                sandbox=self._sandbox,
            )
        except (codec.CodecError, DefinitionError) as exc:
            raise Rejected(Reason.REASON_INVALID, str(exc)) from None
        self._by_digest[actual] = definition
        if len(self._by_digest) > self._size:
            self._by_digest.popitem(last=False)
        return definition
