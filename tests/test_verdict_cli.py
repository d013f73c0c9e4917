"""`rlopt verdict CLAIM RUNS.csv` and `rlopt study export`: bad CSVs, references, and a real tiny study."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from _study_files import run_rlopt, write_study

from rlopt.analysis.runs_csv import read_runs_csv
from rlopt.analysis.scores import normaliser_for
from rlopt.cli.main import main
from rlopt.cli.verdict import parse_references
from rlopt.errors import ConfigError

CLAIM = """\
statement: ADOPT beats Adam
source: Taniguchi et al. 2024
kind: better
candidate: {optimizer: adopt}
baseline: {optimizer: adam}
paper_timesteps: 1000000
"""


def write_csv(path: Path, rows: list[dict[str, object]], columns: list[str] | None = None) -> Path:
    columns = columns or list(rows[0])
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def constructed_rows(candidate_final: float = 800.0) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for optimizer, final in (("adam", 300.0), ("adopt", candidate_final)):
        for task in ("Hopper-v5", "Walker2d-v5"):
            for seed in range(5):
                for step, fraction in ((1000, 0.0), (2000, 0.5), (3000, 1.0)):
                    value = 20.0 + fraction * (final + 7 * seed)
                    rows.append(
                        {"task": task, "seed": seed, "optimizer": optimizer, "step": step, "return": value}
                    )
    return rows


@pytest.fixture
def claim_file(tmp_path: Path) -> Path:
    path = tmp_path / "claim.yaml"
    path.write_text(CLAIM)
    return path


def test_verdict_prints_the_table_for_a_csv_of_another_library(
    tmp_path: Path, claim_file: Path, capsys: pytest.CaptureFixture
) -> None:
    runs = write_csv(tmp_path / "runs.csv", constructed_rows())
    assert main(["verdict", str(claim_file), str(runs), "--resamples", "300"]) == 0
    out = capsys.readouterr()
    assert out.out.startswith("## Verdicts\n")
    row = next(line for line in out.out.splitlines() if line.startswith("| ADOPT beats Adam |"))
    assert row.endswith("| **reproduced** (sub-budget: 3,000 steps per run, 0.3% of the paper's 1,000,000) |")
    assert "known suites" in out.err and "20 runs" in out.err


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ("drop-return", "missing column 'return' (required: task, seed, optimizer, step, return"),
        ("text-return", "column 'return' must be a number, got 'high'"),
        ("no-adopt", "the candidate (optimizer=adopt) matches no run in"),
        ("text-seed", "column 'seed' must be an integer, got '1.5'"),
    ],
)
def test_bad_csvs_are_one_line_errors_naming_the_column_or_arm(
    tmp_path: Path, claim_file: Path, capsys: pytest.CaptureFixture, change: str, match: str
) -> None:
    rows = constructed_rows()
    columns = list(rows[0])
    if change == "drop-return":
        columns.remove("return")
    elif change == "text-return":
        rows[7]["return"] = "high"
    elif change == "no-adopt":
        rows = [r for r in rows if r["optimizer"] != "adopt"]
    elif change == "text-seed":
        rows[3]["seed"] = "1.5"
    runs = write_csv(tmp_path / "runs.csv", rows, columns)
    assert main(["verdict", str(claim_file), str(runs)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rlopt: error: ") and match in err and err.count("\n") == 1


def test_references_override_the_suite_and_unknown_tasks_fall_back_to_the_runs(tmp_path: Path) -> None:
    rows = constructed_rows()
    for row in rows:
        if row["task"] == "Walker2d-v5":
            row["task"] = "MyTask-v0"
    records = read_runs_csv(write_csv(tmp_path / "runs.csv", rows))
    assert "min–max" in normaliser_for(records, {}).source
    given = normaliser_for(records, parse_references(["MyTask-v0=20,1020", "Hopper-v5=0,100"]))
    assert given.bounds == {"Hopper-v5": (0.0, 100.0), "MyTask-v0": (20.0, 1020.0)}
    with pytest.raises(ConfigError, match="is not TASK=RANDOM,REFERENCE"):
        parse_references(["Hopper-v5=1"])


def test_verdict_on_a_study_file_takes_the_references_of_its_suite(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    suite = tmp_path / "own.yaml"  # references unlike those of the first known suite listing the tasks
    entry = ("{timesteps: 3000, eval_freq: 1000, eval_episodes: 1, random_return: 0, random_source: x, "
             "reference_return: 100, reference_source: own refs}")
    suite.write_text(f"name: own\ntasks:\n  Hopper-v5: {entry}\n  Walker2d-v5: {entry}\n")
    study = tmp_path / "study.yaml"
    claim = "".join(f"    {line}\n" if i else f"  - {line}\n" for i, line in enumerate(CLAIM.splitlines()))
    study.write_text(f"name: s\nalgorithm: ppo\nsuite: {suite}\nseeds: 5\n"
                     f"optimizers: [{{optimizer: adam}}, {{optimizer: adopt}}]\nobjective: normalized_auc\n"
                     f"claim:\n{claim}")
    runs = write_csv(tmp_path / "runs.csv", constructed_rows())
    assert main(["verdict", str(study), str(runs), "--resamples", "300"]) == 0
    assert "reference return (suite own) (own refs)" in capsys.readouterr().err


def _study_of_adam_and_adopt(tmp_path: Path, optimizers: str = "[{optimizer: adam}, {optimizer: adopt}]"
                             ) -> Path:
    claim = "".join(f"    {line}\n" if i else f"  - {line}\n" for i, line in enumerate(CLAIM.splitlines()))
    study = tmp_path / "study.yaml"
    study.write_text(f"name: s\nalgorithm: ppo\ntasks: [Hopper-v5, Walker2d-v5]\ntimesteps: 3000\n"
                     f"evaluation: {{every: 1000, episodes: 1}}\nseeds: 5\noptimizers: {optimizers}\n"
                     f"objective: normalized_auc\n"
                     f"claim:\n{claim}")
    return study


@pytest.mark.parametrize("kept", ["adam", "none"])
def test_a_study_whose_arm_has_no_runs_yet_is_inconclusive_not_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture, kept: str
) -> None:
    # a campaign's runs CSV holds only complete trials: while one arm's trial runs, the other arm's
    # runs (or none) are all there is, and the verdict is the report's: inconclusive for want of runs
    rows = [r for r in constructed_rows() if r["optimizer"] == kept]
    runs = write_csv(tmp_path / "runs.csv", rows, ["task", "seed", "optimizer", "step", "return"])
    assert main(["verdict", str(_study_of_adam_and_adopt(tmp_path)), str(runs), "--resamples", "300"]) == 0
    out = capsys.readouterr()
    row = next(line for line in out.out.splitlines() if line.startswith("| ADOPT beats Adam |"))
    why = "no task has finished runs of both arms" if rows else "no evaluated runs"
    assert "**inconclusive at this budget**" in row and why in out.out
    assert "no runs yet of optimizer=adopt" in out.err and ("optimizer=adam" in out.err) == (not rows)


def test_a_study_file_is_validated_whole_and_a_csv_of_none_of_its_arms_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    rows = [dict(r, optimizer=f"sgd-{r['optimizer']}") for r in constructed_rows()]
    runs = write_csv(tmp_path / "runs.csv", rows)
    assert main(["verdict", str(_study_of_adam_and_adopt(tmp_path)), str(runs)]) == 2
    err = capsys.readouterr().err
    assert "none of its 20 runs is of an arm of the claims (optimizer=adopt; optimizer=adam)" in err
    assert err.count("\n") == 1
    # a claim naming an arm the study does not run is the study file's error, as rlopt study run says
    study = _study_of_adam_and_adopt(tmp_path, optimizers="[{optimizer: adam}]")
    assert main(["verdict", str(study), str(write_csv(tmp_path / "ok.csv", constructed_rows()))]) == 2
    err = capsys.readouterr().err
    assert "'adopt' is not an optimizer entry of this study" in err and err.count("\n") == 1



def test_a_study_file_with_no_claim_is_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture
                                                           ) -> None:
    # a study that tests no claim (the campaign's sanity check) has nothing to judge: said as such, not
    # as a claim mapping with unknown keys
    study = _study_of_adam_and_adopt(tmp_path)
    study.write_text(study.read_text().split("claim:\n")[0])
    assert main(["verdict", str(study), str(write_csv(tmp_path / "ok.csv", constructed_rows()))]) == 2
    err = capsys.readouterr().err
    assert f"{study}: a study file with no 'claim:' section: nothing to judge" in err
    assert err.count("\n") == 1


def test_a_study_with_sequential_seeds_is_judged_at_its_per_look_confidence(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # as the study judged each look and as its report says: 95% spent over 2 looks is 97.5% per look
    runs = write_csv(tmp_path / "runs.csv", constructed_rows())
    fixed = _study_of_adam_and_adopt(tmp_path)
    assert main(["verdict", str(fixed), str(runs), "--resamples", "300"]) == 0
    assert "brackets: 95% CI" in capsys.readouterr().out
    sequential = tmp_path / "sequential.yaml"
    sequential.write_text(fixed.read_text().replace("seeds: 5\n", "seeds: {initial: 3, max: 5, step: 2}\n"))
    assert main(["verdict", str(sequential), str(runs), "--resamples", "300"]) == 0
    out = capsys.readouterr().out
    assert "brackets: 97.5% CI" in out and "95% CI" not in out.replace("97.5% CI", "")

STUDY_CLAIM = """\
claim:
  - statement: ADOPT beats Adam
    source: Taniguchi et al. 2024
    kind: better
    candidate: {optimizer: adopt}
    baseline: {optimizer: adam}
    min_runs: 2
  - statement: ADOPT has fewer instabilities than Adam
    source: test
    kind: fewer_instabilities
    candidate: {optimizer: adopt}
    baseline: {optimizer: adam}
    min_runs: 2
  - statement: ADOPT is competitive with Adam
    source: test
    kind: competitive
    metric: auc
    candidate: {optimizer: adopt}
    baseline: {optimizer: adam}
    margin: 0.5
    min_runs: 2
    min_gain: 0
"""


@pytest.mark.slow
def test_verdict_on_an_exported_real_study_reproduces_the_report(tmp_path: Path) -> None:
    """Real PPO runs on InvertedPendulum-v5: run, report, export, then judge the export."""
    study = write_study(
        tmp_path,
        "verdict-export",
        "  - optimizer: adam\n  - optimizer: adopt\n",
        seeds=3,
        timesteps=384,
        extra=STUDY_CLAIM,
    )
    ran = run_rlopt("study", "run", study, "--no-plots", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr[-2000:]
    report = run_rlopt("report", "verdict-export", "--resamples", "300", cwd=tmp_path)
    assert report.returncode == 0, report.stderr[-2000:]
    exported = run_rlopt("study", "export", "verdict-export", "-o", "runs.csv", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert "wrote 6 runs to runs.csv" in exported.stdout
    header = (tmp_path / "runs.csv").read_text().splitlines()[0].split(",")
    assert header[:5] == ["task", "seed", "optimizer", "step", "return"]
    verdict = run_rlopt("verdict", study, "runs.csv", "--resamples", "300", cwd=tmp_path)
    assert verdict.returncode == 0, verdict.stderr[-2000:]
    md = (tmp_path / "runs" / "verdict-export" / "report" / "report.md").read_text()
    section = md[md.index("## Verdicts") : md.index("\n## ", md.index("## Verdicts") + 1) + 1]
    assert verdict.stdout.strip() == section.strip()
    assert section.count("| **") == 3


def test_export_of_a_missing_study_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["study", "export", str(tmp_path / "nope"), "-o", str(tmp_path / "x.csv")]) == 2
    assert "rlopt: error: no study at" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()
