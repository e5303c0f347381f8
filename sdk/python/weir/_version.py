"""The SDK's version, sent in every hello."""

__version__ = "0.1.0"
