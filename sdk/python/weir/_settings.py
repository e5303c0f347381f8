"""The SDK's one reader of the environment.

``WEIR_SERVER``  the orchestrator's gRPC address, ``host:port`` (default ``127.0.0.1:50051``)
``WEIR_TOKEN``   sent as ``authorization: Bearer <token>`` when set (the orchestrator's
                 ``API_TOKEN``)
"""

from __future__ import annotations

import os

DEFAULT_SERVER = "127.0.0.1:50051"


def server_from_env() -> str:
    """``WEIR_SERVER``, else ``127.0.0.1:50051``."""
    return os.environ.get("WEIR_SERVER", "").strip() or DEFAULT_SERVER


def token_from_env() -> str:
    """``WEIR_TOKEN``, else empty (no authorization sent)."""
    return os.environ.get("WEIR_TOKEN", "").strip()
