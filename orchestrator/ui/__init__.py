"""The web UI at ``/ui``, served by the orchestrator's HTTP port (docs/ui.md)."""
