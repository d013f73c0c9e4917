"""Bad study files through the real command: exit code 2, one line naming file and key, nothing written."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from _study_files import run_rlopt

GOOD = """\
name: clitest
algorithm: ppo
tasks: [InvertedPendulum-v5]
seeds: 1
timesteps: 256
evaluation: {every: 128}
optimizers:
  - optimizer: adam
"""

CASES = [
    # (id, replace this text of GOOD, with this, fragments the error line must contain)
    ("unknown key", "seeds: 1", "seeds: 1\nsampeler: tpe", ["sampeler: unknown key", "accepted: name,"]),
    (
        "beta outside [0, 1)",
        "- optimizer: adam",
        "- {optimizer: adam, beta2: 1.5}",
        ["optimizers[0].beta2: 1.5", "0 <= beta < 1"],
    ),
    (
        "impossible range",
        "- optimizer: adam",
        "- {optimizer: adam, lr: {low: 1.0e-2, high: 1.0e-5}}",
        ["optimizers[0].lr: impossible range"],
    ),
    ("unknown optimizer", "- optimizer: adam", "- optimizer: adma", ["optimizers[0].optimizer", "accepted:"]),
    ("unknown task", "InvertedPendulum-v5", "InvertedPendulm-v5", ["tasks[0]: Unknown task", "accepted:"]),
    ("unknown sampler", "seeds: 1", "seeds: 1\nsampler: annealing", ["sampler: 'annealing'", "grid, tpe"]),
    ("unknown pruner", "seeds: 1", "seeds: 1\npruner: patience", ["pruner: 'patience'", "median"]),
    (
        "unreachable postgresql",
        "seeds: 1",
        "seeds: 1\nstorage: postgresql://nobody@127.0.0.1:1/none",
        ["storage: 'postgresql+psycopg2://nobody@127.0.0.1:1/none' is unreachable", "port 1 failed"],
    ),
    (
        "sqlite in a missing folder",
        "seeds: 1",
        "seeds: 1\nstorage: sqlite:////nonexistent/rlopt/x.db",
        ["storage: 'sqlite:////nonexistent/rlopt/x.db': folder /nonexistent/rlopt does not exist"],
    ),
    ("not YAML", "seeds: 1", "seeds: [1", ["not valid YAML at line"]),
    ("a billion seeds", "seeds: 1", "seeds: 1.0e9", ["seeds: 1000000000.0 is not accepted", "1 to 1,000)"]),
    ("a seed list too long", "seeds: 1", "seeds: [" + ", ".join(map(str, range(1001))) + "]",
     ["seeds: a list of 1001 seeds is not accepted", "at most 1000"]),
    ("budget 1e30", "timesteps: 256", "timesteps: 1.0e30",
     ["timesteps: 1e+30 is not accepted", "1 to 1,000,000,000"]),
    ("evaluation interval past the budget", "evaluation: {every: 128}", "evaluation: {every: 512}",
     ["evaluation.every: 512 is more than the budget of 256", "accepted: 1 to 256"]),
    ("setting label '..'", "- optimizer: adam", "- {optimizer: adam, settings: [{beta2: 0.99, label: '..'}]}",
     ["optimizers[0].settings[0].label: '..' is not accepted", "a letter or digit"]),
    ("setting label with a slash", "- optimizer: adam",
     "- {optimizer: adam, settings: [{beta2: 0.99, label: 'a/../b'}]}", ["label: 'a/../b' is not accepted"]),
    ("negative n_steps", "seeds: 1", "seeds: 1\noverrides: {n_steps: -5}",
     ["setting 'adam' on InvertedPendulum-v5: Invalid PPO setup", "n_steps=-5"]),
    ("net_arch as text", "seeds: 1", "seeds: 1\noverrides: {policy_kwargs: {net_arch: big}}",
     ["setting 'adam' on InvertedPendulum-v5: Invalid PPO setup"]),
    ("rollout past the budget", "seeds: 1", "seeds: 1\noverrides: {n_steps: 1000000000}",
     ["n_steps * n_envs = 1,000,000,000 is more than the budget of 256 env steps"]),
    ("in-memory sqlite", "seeds: 1", "seeds: 1\nstorage: 'sqlite://'",
     ["storage: 'sqlite://' is an in-memory"]),
    ("sqlite :memory:", "seeds: 1", "seeds: 1\nstorage: 'sqlite:///:memory:'", ["is an in-memory database"]),
    ("postgresql port not a number", "seeds: 1", "seeds: 1\nstorage: postgresql://u@127.0.0.1:abc/db",
     ["the port is not a number", "accepted: postgresql://user:password@host:5432/database"]),
    ("claim naming an optimizer the study lacks", "seeds: 1",
     "seeds: 1\nclaim: {statement: s, source: p, kind: better, candidate: {optimizer: adopt}, "
     "baseline: {optimizer: adam}}",
     ["claim.candidate.optimizer: 'adopt' is not an optimizer entry of this study", "accepted: adam"]),
    ("heartbeat too short for a loaded machine", "seeds: 1",
     "seeds: 1\nheartbeat: {interval: 1, grace_period: 4}",
     ["heartbeat.grace_period: 4 is too short", ">= 10 s"]),
]


@pytest.mark.parametrize(("replace", "by", "fragments"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_study_file_fails_in_one_line_and_writes_nothing(
    tmp_path: Path, replace: str, by: str, fragments: list[str]
) -> None:
    assert replace in GOOD
    (tmp_path / "bad.yaml").write_text(GOOD.replace(replace, by))
    result = run_rlopt("study", "run", "bad.yaml", "--runs-dir", "runs", cwd=tmp_path, quiet_warnings=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("rlopt: error: bad.yaml: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]  # no study folder, no database


def test_bad_storage_flag_names_the_flag(tmp_path: Path) -> None:
    (tmp_path / "ok.yaml").write_text(GOOD)
    result = run_rlopt(
        "study", "run", "ok.yaml", "--storage", "mongodb://db/x", cwd=tmp_path, quiet_warnings=False
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "rlopt: error: --storage: unsupported storage 'mongodb://db/x' "
        "(accepted: sqlite:///path/to/study.db or "
        "postgresql://user:password@host:port/database)"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.yaml"]


def test_missing_study_file_is_a_one_line_error(tmp_path: Path) -> None:
    result = run_rlopt("study", "run", "nope.yaml", cwd=tmp_path, quiet_warnings=False)
    assert (result.returncode, result.stderr.strip()) == (
        2,
        "rlopt: error: nope.yaml: no such study file (accepted: a path to a studies/*.yaml file)",
    )


@pytest.mark.parametrize(
    "typed",
    [
        ["study", "run", "s.yaml", "--storage", "postgresql://rl:s3cret@db.lab/optuna", "--workers", "2"],
        ["study", "run", "s.yaml", "--storage=postgresql://rl:s3cret@db.lab/optuna", "--workers", "2"],
    ],
)
def test_recorded_study_command_is_the_typed_one_without_the_storage_password(typed: list[str]) -> None:
    from rlopt.cli.main import build_parser
    from rlopt.cli.study import _command_line

    args = build_parser().parse_args(typed)
    args.argv = typed
    recorded = _command_line(args)
    import shlex

    assert recorded is not None and "s3cret" not in recorded
    words = shlex.split(recorded)
    assert words[:4] == ["rlopt", "study", "run", "s.yaml"] and words[-2:] == ["--workers", "2"]
    assert " ".join(words[4:-2]).replace("=", " ") == "--storage postgresql://rl:***@db.lab/optuna"


def _one_error_line(result: subprocess.CompletedProcess[str], code: int = 2) -> str:
    assert result.returncode == code, (result.returncode, result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_folder_given_as_study_file_is_named_as_a_folder(tmp_path: Path) -> None:
    (tmp_path / "studies").mkdir()
    line = _one_error_line(run_rlopt("study", "run", "studies", cwd=tmp_path, quiet_warnings=False))
    assert line == ("rlopt: error: studies: is a folder, not a study file "
                    "(accepted: a path to a studies/*.yaml)")


def test_runs_dir_that_is_a_file_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    (tmp_path / "ok.yaml").write_text(GOOD)
    (tmp_path / "runs").write_text("not a folder\n")
    line = _one_error_line(run_rlopt("study", "run", "ok.yaml", "--runs-dir", "runs", cwd=tmp_path,
                                     quiet_warnings=False))
    assert "cannot create" in line and "not a writable folder" in line, line
    assert (tmp_path / "runs").read_text() == "not a folder\n"


def test_sqlite_storage_pointing_at_a_text_file_is_refused_and_the_file_kept(tmp_path: Path) -> None:
    (tmp_path / "ok.yaml").write_text(GOOD)
    (tmp_path / "notes.txt").write_text("my notes\n")
    line = _one_error_line(run_rlopt("study", "run", "ok.yaml", "--storage", f"sqlite:///{tmp_path}/notes.txt",
                                     "--runs-dir", "runs", cwd=tmp_path, quiet_warnings=False))
    assert "notes.txt is not an SQLite database" in line, line
    assert (tmp_path / "notes.txt").read_text() == "my notes\n"
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("command", ["status", "report"])
@pytest.mark.parametrize("damage", ["missing study.db", "truncated study.db", "study.json without arms"])
def test_status_and_report_on_a_damaged_study_say_so_in_one_line_and_write_nothing(
    tmp_path: Path, command: str, damage: str
) -> None:
    study = tmp_path / "runs" / "broken"
    study.mkdir(parents=True)
    meta = {"name": "broken", "storage": "default", "arms": {"adam": "broken/adam"}}
    if damage == "study.json without arms":
        meta.pop("arms")
    (study / "study.json").write_text(json.dumps(meta))
    if damage == "truncated study.db":
        (study / "study.db").write_bytes(b"SQLite format 3\x00" + b"\x00" * 100)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    args = ["study", "status", str(study), "--no-plots"] if command == "status" else ["report", str(study)]
    line = _one_error_line(run_rlopt(*args, cwd=tmp_path, quiet_warnings=False))
    assert line.startswith("rlopt: error: "), line
    expected = {"missing study.db": "study.db does not exist", "truncated study.db": "cannot be read",
                "study.json without arms": "study.json is damaged"}[damage]
    assert expected in line, line
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


@pytest.mark.parametrize("command", ["train", "report"])
def test_an_output_folder_under_a_file_is_a_one_line_error_and_nothing_is_written(
    tmp_path: Path, command: str
) -> None:
    (tmp_path / "afile").write_text("mine\n")
    if command == "train":
        args = ["train", "--algo", "ppo", "--env", "InvertedPendulum-v5", "--timesteps", "64",
                "--run-dir", "afile/run"]
        expected = "rlopt: error: run folder 'afile/run': "
    else:
        study = tmp_path / "runs" / "s"
        study.mkdir(parents=True)
        (study / "study.json").write_text(json.dumps({"name": "s", "storage": "default", "arms": {}}))
        args = ["report", str(study), "--out", "afile"]
        expected = "rlopt: error: --out 'afile' is a file, not a folder"
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    line = _one_error_line(run_rlopt(*args, cwd=tmp_path, quiet_warnings=False))
    assert line.startswith(expected), line
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert (tmp_path / "afile").read_text() == "mine\n"


def test_a_study_file_with_an_early_error_is_refused_without_loading_torch(tmp_path: Path) -> None:
    # the error of a mistyped key, a seed count or a budget comes before anything needs torch, SB3 or
    # optuna (seconds of imports): the command refuses the file at once
    import sys

    (tmp_path / "bad.yaml").write_text(GOOD.replace("seeds: 1", "seeds: 1.0e9"))
    probe = (
        "import sys\n"
        "from rlopt.cli.main import main\n"
        "code = main(['study', 'run', 'bad.yaml', '--runs-dir', 'runs'])\n"
        "heavy = ('torch', 'stable_baselines3', 'optuna', 'scipy')\n"
        "print(code, sorted(m for m in heavy if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    assert "seeds: 1000000000.0 is not accepted" in result.stderr
    assert result.stdout.strip() == "2 []", result.stdout + result.stderr
