"""Reading study files: :mod:`rlopt.yaml_loader`, the loader every rlopt file and option value uses.

Kept so ``from rlopt.study_yaml import read_yaml`` goes on working; new code imports
:mod:`rlopt.yaml_loader`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlopt import yaml_loader
from rlopt.yaml_loader import StrictLoader

StudyLoader = StrictLoader
"""The strict loader under its former name."""


def read_yaml(path: Path) -> Any:
    """The data of the study file at ``path`` (:func:`rlopt.yaml_loader.read_yaml`).

    Raises:
        ConfigError: the file is missing, unreadable, not UTF-8 text or not valid YAML (one line).
    """
    return yaml_loader.read_yaml(path, "study file")
