"""``weir.engine.v1`` protobuf to and from the domain messages of ``messages.py``.

Only the engine link calls these: protobuf of the engine protocol stops here. A part of a message
that cannot be read (a node run whose output is not JSON, a final result without the result's
shape) is reported as a problem and skipped, or passed on with what is known (``Ended`` without
a result), exactly as the rest of the message is applied.
"""

from __future__ import annotations

from weir.proto.v1 import engine_pb2 as pb

from engine.server import codec
from engine.state.result import ExecutionResult, ResultFormatError
from orchestrator.engines.messages import (
    ChildAnswer,
    ChildRequested,
    Delivered,
    Ended,
    EngineReport,
    EventReported,
    ExecuteOrder,
    HandedBack,
    Held,
    NodeReported,
    Parked,
    RefusalReason,
    Refused,
    TaskAnswer,
    TaskRequested,
    TaskTicket,
)

_REASONS = {
    pb.ExecutionRejected.Reason.Value(f"REASON_{reason.name}"): reason for reason in RefusalReason
}


def held_from_pb(held: list[pb.HeldExecution]) -> list[Held]:
    return [Held(h.execution_id, h.lease, h.finished) for h in held]


_KINDS = {
    pb.TASK_KIND_WORKER: "worker",
    pb.TASK_KIND_CALLBACK: "callback",
    pb.TASK_KIND_SIGNAL: "signal",
    pb.TASK_KIND_TIMER: "timer",
}


def report_from_pb(message: pb.FromEngine, stream: int) -> tuple[EngineReport, list[str]]:
    """The report, and a line for each part that could not be read (skipped)."""
    problems: list[str] = []
    nodes = []
    for m in message.node_results:
        try:
            result = codec.result_from_pb(m)
        except codec.CodecError as exc:
            problems.append(f"a bad node result for {m.execution_id}: {exc}")
            continue
        nodes.append(NodeReported(m.execution_id, m.lease, result, m.output_json))
    events = []
    for e in message.events:
        try:
            data = codec.from_json(e.data_json, "event data")
        except codec.CodecError:
            data = None
        events.append(
            EventReported(
                e.execution_id,
                e.lease,
                e.type,
                codec.seconds(e.at),
                e.node if e.HasField("node") else None,
                e.visit,
                e.attempt,
                data,
                e.data_json if data is not None else None,
            )
        )
    ended = []
    for f in message.finished:
        try:
            final = ExecutionResult.from_json(codec.from_json(f.result_json, "result"))
            if not final.finished:
                raise ResultFormatError(f"status {final.status} is not an end")
        except (codec.CodecError, ResultFormatError) as exc:
            problems.append(f"a bad result for {f.execution_id}: {exc}")
            ended.append(Ended(f.execution_id, f.lease, None, "engine sent an unreadable result"))
            continue
        ended.append(Ended(f.execution_id, f.lease, final))
    report = EngineReport(
        seq=message.seq,
        stream=stream,
        nodes=nodes,
        events=events,
        ended=ended,
        refused=[
            Refused(
                r.execution_id,
                r.lease,
                _REASONS.get(r.reason, RefusalReason.UNSPECIFIED),
                r.message,
            )
            for r in message.rejected
        ],
        handed_back=[HandedBack(h.execution_id, h.lease) for h in message.handed_back],
        children=[
            ChildRequested(
                sc.execution_id,
                sc.lease,
                sc.node,
                sc.visit,
                sc.attempt,
                sc.workflow,
                sc.version_range,
                sc.inputs_json,
                sc.item if sc.HasField("item") else None,
            )
            for sc in message.start_child
        ],
        tasks=[
            TaskRequested(
                st.execution_id,
                st.lease,
                st.node,
                st.visit,
                st.attempt,
                st.queue,
                st.args_json,
                st.timeout_s,
                st.heartbeat_s,
                st.schedule_to_start_s,
                st.item if st.HasField("item") else None,
                _KINDS.get(st.kind, "worker"),
                st.deadline,
            )
            for st in message.schedule_task
        ],
        deliveries=[
            Delivered(d.execution_id, d.lease, d.token, d.ok, d.error, d.retryable)
            for d in message.task_delivery
        ],
        parked=[Parked(p.execution_id, p.lease, p.wake_at, p.waiting) for p in message.parked],
    )
    return report, problems


def execute_to_pb(order: ExecuteOrder, *, with_definition: bool) -> pb.Execute:
    m = pb.Execute(
        execution_id=order.execution_id,
        lease=order.lease,
        definition_digest=order.digest,
        inputs_json=order.inputs_json,
        depth=order.depth,
    )
    if with_definition:
        m.definition_json = order.snapshot
    if order.checkpoint:
        add = m.checkpoint.add
        for result in order.checkpoint:
            codec.fill_result(add(), order.execution_id, order.lease, result)
    if order.timeout is not None:
        m.timeout.FromNanoseconds(int(order.timeout * 1e9))
    return m


def answer_to_pb(answer: ChildAnswer) -> pb.ChildFinished:
    return pb.ChildFinished(
        execution_id=answer.execution_id,
        lease=answer.lease,
        node=answer.node,
        visit=answer.visit,
        attempt=answer.attempt,
        child_id=answer.child_id,
        status=codec.EXECUTION_STATUS_TO_PB[str(answer.status)],
        outputs_json=answer.outputs_json,
        error=answer.error,
        item=answer.item,
    )


def task_answer_to_pb(answer: TaskAnswer) -> pb.TaskFinished:
    return pb.TaskFinished(
        execution_id=answer.execution_id,
        lease=answer.lease,
        node=answer.node,
        visit=answer.visit,
        attempt=answer.attempt,
        completed=answer.completed,
        output_json=answer.output_json,
        error=answer.error,
        retryable=answer.retryable,
        item=answer.item,
        outcome=answer.outcome,
    )


def ticket_to_pb(ticket: TaskTicket) -> pb.TaskScheduled:
    return pb.TaskScheduled(
        execution_id=ticket.execution_id,
        lease=ticket.lease,
        node=ticket.node,
        visit=ticket.visit,
        attempt=ticket.attempt,
        item=ticket.item,
        token=ticket.token,
        callback_url=ticket.callback_url,
        base_url=ticket.base_url,
        delivered=ticket.delivered,
    )
