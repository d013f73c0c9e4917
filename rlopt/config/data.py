"""Where rlopt's data files live: the shipped ``agents/``, ``envs/`` and ``studies/``, or a user's own.

The repository keeps one copy of each file in its top-level ``agents/``, ``envs/`` and ``studies/``
folders (users read and edit them there); ``rlopt/data/<kind>`` are symbolic links to them, which the
wheel build follows, so an installed rlopt carries the files as package data and finds them through
:mod:`importlib.resources` (an editable install reads the checkout's folders through the links).

``RLOPT_DATA=/path`` points rlopt at a user's own files: ``/path/agents/ppo.yaml`` replaces the shipped
``agents/ppo.yaml``, ``/path/envs/my-suite.yaml`` adds a suite ``my-suite`` (or replaces one of that name);
every file the folder lacks stays the shipped one. A user's file replaces the shipped file whole (its
entries are not merged into it).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from importlib.resources import files
from pathlib import Path

from rlopt.errors import ConfigError

ENV_VAR = "RLOPT_DATA"
KINDS = ("agents", "envs", "studies")


def shipped_dir(kind: str) -> Path:
    """The folder of ``kind`` shipped with rlopt (``rlopt/data/<kind>``)."""
    root = files("rlopt") / "data" / _check_kind(kind)
    if not isinstance(root, Path):  # pragma: no cover - rlopt is never imported from a zip
        raise ConfigError(f"rlopt's data files are not in a folder ({root}); set {ENV_VAR}=/path/to/data")
    return root


def user_root() -> Path | None:
    """The folder named by ``RLOPT_DATA``, or ``None`` when it is unset or empty.

    Raises:
        ConfigError: ``RLOPT_DATA`` names something that is not a folder.
    """
    value = os.environ.get(ENV_VAR, "")
    if not value:
        return None
    root = Path(value).expanduser()
    if not root.is_dir():
        raise ConfigError(
            f"{ENV_VAR}={value!r} is not a folder (accepted: a folder holding agents/ and/or envs/)"
        )
    return root


def data_file(kind: str, name: str) -> Path:
    """The file ``<kind>/<name>`` rlopt reads: the user's (``$RLOPT_DATA/<kind>/<name>``), else rlopt's.

    Example:
        >>> data_file("agents", "ppo.yaml").name
        'ppo.yaml'
    """
    root = user_root()
    if root is not None and (root / _check_kind(kind) / name).is_file():
        return root / kind / name
    return shipped_dir(kind) / name


def data_names(kind: str) -> list[str]:
    """The names (without ``.yaml``) of the ``kind`` files rlopt can read, the user's and the shipped."""
    folders = [shipped_dir(kind)]
    root = user_root()
    if root is not None:
        folders.append(root / kind)
    return sorted({p.stem for folder in folders if folder.is_dir() for p in folder.glob("*.yaml")})


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown data kind {kind!r} (accepted: {', '.join(KINDS)})")
    return kind


_CLAIM_FILE = re.compile(r"claim(\d+(?:-\d+)*)-(?=[a-z])")
"""A claim study's file name: ``claim<n>-<what>.yaml``, or ``claim<n>-<m>-<what>.yaml`` for one study
shared by several claims (the SAC study of claims 6 and 8)."""


def claim_numbers(name: str) -> tuple[int, ...]:
    """The claims a study file of ``studies/`` tests, from its name (none for a file of another name).

    Example:
        >>> claim_numbers("claim6-8-sac-optimizers-vs-adam.yaml"), claim_numbers("quickstart.yaml")
        ((6, 8), ())
    """
    match = _CLAIM_FILE.match(name)
    return tuple(int(n) for n in match.group(1).split("-")) if match else ()


def claim_file_names(names: Iterable[str], number: int) -> list[str]:
    """The study file names among ``names`` that test claim ``number``: its own first, then shared ones
    (what :func:`claim_files` lists of a folder, for names read elsewhere, e.g. from a git commit)."""
    found = [n for n in names if n.endswith(".yaml") and number in claim_numbers(n)]
    return sorted(found, key=lambda n: (len(claim_numbers(n)), n))


def claim_files(folder: Path, number: int) -> list[Path]:
    """The study files of ``folder`` that test claim ``number``: its own first, then shared ones."""
    return [folder / n for n in claim_file_names((p.name for p in folder.glob("claim*.yaml")), number)]
