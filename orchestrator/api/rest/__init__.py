"""The REST API: see ``app.py``."""
