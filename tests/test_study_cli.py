"""Bad study files through the real command: exit code 2, one line naming file and key, nothing written."""

from __future__ import annotations

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
    from rlopt.cli import build_parser
    from rlopt.commands.study import _command_line

    args = build_parser().parse_args(typed)
    args.argv = typed
    recorded = _command_line(args)
    import shlex

    assert recorded is not None and "s3cret" not in recorded
    words = shlex.split(recorded)
    assert words[:4] == ["rlopt", "study", "run", "s.yaml"] and words[-2:] == ["--workers", "2"]
    assert " ".join(words[4:-2]).replace("=", " ") == "--storage postgresql://rl:***@db.lab/optuna"
