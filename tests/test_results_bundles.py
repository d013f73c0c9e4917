"""Every committed result bundle still loads and regenerates its verdicts, so a change of format can
never silently orphan the evidence (results/campaign/<study>/, written by scripts/campaign.py)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from _scripts import load_script
from _study_files import run_rlopt

from rlopt.analysis.load import load_runs
from rlopt.config.yaml import read_yaml

ROOT = Path(__file__).resolve().parent.parent
BUNDLES = sorted(p.parent for p in (ROOT / "results" / "campaign").glob("*/study.db"))


def _verdicts_section(markdown: str) -> str:
    start = markdown.index("## Verdicts")
    end = markdown.find("\n## ", start + 1)
    return markdown[start:end if end >= 0 else None].strip()


def test_the_campaign_has_committed_bundles() -> None:
    assert BUNDLES, "results/campaign/ holds no bundle (scripts/campaign.py snapshot writes them)"


@pytest.mark.parametrize("bundle", BUNDLES, ids=[b.name for b in BUNDLES])
def test_a_committed_bundle_loads_and_regenerates_its_verdict_table(bundle: Path, tmp_path: Path) -> None:
    copy = tmp_path / bundle.name  # never open the committed database itself: reading may write to it
    shutil.copytree(bundle, copy)
    records = load_runs(copy)
    progress = json.loads((bundle / "progress.json").read_text())
    finished = [r for r in records if r.metrics.get("status") in ("ok", "diverged")]
    assert len(finished) == progress["finished_total"]
    for record in finished:  # each finished run carries its config, versions (commit) and command
        for name in ("config.json", "versions.json", "command.txt", "eval.csv", "metrics.json"):
            assert (record.run_dir / name).is_file(), record.run_dir / name
        assert json.loads((record.run_dir / "versions.json").read_text())["git_commit"]

    exported = run_rlopt("study", "export", copy, "-o", tmp_path / "runs.csv", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert (tmp_path / "runs.csv").read_text() == (bundle / "runs.csv").read_text()

    study_file = ROOT / "studies" / f"{bundle.name}.yaml"
    committed = (bundle / "report" / "report.md").read_text()
    verdict = run_rlopt("verdict", study_file, bundle / "runs.csv", cwd=tmp_path)
    if "claim" not in read_yaml(study_file, "study file"):  # a sanity check: no claim, no verdict
        assert "No claim is declared for this study" in _verdicts_section(committed)
        assert verdict.returncode == 2 and "nothing to judge" in verdict.stderr, verdict.stderr[-2000:]
        return
    # a partial study's runs CSV holds only complete trials; its verdict is still the report's
    # (inconclusive for want of an arm's runs), and a line on stderr names the arms with none yet
    with (bundle / "runs.csv").open(newline="") as rows:  # an arm's label starts each run's label
        arms_in_csv = {row["label"].split()[0] for row in csv.DictReader(rows)}
    if len(arms_in_csv) < len({p.parent.name for p in bundle.glob("*/trial_*")}):
        assert "no runs yet of " in verdict.stderr and "partial: " in committed
    assert verdict.returncode == 0, verdict.stderr[-2000:]
    assert verdict.stdout.strip() == _verdicts_section(committed)


@pytest.mark.parametrize("bundle", BUNDLES, ids=[b.name for b in BUNDLES])
def test_a_committed_bundle_regenerates_its_table_of_runs(bundle: Path, tmp_path: Path) -> None:
    # progress.md (the per-run table that results/README.md quotes) is what the bundle's own run
    # folders say: no number in it can drift from the runs or be edited by hand unnoticed
    import subprocess
    import sys

    shutil.copytree(bundle, tmp_path / bundle.name, ignore=shutil.ignore_patterns("progress.md"))
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "campaign.py"), "progress", "--into",
                             str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    regenerated = (tmp_path / bundle.name / "progress.md").read_text()
    assert regenerated == (bundle / "progress.md").read_text()
    progress = json.loads((bundle / "progress.json").read_text())
    not_committed = [e for e in progress["in_flight"] if "evaluations" in e]  # listed apart, a row each
    run_folders = list(bundle.glob("*/trial_*/*/metrics.json"))
    assert regenerated.count("\n| `") == len(run_folders) + len(not_committed)
    assert f"{progress['finished_total']} finished run folders" in regenerated


def test_the_table_of_runs_names_a_run_copied_from_another_study(tmp_path: Path) -> None:
    # a run copied by `rlopt study run --reuse-runs-from` (metrics.json copied_from) says so in its row
    script = load_script("campaign")
    bundle = tmp_path / BUNDLES[0].name
    shutil.copytree(BUNDLES[0], bundle)
    assert "A copy was not trained again" not in script.write_progress_table(bundle).read_text()
    metrics_path = sorted(bundle.glob("*/trial_*/*/metrics.json"))[0]
    metrics = json.loads(metrics_path.read_text())
    metrics["copied_from"] = "other-study/adam/trial_0000/HalfCheetah-v5_seed0"
    metrics_path.write_text(json.dumps(metrics))
    table = script.write_progress_table(bundle).read_text()
    row = next(line for line in table.splitlines() if str(metrics_path.parent.relative_to(bundle)) in line)
    assert "(copy of `other-study/adam/trial_0000/HalfCheetah-v5_seed0`)" in row
    assert table.count("(copy of") == 1 and "A copy was not trained again" in table


def test_the_claims_tables_of_both_readmes_are_generated_from_the_bundles() -> None:
    # results/README.md and README.md show the same claims table, every cell from a study file or a
    # committed bundle: a stale or hand-edited table fails here (scripts/claims_table.py rewrites it)
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "claims_table.py"), "--check"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    from rlopt.config.data import claim_files

    tables = [p.read_text() for p in (ROOT / "results" / "README.md", ROOT / "README.md")]
    claim1 = claim_files(ROOT / "studies", 1)  # a row for each study of claim 1, each once
    for text in tables:
        assert text.count("\n| 1: ADOPT is competitive") == len(claim1) >= 1
        assert all(f"[{path.stem}](" in text or f"`studies/{path.name}`" in text for path in claim1)


def test_a_claim_without_data_in_a_study_still_training_shows_no_verdict() -> None:
    # the SAC study while its first trial (Adam) trains, or once Adam's runs count but no candidate's
    # do: "inconclusive: no task has finished runs of both arms" there would read as a result
    from rlopt.analysis.load import load_runs_untouched
    from rlopt.analysis.scores import normaliser_for
    from rlopt.analysis.verdict_table import judge
    from rlopt.config.study import load_spec

    script = load_script("claims_table")
    spec = load_spec(ROOT / "studies" / "claim6-8-sac-optimizers-vs-adam.yaml")
    bundle = ROOT / "results" / "campaign" / "claim3-adan-vs-adam-ppo"  # complete: Adam and Adan
    claim3_runs = load_runs_untouched(bundle)  # a committed bundle is never opened for writing
    adam = [r for r in claim3_runs if r.optimizer == "adam"]
    assert len(adam) == 10
    normaliser = normaliser_for(adam, suite=spec.suite)
    for records in ([], adam):
        verdicts = judge(list(spec.claim), records, normaliser=normaliser)
        assert len(verdicts) == 4 and all(v.interval is None for v in verdicts)
        assert all(script.verdict_cells(v, final=False) == ("—", "—") for v in verdicts)
        # once the study is complete the verdict stands, whatever it rests on
        verdict, effect = script.verdict_cells(verdicts[0], final=True)
        assert verdict == f"**{verdicts[0].outcome}**: {verdicts[0].reason}" and effect == "no data"
    # a verdict with data is shown while the study trains: an interim verdict, the state cell says so
    claim3 = load_spec(ROOT / "studies" / "claim3-adan-vs-adam-ppo.yaml")
    (with_data,) = judge(list(claim3.claim), claim3_runs, normaliser=normaliser)
    assert with_data.interval is not None
    verdict, effect = script.verdict_cells(with_data, final=False)
    assert verdict.startswith(f"**{with_data.outcome}**") and effect.startswith(with_data.measured)


def test_a_verdict_whose_own_runs_are_all_in_is_final_before_its_study_completes(tmp_path: Path) -> None:
    # claim 6's PPO study as it stood before AdamSSM's trial: AdaBelief's claim compares Adam's runs and
    # AdaBelief's only, so its verdict then is the complete study's, and the report says it is final
    from rlopt.analysis.load import load_runs_untouched
    from rlopt.analysis.progress import claim_progress
    from rlopt.analysis.scores import normaliser_for
    from rlopt.analysis.verdict_table import judge
    from rlopt.config.study import load_spec

    name = "claim6-adabelief-adamssm-vs-adam-ppo"
    spec = load_spec(ROOT / "studies" / f"{name}.yaml")
    runs = load_runs_untouched(ROOT / "results" / "campaign" / name)
    before = [r for r in runs if r.optimizer != "adamssm"]
    normaliser = normaliser_for(runs, suite=spec.suite)
    adabelief, adamssm = spec.claim
    assert claim_progress(spec, adabelief, before, normaliser).settled
    pending = claim_progress(spec, adamssm, before, normaliser)
    assert (pending.settled, pending.counted) == (False, 10)  # Adam's 10 of its 20
    early, late = (judge([adabelief], records, normaliser=normaliser)[0] for records in (before, runs))
    assert (early.outcome, early.interval, early.measured) == (late.outcome, late.interval, late.measured)

    copy = tmp_path / name
    shutil.copytree(ROOT / "results" / "campaign" / name, copy, ignore=shutil.ignore_patterns("report"))
    shutil.rmtree(copy / "adamssm")  # its trial's runs not here yet
    done = run_rlopt("report", copy, "--study-file", ROOT / "studies" / f"{name}.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    banner = (copy / "report" / "report.md").read_text().split("\n")[2]
    assert banner.startswith("> **Partial data (partial: 20 of 30 runs)")
    assert banner.endswith(f"this verdict is final all the same, every run it compares counting already: "
                           f"*{adabelief.statement}*.")


def test_the_multiplicity_check_the_readmes_quote_is_what_rlopt_verdict_computes(tmp_path: Path) -> None:
    # the SAC study's four claims are each at 95%; the results quote their intervals under a Bonferroni
    # correction over the four, from a committed claim file, so the text cannot go stale
    import dataclasses
    import re

    from rlopt.config.claims import claims_from_config
    from rlopt.config.study import load_spec

    name = "claim6-8-sac-optimizers-vs-adam"
    study = {c.statement: c for c in load_spec(ROOT / "studies" / f"{name}.yaml").claim}
    check = ROOT / "results" / "checks" / "claim6-8-sac-bonferroni.yaml"
    corrected = claims_from_config(read_yaml(check, "claim file"))
    assert len(corrected) == len(study)  # the study is complete: every claim has its runs
    for claim in corrected:  # the study's claim, at 1 - 0.05 / 4
        assert claim.confidence == pytest.approx(1 - (1 - study[claim.statement].confidence) / len(study))
        assert dataclasses.replace(claim, source="", confidence=0.95) == dataclasses.replace(
            study[claim.statement], source="", paper_says="", confidence=0.95)

    done = run_rlopt("verdict", check, ROOT / "results" / "campaign" / name / "runs.csv", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    def claim_rows(markdown: str) -> dict[str, str]:  # verdict table rows by their claim's statement
        return {row.split(" | ")[0].lstrip("| "): row for row in _verdicts_section(markdown).splitlines()
                if row.startswith("| ") and " | " in row}

    rows = claim_rows(done.stdout)
    report = (ROOT / "results" / "campaign" / name / "report" / "report.md").read_text()
    reproduced_at_95 = {statement for statement, row in claim_rows(report).items()
                        if "| **reproduced** (" in row}
    for claim in corrected:
        row = rows[claim.statement]
        found = re.search(r"difference \+ margin [+-][0-9.]+ \[([+-]?[0-9.]+), ([+-]?[0-9.]+)\]", row)
        assert found and "98.75% CI" in row, row
        low, high = (float(v) for v in found.groups())
        quoted = f"[{low:+.3f}, {high:+.3f}]".replace("-", "\u2212")
        readmes = ["results/README.md"] + (["README.md"] if claim.statement in reproduced_at_95 else [])
        for readme in readmes:
            assert quoted in (ROOT / readme).read_text(), f"{readme} lacks {quoted} ({claim.statement})"
    assert "AdamSSM is competitive with Adam in SAC on MuJoCo" in reproduced_at_95


def test_a_bad_pins_file_fails_the_claims_table_in_one_line_and_writes_nothing(tmp_path: Path) -> None:
    # the table names each study's stage from results/campaign/pins.yaml, read by the same validating
    # reader as scripts/resume_campaign.py (rlopt.config.pins)
    import subprocess
    import sys

    from rlopt.errors import ConfigError

    pins = tmp_path / "pins.yaml"
    pins.write_text("stages:\n  - {tag: campaign-9, commit: ff5805c, claims: [3]}\n")
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "claims_table.py"), "--check",
                           "--pins", str(pins)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert "stages[0].commit: 'ff5805c'" in done.stderr and "accepted" in done.stderr
    readme = tmp_path / "README.md"
    stale = (ROOT / "results" / "README.md").read_text().replace("| 20 of 20 (complete) |", "| edited |")
    readme.write_text(stale)
    with pytest.raises(ConfigError, match=r"stages\[0\]\.commit"):
        load_script("claims_table").stale_files({readme: ""}, write=True, pins=pins)
    assert readme.read_text() == stale


def test_an_edited_claims_table_is_caught_and_rewritten(tmp_path: Path) -> None:
    script = load_script("claims_table")
    readme = tmp_path / "README.md"
    committed = (ROOT / "results" / "README.md").read_text()
    edited = committed.replace("| 20 of 20 (complete) |", "| 20 of 20 (complete, and reproduced) |")
    assert edited != committed
    readme.write_text(edited)
    assert script.stale_files({readme: ""}, write=True) == [readme]
    assert readme.read_text() == committed
    assert script.stale_files({readme: ""}, write=False) == []
    readme.write_text("no markers here\n")
    with pytest.raises(SystemExit, match=r"has no .* markers"):
        script.stale_files({readme: ""}, write=False)
