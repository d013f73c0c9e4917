"""``scripts/resume_campaign.py``: the campaign's stages resumed with one command, driven as a user does.

The stages are real commits of this repository (those of the committed ``results/campaign/pins.yaml``),
the bundles real committed ones, copied (and cut) into a temporary folder; ``--dry-run`` keeps the
tests from installing venvs and training, and each test checks that it wrote nothing."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "resume_campaign.py"
BUNDLES = ROOT / "results" / "campaign"
STAGES = yaml.safe_load((BUNDLES / "pins.yaml").read_text())["stages"]
FIRST = STAGES[0]["commit"]
"""The first stage's commit: its scripts/campaign.py predates --studies, so it is given --claims."""
HEAD = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                      text=True).stdout.strip()
CLAIM1 = "claim1-adopt-vs-adam-ppo"


def _resume(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def _pins(folder: Path, stages: object) -> Path:
    path = folder / "pins.yaml"
    path.write_text(yaml.safe_dump({"stages": stages}))
    return path


def _tags() -> str:
    return subprocess.run(["git", "-C", str(ROOT), "tag", "-l"], capture_output=True, text=True).stdout


@pytest.fixture()
def into(tmp_path: Path) -> Path:
    """A results folder holding a copy of the complete claim-1 bundle."""
    folder = tmp_path / "results"
    shutil.copytree(BUNDLES / CLAIM1, folder / CLAIM1)
    return folder


def test_a_complete_stage_is_skipped_and_an_unstarted_one_planned(tmp_path: Path, into: Path) -> None:
    worktrees = tmp_path / "worktrees"
    worktrees.mkdir()
    pins = _pins(tmp_path, [{"tag": "t-done", "commit": FIRST, "claims": [1]},
                            {"tag": "t-next", "commit": FIRST, "claims": [3]}])
    tags = _tags()
    result = _resume("--pins", pins, "--into", into, "--worktrees", worktrees, "--parallel-runs", "2",
                     "--dry-run")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    counted = re.search(rf"t-done: claim 1: {CLAIM1}: runs that count (\d+) of (\d+) \(complete\)", out)
    assert counted and counted[1] == counted[2], out
    assert "t-done: complete" in out
    assert re.search(r"t-next: claim 3: claim3-adan-vs-adam-ppo: runs that count not started \(0 of \d+\)",
                     out)
    assert f"worktree add --detach {worktrees / 'rlopt-t-next'} {FIRST}" in out
    assert f"-m venv {worktrees / 'rlopt-t-next' / '.venv'}" in out
    assert out.rstrip().endswith(f"scripts/campaign.py run --claims 3 --into {into} --parallel-runs 2")
    assert "rlopt-t-done" not in out  # a complete stage needs no checkout
    assert list(worktrees.iterdir()) == [] and _tags() == tags  # a dry run makes nothing


def test_a_study_with_a_run_missing_is_resumed_from_its_stage(tmp_path: Path, into: Path) -> None:
    run = sorted((into / CLAIM1).glob("adopt/trial_*/*/metrics.json"))[0].parent
    shutil.rmtree(run)  # its trial is complete, but the run is gone: 19 runs count
    pins = _pins(tmp_path, [{"tag": "t-one", "commit": FIRST, "claims": [1, 2]}])
    result = _resume("--pins", pins, "--into", into, "--worktrees", tmp_path, "--dry-run")
    assert result.returncode == 0, result.stderr
    counted = re.search(rf"t-one: claim 1: {CLAIM1}: runs that count (\d+) of (\d+) \(partial\)",
                        result.stdout)
    assert counted and int(counted[1]) == int(counted[2]) - 1, result.stdout
    # claim 2 has no bundle in this folder: both claims train, in the stage's order
    assert result.stdout.rstrip().endswith(f"run --claims 1,2 --into {into}")


def test_a_later_stage_names_only_the_unfinished_studies_of_a_claim(tmp_path: Path, into: Path) -> None:
    """At HEAD claim 1 has two studies: the first is complete (its bundle is in ``into``), so the stage
    trains only the second, by name, and never opens the complete one with its later code."""
    pins = _pins(tmp_path, [{"tag": "t-head", "commit": HEAD, "claims": [1]}])
    result = _resume("--pins", pins, "--into", into, "--worktrees", tmp_path, "--dry-run")
    assert result.returncode == 0, result.stderr
    complete = rf"t-head: claim 1: {CLAIM1}: runs that count \d+ of \d+ \(complete\)"
    assert re.search(complete, result.stdout), result.stdout
    assert result.stdout.rstrip().endswith(f"run --studies {CLAIM1}-ant-lr-decay --into {into}"), \
        result.stdout



def test_a_stage_trains_the_studies_it_names_after_its_claims(tmp_path: Path, into: Path) -> None:
    """A study that tests no claim (the SAC sanity check) is named in ``studies:``; it trains after the
    stage's claims, by name, and its state is said as a claim's is."""
    pins = _pins(tmp_path, [{"tag": "t-head", "commit": HEAD, "claims": [1],
                             "studies": ["sanity-sac-halfcheetah"]}])
    result = _resume("--pins", pins, "--into", into, "--worktrees", tmp_path, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "t-head: sanity-sac-halfcheetah: runs that count not started (0 of 2)" in result.stdout
    assert result.stdout.rstrip().endswith(
        f"run --studies {CLAIM1}-ant-lr-decay,sanity-sac-halfcheetah --into {into}"), result.stdout
    # a stage of named studies alone, once the study is complete, is skipped
    shutil.rmtree(into / CLAIM1)
    pins = _pins(tmp_path, [{"tag": "t-named", "commit": HEAD, "studies": [CLAIM1]}])
    shutil.copytree(BUNDLES / CLAIM1, into / CLAIM1)
    result = _resume("--pins", pins, "--into", into, "--worktrees", tmp_path, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert re.search(rf"t-named: {CLAIM1}: runs that count \d+ of \d+ \(complete\)", result.stdout)
    assert result.stdout.rstrip().endswith("t-named: complete"), result.stdout

def test_an_existing_checkout_of_the_stage_is_reused(tmp_path: Path, into: Path) -> None:
    pins = _pins(tmp_path, [{"tag": "t-here", "commit": FIRST, "claims": [3]}])
    checkout = tmp_path / "rlopt-t-here"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(checkout), FIRST],
                   check=True, capture_output=True)
    try:
        result = _resume("--pins", pins, "--into", into, "--worktrees", tmp_path, "--dry-run")
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(checkout)],
                       check=True, capture_output=True)
    assert result.returncode == 0, result.stderr
    assert "worktree add" not in result.stdout  # the checkout is there
    assert f"-m venv {checkout / '.venv'}" in result.stdout  # but it has no venv yet


def test_a_checkout_with_its_venv_is_used_as_it_is(tmp_path: Path, into: Path) -> None:
    """This checkout stands in for a stage's: a link named as the stage's checkout, at its HEAD."""
    if not (ROOT / ".venv" / "bin" / "python").is_file():
        pytest.skip("this checkout has no .venv (the README's set-up command makes it)")
    (tmp_path / "rlopt-t-self").symlink_to(ROOT)
    pins = _pins(tmp_path, [{"tag": "t-self", "commit": HEAD, "claims": [3]}])
    result = _resume("--pins", pins, "--into", into, "--worktrees", tmp_path, "--dry-run")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("resume_campaign: ")]
    assert len(lines) == 1, lines
    assert lines[0].endswith(f"run --studies claim3-adan-vs-adam-ppo --into {into}"), lines


def test_a_checkout_folder_at_another_commit_is_refused(tmp_path: Path, into: Path) -> None:
    (tmp_path / "rlopt-t-other").mkdir()  # someone's folder, not the stage's checkout
    pins = _pins(tmp_path, [{"tag": "t-other", "commit": FIRST, "claims": [3]}])
    result = _resume("--pins", pins, "--into", into, "--worktrees", tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "rlopt-t-other" in result.stderr, result.stderr
    assert "not t-other's" in result.stderr
    assert list((tmp_path / "rlopt-t-other").iterdir()) == []


BAD_PINS = [
    ({"stages": []}, "'stages' must be a non-empty list"),
    ({"stage": [{"tag": "a", "commit": FIRST, "claims": [3]}]}, "'stages' must be a non-empty list"),
    ({"stages": [{"tag": "a", "commit": FIRST}]}, "stages[0]"),
    ({"stages": [{"tag": "a b", "commit": FIRST, "claims": [3]}]}, "stages[0].tag: 'a b'"),
    ({"stages": [{"tag": "a", "commit": FIRST[:7], "claims": [3]}]}, f"stages[0].commit: '{FIRST[:7]}'"),
    ({"stages": [{"tag": "a", "commit": FIRST, "claims": "3"}]}, "stages[0].claims: '3'"),
    ({"stages": [{"tag": "a", "commit": FIRST, "claims": [0]}]}, "stages[0].claims: [0]"),
    ({"stages": [{"tag": "a", "commit": "0" * 40, "claims": [3]}]}, f"commit {'0' * 40}: not in this clone"),
    ({"stages": [{"tag": "a", "commit": FIRST, "claims": [99]}]}, "claim 99 of stage a: no study file"),
    ({"stages": [{"tag": "a", "commit": FIRST, "studies": []}]}, "stages[0].studies: []"),
    ({"stages": [{"tag": "a", "commit": FIRST, "studies": "x"}]}, "stages[0].studies: 'x'"),
    ({"stages": [{"tag": "a", "commit": FIRST, "studies": ["../x"]}]}, "stages[0].studies: ['../x']"),
    ({"stages": [{"tag": "a", "commit": FIRST, "claims": [3], "study": ["x"]}]}, "stages[0]"),
    ({"stages": [{"tag": "a", "commit": HEAD, "studies": ["no-such"]}]},
     "study 'no-such' of stage a: no studies/no-such.yaml"),
    ({"stages": [{"tag": "a", "commit": FIRST, "studies": ["claim2-adopt-beta2-robustness-ppo"]}]},
     "stage a: its commit " + FIRST[:7] + "'s scripts/campaign.py has no --studies"),
]


@pytest.mark.parametrize(("pins", "named"), BAD_PINS, ids=[n for _, n in BAD_PINS])
def test_a_bad_pins_file_is_one_line_and_exit_2(tmp_path: Path, into: Path, pins: object, named: str) -> None:
    path = tmp_path / "pins.yaml"
    path.write_text(yaml.safe_dump(pins))
    result = _resume("--pins", path, "--into", into, "--worktrees", tmp_path)
    assert result.returncode == 2, result.stdout
    assert result.stderr.count("\n") == 1 and named in result.stderr, result.stderr
    assert "accepted" in result.stderr or "fetch" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pins.yaml", "results"]


@pytest.mark.parametrize(("args", "named"), [
    (["--parallel-runs", "0"], "--parallel-runs 0"),
    (["--pins", "/nonexistent/pins.yaml"], "/nonexistent/pins.yaml"),
    (["--worktrees", "/nonexistent"], "--worktrees /nonexistent"),
])
def test_a_bad_argument_is_one_line_and_exit_2(tmp_path: Path, into: Path, args: list[str],
                                               named: str) -> None:
    result = _resume("--into", into, *args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and named in result.stderr, result.stderr


def test_campaign_run_refuses_a_study_name_it_does_not_have(tmp_path: Path) -> None:
    live = tmp_path / "live"
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "campaign.py"), "run", "--studies",
                             f"{CLAIM1},no-such-study", "--live", str(live), "--into", str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "'no-such-study'" in result.stderr, result.stderr
    assert not live.exists()  # refused before anything ran or was written
