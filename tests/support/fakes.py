"""Fakes of the orchestrator's own Protocols, for tests that drive one part directly.

``FakeEngine`` is an ``EnginePort`` (``orchestrator/engines/messages.py``): an engine link that
records what the orchestrator tells it (orders, cancels, attaches, answers, acknowledgements)
instead of sending it, so a test can feed the ``Lifecycle`` the domain messages a real engine's
stream would carry and see exactly what goes back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.engines.link import LinkInfo, LinkState
from orchestrator.engines.messages import ChildAnswer, ExecuteOrder, TaskAnswer, TaskTicket


@dataclass
class FakeEngine:
    """An always-ready engine link with room for ``capacity`` executions."""

    id: str
    capacity: int = 10
    address: str = "127.0.0.1:0"
    usable: bool = True
    draining: bool = False
    reported_in_flight: int = 0
    orders: list[ExecuteOrder] = field(default_factory=list)
    cancels: list[tuple[str, int, str]] = field(default_factory=list)
    attaches: list[tuple[str, int]] = field(default_factory=list)
    answers: list[ChildAnswer] = field(default_factory=list)
    task_answers: list[TaskAnswer] = field(default_factory=list)
    tickets: list[TaskTicket] = field(default_factory=list)
    acks: list[tuple[int, int]] = field(default_factory=list)
    forgotten: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"engine-{self.id}"

    def execute(self, order: ExecuteOrder) -> None:
        self.orders.append(order)

    def cancel(self, execution_id: str, lease: int, reason: str) -> None:
        self.cancels.append((execution_id, lease, reason))

    def attach(self, execution_id: str, lease: int) -> None:
        self.attaches.append((execution_id, lease))

    def child_finished(self, answer: ChildAnswer) -> None:
        self.answers.append(answer)

    def task_finished(self, answer: TaskAnswer) -> None:
        self.task_answers.append(answer)

    def task_scheduled(self, ticket: TaskTicket) -> None:
        self.tickets.append(ticket)

    def ack(self, seq: int, stream: int) -> None:
        self.acks.append((seq, stream))

    def forget_definition(self, digest: str) -> None:
        self.forgotten.append(digest)

    def assume_full(self) -> None:
        self.reported_in_flight = self.capacity

    async def stop(self) -> None:
        """What the fleet calls when the orchestrator stops; there is nothing to close."""

    def info(self) -> LinkInfo:
        return LinkInfo(
            id=self.id,
            engine_id=self.name,
            address=self.address,
            state=LinkState.READY if self.usable else LinkState.UNHEALTHY,
            healthy=self.usable,
            capacity=self.capacity,
            reported_in_flight=self.reported_in_flight,
            version="fake",
            bad_messages=0,
        )
