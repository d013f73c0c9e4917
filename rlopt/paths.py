"""Names and folders on disk: file names made from labels, and folders a command is about to create,
checked before anything is written."""

from __future__ import annotations

import os
import re
from pathlib import Path

from rlopt.errors import ConfigError


def safe_name(text: str, keep: str = "", trim: bool = False) -> str:
    """``text`` as one file or folder name: each run of characters other than ASCII letters, digits,
    ``_``, ``.``, ``-`` and those in ``keep`` becomes one ``_``.

    Args:
        text: a label, task id or run description (``ppo-Hopper-v5-adam-s0``, ``adopt b2=0.9999``).
        keep: further characters to keep (study run folders keep ``=``: ``trial_0003-adam_b2=0.99``).
        trim: drop ``_`` at both ends, and give ``x`` for a name left empty (report figures).
    """
    name = re.sub(f"[^A-Za-z0-9_.{re.escape(keep)}-]+", "_", text)
    return (name.strip("_") or "x") if trim else name


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
