"""Files written whole or not at all: a killed command never leaves a half-written report or figure.

Each file is written next to its destination under a temporary name and renamed over it, which POSIX
makes atomic within one file system.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


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


def write_file(
    path: str | Path, write: Callable[[IO[Any]], Any], text: bool = False, sync: bool = False
) -> None:
    """``write(fh)`` into a temporary file beside ``path`` (binary unless ``text``; flushed to disk first
    if ``sync``, for a file a crash must not lose), then renamed over ``path``."""
    path = Path(path)
    tmp = _temporary(path)
    try:
        with tmp.open("w" if text else "wb", newline="" if text else None) as fh:
            write(fh)
            if sync:
                fh.flush()
                os.fsync(fh.fileno())
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def copy_file(source: str | Path, target: str | Path) -> None:
    """Copy ``source`` to ``target`` atomically, with its times and permissions (as ``shutil.copy2``)."""
    with Path(source).open("rb") as src:
        write_file(target, lambda fh: shutil.copyfileobj(src, fh))
    shutil.copystat(source, target)


def save_figure(figure: Any, path: str | Path, **savefig: Any) -> None:
    """``figure.savefig(path, **savefig)`` atomically (the format is taken from ``path``'s suffix)."""
    path = Path(path)
    tmp = _temporary(path)
    try:
        figure.savefig(tmp, format=path.suffix.lstrip(".") or None, **savefig)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
