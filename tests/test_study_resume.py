"""Resuming a study checks that the stored study was made from the same file, before writing anything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _study_files import spec_with

from rlopt.config.study import parse_spec
from rlopt.errors import ConfigError
from rlopt.study.folder import locate
from rlopt.study.run import prepare


def test_resuming_with_a_changed_budget_is_refused_naming_the_key(tmp_path: Path) -> None:
    spec = parse_spec(spec_with())
    prepare(spec, locate(spec, runs_dir=tmp_path), "unit.yaml")
    prepare(parse_spec(spec_with(n_trials=1, pruner="median")), locate(spec, runs_dir=tmp_path), "unit.yaml")
    db = tmp_path / "unit" / "study.db"
    before = db.stat().st_mtime_ns
    changed = parse_spec(spec_with(timesteps=512))
    with pytest.raises(ConfigError, match=r"^unit\.yaml: timesteps: 512 here, 256 in the stored study"):
        prepare(changed, locate(changed, runs_dir=tmp_path), "unit.yaml")
    assert db.stat().st_mtime_ns == before


def test_run_folders_unknown_to_the_storage_are_refused(tmp_path: Path) -> None:
    spec = parse_spec(spec_with())
    (tmp_path / "unit" / "adam" / "trial_0000").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"holds runs of a study that storage .* does not know"):
        prepare(spec, locate(spec, runs_dir=tmp_path), "unit.yaml")
    assert not (tmp_path / "unit" / "study.db").exists()


def test_resuming_an_unchanged_study_leaves_its_study_json_as_it_was(tmp_path: Path) -> None:
    """A committed bundle of a complete study is not rewritten by resuming it (only ``updated`` differed)."""
    spec = parse_spec(spec_with())
    prepare(spec, locate(spec, runs_dir=tmp_path), "unit.yaml")
    meta_path = tmp_path / "unit" / "study.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "updated": "2000-01-01T00:00:00"}, indent=2) + "\n")
    kept = meta_path.read_bytes()
    prepare(spec, locate(spec, runs_dir=tmp_path), "unit.yaml")
    assert meta_path.read_bytes() == kept
    meta_path.write_text(json.dumps({**meta, "arms": {}, "updated": "2000-01-01T00:00:00"}))
    prepare(spec, locate(spec, runs_dir=tmp_path), "unit.yaml")
    rewritten = json.loads(meta_path.read_text())
    assert rewritten["arms"] == meta["arms"] and rewritten["updated"] != "2000-01-01T00:00:00"
