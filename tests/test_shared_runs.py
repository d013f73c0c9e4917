"""Runs shared between studies (``rlopt study run --reuse-runs-from``, rlopt.study.shared_runs): a run
another study finished with the same config, code and versions is copied, not trained; anything else
trains.

The real ``rlopt`` runs from a committed copy of this checkout's package (a git repository made by the
test), so the runs' code is a clean commit whatever the state of the working tree under test."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _study_files import arm_trials, write_study

from rlopt.study.shared_runs import run_match

ROOT = Path(__file__).resolve().parent.parent
SHARED = """\
  - optimizer: adam
  - optimizer: adopt
"""
"""Study ``first``: Adam and ADOPT."""
PARTLY_SHARED = """\
  - optimizer: adam
  - optimizer: adam
    label: adam-b2
    beta2: 0.99
"""
"""Study ``second``: the same Adam arm, and one no other study has."""


@pytest.fixture(scope="module")
def committed_rlopt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git repository holding this checkout's package and data as one clean commit."""
    repo = tmp_path_factory.mktemp("committed")
    for name in ("rlopt", "agents", "envs", "studies"):
        shutil.copytree(ROOT / name, repo / name, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", repo / "pyproject.toml")
    for command in (["init", "-q"], ["add", "-A"],
                    ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "rlopt under test"]):
        subprocess.run(["git", *command], cwd=repo, check=True, capture_output=True)
    return repo


def _rlopt(repo: Path, *args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(repo), "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "rlopt", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def _runs(study: Path) -> dict[str, Path]:
    return {str(p.parent.relative_to(study)): p.parent for p in sorted(study.rglob("metrics.json"))}


@pytest.mark.slow
def test_a_run_another_study_finished_is_copied_and_the_others_train(committed_rlopt: Path,
                                                                     tmp_path: Path) -> None:
    first = write_study(tmp_path, "first", SHARED)
    second = write_study(tmp_path, "second", PARTLY_SHARED)
    done = _rlopt(committed_rlopt, "study", "run", first, "--no-plots", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    commit = json.loads(next(iter(_runs(tmp_path / "runs" / "first").values()))
                        .joinpath("versions.json").read_text())["git_commit"]
    assert commit and not commit.endswith("-dirty")  # the runs' code is the test's clean commit

    (tmp_path / "bundles").mkdir()  # folders are searched in turn: the first has nothing to share
    done = _rlopt(committed_rlopt, "study", "run", second, "--no-plots", "--reuse-runs-from", "bundles",
                  "--reuse-runs-from", "runs", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    firsts, seconds = _runs(tmp_path / "runs" / "first"), _runs(tmp_path / "runs" / "second")
    copied = {name: json.loads((run / "metrics.json").read_text()).get("copied_from")
              for name, run in seconds.items()}
    adam = [n for n in seconds if n.startswith("adam/")]
    assert len(adam) == 2 and len(seconds) == 4
    for name in adam:  # the same run in both studies: copied, with the same evaluations
        assert copied[name] == f"first/{name}"
        assert (seconds[name] / "eval.csv").read_bytes() == (firsts[name] / "eval.csv").read_bytes()
        assert "copied_from" not in json.loads((firsts[name] / "metrics.json").read_text())
    assert all(copied[n] is None for n in seconds if n.startswith("adam-b2/"))  # trained here
    assert done.stderr.count("copying the finished run") == 2
    assert "adam trial 0 (adam): 2 runs, 2 copied from another study" in done.stderr
    url = f"sqlite:///{tmp_path / 'runs'}"
    value = {s: arm_trials(f"{url}/{s}/study.db", s, "adam")[0].value for s in ("first", "second")}
    assert value["first"] == value["second"] is not None

    # A run that is the same but for its code (a changed tracked file: a dirty tree) trains again.
    (committed_rlopt / "rlopt" / "__init__.py").write_text(
        (committed_rlopt / "rlopt" / "__init__.py").read_text() + "\n# changed\n")
    third = write_study(tmp_path, "third", PARTLY_SHARED)
    done = _rlopt(committed_rlopt, "study", "run", third, "--no-plots", "--reuse-runs-from", "runs",
                  cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    thirds = _runs(tmp_path / "runs" / "third")
    assert len(thirds) == 4 and "copying" not in done.stderr
    assert all("copied_from" not in json.loads((r / "metrics.json").read_text()) for r in thirds.values())


def test_a_missing_reuse_folder_is_one_line_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    study = write_study(tmp_path, "unit", SHARED)
    done = subprocess.run([sys.executable, "-m", "rlopt", "study", "run", str(study), "--reuse-runs-from",
                           "nowhere"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "--reuse-runs-from nowhere" in done.stderr, done.stderr
    assert "accepted" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["unit.yaml"]


CONFIG = {"algo": "ppo", "env": "Hopper-v5", "seed": 0, "timesteps": 1000, "n_envs": 1, "device": "cpu",
          "threads": 1, "agent": {"a": 1}, "evaluation": {"freq": 500, "episodes": 2, "deterministic": True},
          "optimizer": {"name": "adam", "lr": 3e-4, "class": "x"}}
VERSIONS = {"python": "3.11.7", "platform": "Linux-a", "torch": "2.13.0", "git_commit": "a" * 40}


@pytest.mark.parametrize(("config", "versions", "same"), [
    ({}, {"platform": "Linux-b"}, True),  # another kernel: the same run
    ({"optimizer": {"name": "adam", "lr": 3e-4, "class": "y"}}, {}, True),  # a describing entry
    ({"threads": 2}, {}, False),
    ({"device": "cuda"}, {}, False),
    ({"seed": 1}, {}, False),
    ({"evaluation": {"freq": 250, "episodes": 2, "deterministic": True}}, {}, False),
    ({}, {"torch": "2.12.0"}, False),
    ({}, {"git_commit": "b" * 40}, False),
], ids=["platform", "descriptive", "threads", "device", "seed", "evaluation", "torch", "commit"])
def test_what_makes_two_runs_the_same_run(config: dict[str, object], versions: dict[str, object],
                                          same: bool) -> None:
    reference = run_match(CONFIG, VERSIONS)
    other = run_match({**CONFIG, **config}, {**VERSIONS, **versions})
    assert reference is not None and other is not None
    assert (json.dumps(other, sort_keys=True) == json.dumps(reference, sort_keys=True)) is same


@pytest.mark.parametrize("commit", ["a" * 40 + "-dirty", None, ""], ids=["dirty", "installed", "empty"])
def test_code_no_clean_commit_names_shares_nothing(commit: str | None) -> None:
    assert run_match(CONFIG, {**VERSIONS, "git_commit": commit}) is None


def test_a_copy_in_the_making_is_never_a_source_and_a_killed_ones_leftovers_go(tmp_path: Path) -> None:
    from rlopt.study.shared_runs import COPIED_FROM, copy_shared_run, finished_runs

    # a committed finished run trained in its own folder: a copy's copy names the original (tested below)
    committed = next(run for run in finished_runs(ROOT / "results" / "campaign").values()
                     if COPIED_FROM not in json.loads((run / "metrics.json").read_text()))
    root = tmp_path / "runs"
    source = root / "first" / "adam" / "trial_0000" / committed.name
    shutil.copytree(committed, source)
    (source / "checkpoint.pt").write_bytes(b"")
    assert finished_runs(root) == {}  # a run with a checkpoint is still training
    (source / "checkpoint.pt").unlink()
    shutil.copytree(source, source.with_name(f".{source.name}.copy-0000"))  # a killed copy's leftover
    assert list(finished_runs(root).values()) == [source]

    target = root / "second" / "adam" / "trial_0000" / committed.name
    target.parent.mkdir(parents=True)
    shutil.copytree(source, target.with_name(f".{target.name}.copy-1111"))
    copy_shared_run(source, target, root)
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]
    metrics = json.loads((target / "metrics.json").read_text())
    assert metrics["copied_from"] == f"first/adam/trial_0000/{committed.name}"
    assert (target / "eval.csv").read_bytes() == (source / "eval.csv").read_bytes()
    again = root / "third" / "adam" / "trial_0000" / committed.name
    copy_shared_run(target, again, root)  # a copy of a copy names the original
    assert json.loads((again / "metrics.json").read_text())["copied_from"] == metrics["copied_from"]
