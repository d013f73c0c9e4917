"""rlopt as a wheel: the data files ship inside it, and the CLI works from any folder without the source tree.

The slow test builds the wheel from a copy of the source tree (``pip wheel``, no network), installs it with
``pip install --target`` into a fresh folder, and drives ``rlopt`` from an empty folder with only that
folder on ``PYTHONPATH`` (the dependencies come from the test's own environment), checking first that
the ``rlopt`` imported is the wheel's and not the checkout's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from rlopt.config import data as data_files
from rlopt.config.yaml import StrictDumper, read_yaml
from rlopt.errors import ConfigError
from rlopt.run.folder import git_commit, source_checkout

REPO = Path(__file__).resolve().parent.parent
RUN_JSON = ("metrics", "versions", "config")
PIP_QUIET = ("--quiet", "--no-index", "--disable-pip-version-check")
SOURCES = ("pyproject.toml", "README.md", "rlopt", "agents", "envs", "studies")
"""What the build reads (the package, its metadata and the data folders the links point to)."""


def _shipped_files() -> dict[str, bytes]:
    """``rlopt/data/<kind>/<name>`` -> bytes, for every file of the top-level data folders."""
    return {
        f"rlopt/data/{kind}/{path.name}": path.read_bytes()
        for kind in data_files.KINDS
        for path in sorted((REPO / kind).glob("*.yaml"))
    }


def test_the_checkout_reads_its_top_level_folders_through_the_package() -> None:
    for kind in data_files.KINDS:
        assert data_files.shipped_dir(kind).resolve() == (REPO / kind).resolve()
    assert data_files.data_file("agents", "ppo.yaml").resolve() == REPO / "agents" / "ppo.yaml"


def test_git_commit_is_the_checkouts_head() -> None:
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True)
    assert source_checkout() == REPO
    assert git_commit() in (head.stdout.strip(), head.stdout.strip() + "-dirty")


def test_an_unknown_data_kind_and_a_bad_rlopt_data_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="unknown data kind 'agent'"):
        data_files.data_file("agent", "ppo.yaml")
    monkeypatch.setenv("RLOPT_DATA", str(REPO / "pyproject.toml"))
    with pytest.raises(ConfigError, match=r"^RLOPT_DATA='.*pyproject\.toml' is not a folder"):
        data_files.data_file("agents", "ppo.yaml")


def _run(*args: str | Path, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, f"{args}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def _tiny_study(wheel_studies: Path, folder: Path) -> Path:
    """The wheel's quickstart study, cut to one seed of 128 steps of an 8-unit PPO."""
    data = read_yaml(wheel_studies / "quickstart.yaml")
    data.update(
        name="wheel-quickstart",
        seeds=1,
        timesteps=128,
        evaluation={"every": 64, "episodes": 1},
        overrides={"n_steps": 64, "batch_size": 32, "n_epochs": 1, "policy_kwargs": {"net_arch": [8]}},
    )
    path = folder / "quick.yaml"
    path.write_text(yaml.dump(data, Dumper=StrictDumper, sort_keys=False))
    return path


@pytest.mark.slow
def test_the_wheel_carries_the_data_and_its_cli_runs_from_an_empty_folder(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(
                REPO / name, source / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy2(REPO / name, source / name)
    dist = tmp_path / "dist"
    _run(
        sys.executable, "-m", "pip", "wheel", *PIP_QUIET, "--no-deps", "--no-build-isolation",
        "--wheel-dir", dist, source,
        cwd=tmp_path, env=dict(os.environ),
    )  # fmt: skip
    (wheel,) = dist.glob("rlopt-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        inside = {name: zf.read(name) for name in zf.namelist() if name.startswith("rlopt/data/")}
    assert inside == _shipped_files()  # every YAML file, byte for byte, and nothing else

    site = tmp_path / "site"
    _run(
        sys.executable, "-m", "pip", "install", *PIP_QUIET, "--no-deps", "--no-compile",
        "--target", site, wheel,
        cwd=tmp_path, env=dict(os.environ),
    )  # fmt: skip
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("RLOPT_DATA", "PYTHONPATH")}
    env.update(PYTHONPATH=str(site), PYTHONWARNINGS="ignore")
    where = _run(
        sys.executable, "-c",
        "import rlopt, rlopt.config.data as d; print(rlopt.__file__); print(d.shipped_dir('agents'))",
        cwd=empty, env=env,
    ).stdout.splitlines()  # fmt: skip
    assert where == [str(site / "rlopt" / "__init__.py"), str(site / "rlopt" / "data" / "agents")]
    assert not (site / "rlopt" / "data" / "agents").is_symlink()

    rlopt = site / "bin" / "rlopt"
    listed = _run(rlopt, "optimizers", cwd=empty, env=env).stdout
    assert re.search(r"\badopt\b", listed) and re.search(r"\bdgclip\b", listed)

    _run(
        rlopt, "train", "--algo", "ppo", "--env", "InvertedPendulum-v5", "--timesteps", "128",
        "--set", "n_steps=64", "--set", "batch_size=32", "--set", "n_epochs=1",
        "--set", "policy_kwargs.net_arch=[8]", "--set", "learning_rate=3e-4",
        "--eval-freq", "64", "--eval-episodes", "1", "--run-dir", "run",
        "--no-progress",
        cwd=empty, env=env,
    )  # fmt: skip
    config = json.loads((empty / "run" / "config.json").read_text())
    assert config["agent"]["source"].startswith("rl-baselines3-zoo")  # the wheel's agents/ppo.yaml
    assert config["agent"]["hyperparameters"]["learning_rate"] == 0.0003
    assert json.loads((empty / "run" / "versions.json").read_text())["git_commit"] is None
    assert json.loads((empty / "run" / "metrics.json").read_text())["status"] == "ok"

    study = _tiny_study(site / "rlopt" / "data" / "studies", empty)
    _run(rlopt, "study", "run", study.name, "--no-plots", cwd=empty, env=env)
    runs = sorted(p.parent for p in (empty / "runs" / "wheel-quickstart").rglob("metrics.json"))
    assert len(runs) == 2  # adam and adopt, one seed each
    for run in runs:  # trained by the wheel's rlopt (the forkserver's too), from the wheel's agents/ppo.yaml
        metrics, versions, config = (json.loads((run / f"{n}.json").read_text()) for n in RUN_JSON)
        assert metrics["status"] == "ok" and versions["git_commit"] is None
        assert config["agent"]["source"].startswith("rl-baselines3-zoo")
