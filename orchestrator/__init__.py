"""The weir orchestrator: registry, placement, discovery, triggers, monitor, APIs and the CLI.

This package depends on ``engine``; ``engine`` never imports it.
"""
