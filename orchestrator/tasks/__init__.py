"""Durable tasks of ``task`` nodes and the workers that do them (docs/tasks.md)."""
