"""The engine process: a gRPC server that runs executions the orchestrator places on it.

- ``codec``: protobuf <-> domain types (the only module that knows both)
- ``service``: the ``Engine`` servicer: one stream per orchestrator, executions under a capacity;
  executions of a closed stream are held for an orchestrator to attach again; sub-workflow nodes
- ``session``: one stream's numbered messages and one execution's unacknowledged reports
- ``metrics``: the engine's Prometheus collectors, in a registry of its own
- ``process``: ``EngineServer``, which assembles gRPC, health, reflection and metrics, and drains
"""
