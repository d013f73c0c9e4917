"""The one error type for bad user input, so the CLI can print it as one line and exit 2."""

from __future__ import annotations


class ConfigError(ValueError):
    """Bad user input: the message names the bad value and what would be accepted."""
