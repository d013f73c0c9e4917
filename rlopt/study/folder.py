"""The study folder's layout, defined once: study.json, study.yaml, the storage default."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from rlopt.config.storage import check_url
from rlopt.config.study import StudySpec
from rlopt.errors import ConfigError

log = logging.getLogger(__name__)

STUDY_JSON = "study.json"
STUDY_YAML = "study.yaml"
DEFAULT_STORAGE = "default"
IDENTITY_ATTR = "rlopt_identity"


@dataclass(frozen=True)
class StudyLocation:
    """Where a study's folder and storage are."""

    name: str
    study_dir: Path
    url: str
    default_storage: bool


def locate(spec: StudySpec, storage: str | None = None, runs_dir: str | Path = "runs") -> StudyLocation:
    """The study folder ``<runs_dir>/<name>`` and the storage: ``storage``, the file's, or the default."""
    study_dir = Path(runs_dir) / spec.name
    url = storage or spec.storage
    if url is None:
        return StudyLocation(spec.name, study_dir, default_url(study_dir), True)
    return StudyLocation(spec.name, study_dir, check_url(url), False)


log = logging.getLogger(__name__)

def find_study_dir(study: str | Path, runs_dir: str | Path = "runs") -> Path:
    """The folder of ``study``: a path to it, or its name under ``runs_dir``.

    Raises:
        ConfigError: neither holds a ``study.json``.
    """
    for candidate in (Path(study), Path(runs_dir) / str(study)):
        if (candidate / STUDY_JSON).is_file():
            return candidate
    raise ConfigError(f"no study at {str(study)!r} (accepted: a study folder holding {STUDY_JSON}, "
                      f"or a study name under {runs_dir}/)")


def default_url(study_dir: Path) -> str:
    """``sqlite:///<study_dir>/study.db`` (absolute, so it works from any working directory)."""
    return f"sqlite:///{(study_dir / 'study.db').resolve()}"
