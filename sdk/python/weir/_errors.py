"""The SDK's errors.

::

    WeirError              anything the SDK itself raises
    ├── WorkerError        a worker set up or used wrongly: no queue, a queue without a handler, a
    │                      handler registered twice, a handler whose parameters cannot be filled
    ├── RPCError           the server refused the worker for good (a wrong token, no ``Workers``
    │                      service, an invalid hello): reconnecting would not help
    └── ApiError           a call of ``weir.Client`` failed: its gRPC status and the server's
                           message (which names the workflow, field or id at fault)
    NonRetryableError      raised by *your* handler: the task fails and its node is not retried

``NonRetryableError`` is not a ``WeirError``: it is yours to raise (or subclass), not the SDK's.
"""

from __future__ import annotations

import grpc


class WeirError(Exception):
    """The base of the errors the SDK raises about itself."""


class WorkerError(WeirError):
    """A worker set up or used wrongly; the message names the queue or parameter at fault."""


class RPCError(WeirError):
    """The server refused the worker's stream with a status that retrying cannot fix.

    ``code`` is the gRPC status (``grpc.StatusCode.UNAUTHENTICATED`` for a wrong ``WEIR_TOKEN``)
    and ``details`` the server's message.
    """

    def __init__(self, server: str, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{server} refused the worker: {code.name}: {details}")
        self.server = server
        self.code = code
        self.details = details


class NonRetryableError(Exception):
    """Raise it (or a subclass) from a handler to fail the task at once, without retries.

    Any other exception fails the task as retryable, and the node's ``retry`` decides. The
    failure's ``type`` is the class name, so a subclass names the reason::

        class InvalidAddress(weir.NonRetryableError):
            pass

        @worker.task("send_email")
        def send_email(to: str) -> dict[str, bool]:
            if "@" not in to:
                raise InvalidAddress(f"not an email address: {to!r}")
            return {"sent": True}
    """


class ApiError(WeirError):
    """A failed call to the orchestrator's API (``weir.Client``): ``code`` is the gRPC status,
    ``details`` the server's message, ``target`` the address called."""

    def __init__(self, code: grpc.StatusCode, details: str, *, target: str) -> None:
        self.code = code
        self.details = details
        self.target = target
        super().__init__(f"{details} ({code.name.lower()}, server {target})")
