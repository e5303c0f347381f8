"""The engines as the orchestrator sees them: discovery's members (``fleet``), one gRPC link each
(``link``), and the domain messages they exchange (``messages``; protobuf is converted in
``adapter`` and goes no further)."""
