"""What sending a signal answers (``ExecutionService.signal``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SignalReceipt:
    """A signal as it was taken: its id, and the wait that consumed it at once (if any)."""

    id: str
    execution_id: str
    name: str
    outcome: str
    sent_at: float
    node: str | None = None
    """The ``wait`` node that consumed it at once; None: kept until a node waits for it."""
    visit: int | None = None
