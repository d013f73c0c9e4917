"""The one error type for bad user input, so the CLI can print it as one line and exit 2."""

from __future__ import annotations


class ConfigError(ValueError):
    """Bad user input: the message names the bad value and what would be accepted."""


class StudyStopped(RuntimeError):
    """A study could not go on (its storage or folder cannot be written); what finished is kept.

    The CLI prints it as one line and exits 1: the input was fine, and the same command resumes once the
    cause (a read-only or full disk, a lost server) is gone.
    """
