"""``ExecutionTable``: the executions in memory, one record each, and the ways to find them.

It holds every unfinished execution and a bounded cache of finished ones (``finished_cache``,
oldest ended first out; older ones are read back from the store). Its indexes — by idempotency
key, by child key (``parent/node/visit/attempt``) and each parent's list of children — are kept
here and nowhere else, and ``evict`` is the one way an execution leaves memory: the cache
overflowing, retention deleting it, anything else. So no index can point at a record that is
gone.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator

from orchestrator.executions.record import ExecutionRecord
from orchestrator.registry import WorkflowVersion

FINISHED_CACHE = 2_000
"""Finished executions kept in memory; older ones are read back from the store."""


class ExecutionTable:
    """One ``ExecutionRecord`` per execution id; see the module docstring."""

    def __init__(self, finished_cache: int = FINISHED_CACHE) -> None:
        self._records: dict[str, ExecutionRecord] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()
        """Ids of the finished executions in memory, in the order they ended."""
        self._by_idempotency_key: dict[str, str] = {}
        self._by_child_key: dict[str, str] = {}
        self._finished_cache = finished_cache

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, execution_id: object) -> bool:
        return execution_id in self._records

    def get(self, execution_id: str) -> ExecutionRecord | None:
        return self._records.get(execution_id)

    def by_idempotency_key(self, key: str) -> ExecutionRecord | None:
        found = self._by_idempotency_key.get(key)
        return None if found is None else self._records[found]

    def by_child_key(self, key: str) -> ExecutionRecord | None:
        """The child a parent's node attempt started (``ParentLink.key``), if in memory."""
        found = self._by_child_key.get(key)
        return None if found is None else self._records[found]

    def add(self, record: ExecutionRecord) -> None:
        """Keep ``record`` (a new execution, or one read back from the store) and index it.

        A child is added to its parent's ``children``; a finished record goes into the bounded
        cache, which may evict the oldest finished one.
        """
        self._records[record.id] = record
        if record.idempotency_key:
            self._by_idempotency_key[record.idempotency_key] = record.id
        if record.parent is not None:
            self._by_child_key[record.parent.key] = record.id
            parent = self._records.get(record.parent.execution_id)
            if parent is not None and record.id not in parent.children:
                parent.children.append(record.id)
        if record.finished:
            self.ended(record)

    def ended(self, record: ExecutionRecord) -> None:
        """``record`` has ended: it stays in memory only while the cache has room."""
        self._finished[record.id] = None
        while len(self._finished) > self._finished_cache:
            oldest = next(iter(self._finished))
            self.evict(oldest)

    def evict(self, execution_id: str) -> None:
        """Forget an execution and every index entry of it (the only way out of memory)."""
        record = self._records.pop(execution_id, None)
        self._finished.pop(execution_id, None)
        if record is None:
            return
        key = record.idempotency_key
        if key and self._by_idempotency_key.get(key) == execution_id:
            del self._by_idempotency_key[key]
        if record.parent is not None and self._by_child_key.get(record.parent.key) == record.id:
            del self._by_child_key[record.parent.key]

    def evict_finished_before(self, cutoff: float) -> int:
        """Retention: evict finished executions that ended before ``cutoff``, oldest first."""
        evicted = 0
        for execution_id in list(self._finished):
            record = self._records.get(execution_id)
            if record is not None and (record.finished_at or 0) >= cutoff:
                break
            self.evict(execution_id)
            evicted += 1
        return evicted

    def children_of(self, record: ExecutionRecord) -> Iterator[ExecutionRecord]:
        """Its children that are in memory, oldest first."""
        for child_id in record.children:
            child = self._records.get(child_id)
            if child is not None:
                yield child

    def running_on(self, wf: WorkflowVersion) -> int:
        """Unfinished executions pinned to ``wf``."""
        return sum(1 for r in self._records.values() if r.wf is wf and not r.finished)

    def unfinished(self) -> Iterator[ExecutionRecord]:
        return (r for r in self._records.values() if not r.finished)
