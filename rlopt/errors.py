"""The one error type for bad user input, so the CLI can print it as one line and exit 2."""

from __future__ import annotations


class ConfigError(ValueError):
    """Bad user input: the message names the bad value and what would be accepted."""


class StudyStopped(RuntimeError):
    """A study could not go on (its storage or folder cannot be written); what finished is kept.

    The CLI prints it as one line and exits 1: the input was fine, and the same command resumes once the
    cause (a read-only or full disk, a lost server) is gone.
    """


def root_cause(exc: BaseException) -> BaseException:
    """The innermost cause of ``exc`` (Optuna wraps SQLAlchemy's error, which wraps the driver's ``orig``)."""
    root: BaseException = exc
    while (root.__cause__ or root.__context__) is not None:
        root = root.__cause__ or root.__context__  # type: ignore[assignment]
    return getattr(root, "orig", None) or root


def first_line(exc: BaseException) -> str:
    """The first line of what the database or the system said (:func:`root_cause`), or the type's name."""
    root = root_cause(exc)
    lines = str(root).strip().splitlines()
    return lines[0] if lines else type(root).__name__
