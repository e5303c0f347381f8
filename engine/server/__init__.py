"""The engine process: a gRPC server that runs executions the orchestrator places on it.

- ``codec``: protobuf <-> domain types (the only module that knows both)
- ``service``: the ``Engine`` servicer: one stream per orchestrator, executions under a capacity
- ``metrics``: the engine's Prometheus collectors, in a registry of its own
- ``process``: ``EngineServer``, which assembles gRPC, health, reflection and metrics, and drains
"""
