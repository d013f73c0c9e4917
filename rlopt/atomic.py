"""Files written whole or not at all: a killed command never leaves a half-written report or figure.

Each file is written next to its destination under a temporary name and renamed over it, which POSIX
makes atomic within one file system.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    path = Path(path)
    tmp = _temporary(path)
    try:
        tmp.write_text(text)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def save_figure(figure: Any, path: str | Path, **savefig: Any) -> None:
    """``figure.savefig(path, **savefig)`` atomically (the format is taken from ``path``'s suffix)."""
    path = Path(path)
    tmp = _temporary(path)
    try:
        figure.savefig(tmp, format=path.suffix.lstrip(".") or None, **savefig)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
