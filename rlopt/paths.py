"""Folders a command is about to create, checked before anything is written."""

from __future__ import annotations

import os
from pathlib import Path

from rlopt.errors import ConfigError


def check_folder_can_be_made(path: str | Path, what: str) -> None:
    """``path`` is a folder already, or can be created: its nearest existing ancestor is a writable folder.

    Raises:
        ConfigError: one line naming ``what`` (e.g. ``--out``), the path and what is accepted.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{what} {str(path)!r} is a file, not a folder (accepted: a folder, or a path "
                          "where one can be created)")
    anchor = next((p for p in [path, *path.absolute().parents] if p.exists()), None)
    if anchor is None:
        return
    if not anchor.is_dir():
        raise ConfigError(f"{what} {str(path)!r}: {anchor} is a file, so the folder cannot be created "
                          "(accepted: a path inside a writable folder)")
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise ConfigError(f"{what} {str(path)!r}: {anchor} cannot be written (read-only?) "
                          "(accepted: a path inside a writable folder)")
