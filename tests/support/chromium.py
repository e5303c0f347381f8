"""Where Debian's Chromium is and how it starts headless here: the browser tests
(``tests/support/browser.py``) and ``scripts/bench ui`` launch it alike. No Playwright import:
the benchmark says so itself when Playwright is missing."""

from __future__ import annotations

CHROMIUM = "/usr/bin/chromium"
"""Debian's package, which ``scripts/test`` installs; never a browser Playwright downloads."""
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
"""Headless as root, and nothing that reaches off this machine (updates, sync, QUIC probes)."""
