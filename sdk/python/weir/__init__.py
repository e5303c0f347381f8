"""weir's Python SDK: task workers for ``task`` nodes, depending only on grpcio and protobuf."""

from __future__ import annotations

__version__ = "0.1.0"
