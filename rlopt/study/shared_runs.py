"""Runs shared between studies: a run that another study already finished, the same in everything that
decides its numbers, is copied instead of trained again (``rlopt study run --reuse-runs-from DIR``).

Studies often hold the same run: the default Adam arm of several claims, or every scaling rule's
κ = 1 cell. A run is the same run when its resolved config has the same
:func:`rlopt.run.folder.config_identity` (task, seed, budget, agent, evaluation, optimizer), the same
device and torch threads, and it was made by the same code: the same clean git commit and the same
versions of Python and every recorded package (``versions.json``; the platform string, which names the
kernel, may differ). Where no clean commit names the code (a checkout with changes, or an installed
package, whose version number does not pin its files) nothing is shared. On the CPU such a run repeats
bit for bit (results/README.md shows runs repeated across 155 commits), so copying it is training it; on
a GPU it is one more draw of the same configuration.

Only finished runs are copied (``metrics.json`` status ``ok`` or ``diverged``, no checkpoint). The copy
is made beside its target and renamed into place, so a killed copy leaves no half run; its
``metrics.json`` gains ``copied_from``, the source's folder relative to ``DIR`` (the original's where the
source is itself a copy), which the run tables show, so a reader knows which runs two studies share.

Written by hand: Optuna shares trials within one study, not run folders across studies.
"""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rlopt import atomic
from rlopt.run.checkpoint import CHECKPOINT_FILE
from rlopt.run.folder import config_identity, read_json
from rlopt.study.retries import finished_run_state

log = logging.getLogger(__name__)

COPIED_FROM = "copied_from"
"""The ``metrics.json`` key naming the run a shared run was copied from."""
MACHINE_ONLY = ("platform",)
"""``versions.json`` entries that may differ between two copies of one run (they describe the machine)."""


def run_match(config: Mapping[str, Any], versions: Mapping[str, Any]) -> dict[str, Any] | None:
    """What two runs must share to be one run (config identity, device, threads, code and versions), or
    None where the code is not a clean commit (a dirty or unknown tree may compute anything)."""
    commit = versions.get("git_commit")
    if not isinstance(commit, str) or not commit or commit.endswith("-dirty"):
        return None
    return {
        "identity": config_identity(dict(config)),
        "device": config.get("device"),
        "threads": config.get("threads"),
        "versions": {k: v for k, v in versions.items() if k not in MACHINE_ONLY},
    }


def finished_runs(root: Path) -> dict[str, Path]:
    """Every finished, shareable run folder under ``root``, by its :func:`run_match` (as JSON); the
    first found (in path order) where several match."""
    found: dict[str, Path] = {}
    for metrics in sorted(root.rglob("metrics.json")):
        run_dir = metrics.parent
        if any(part.startswith(".") for part in run_dir.relative_to(root).parts):
            continue  # a copy in the making (copy_shared_run), never a source
        if (run_dir / CHECKPOINT_FILE).exists() or not finished_run_state(run_dir):
            continue
        config, versions = read_json(run_dir / "config.json"), read_json(run_dir / "versions.json")
        if not config or not versions:
            continue
        match = run_match(config, versions)
        if match is not None:
            found.setdefault(json.dumps(match, sort_keys=True), run_dir)
    return found


def copy_shared_run(source: Path, target: Path, root: Path) -> None:
    """Copy the finished run ``source`` (under ``root``) to the run folder ``target``, which must not hold
    a finished run; ``metrics.json`` records where it came from."""
    metrics = json.loads((source / "metrics.json").read_text())
    origin = metrics.get(COPIED_FROM) or str(source.resolve().relative_to(root.resolve()))
    for stale in target.parent.glob(f".{target.name}.copy-*"):  # left by a copy that was killed
        shutil.rmtree(stale, ignore_errors=True)
    staging = target.with_name(f".{target.name}.copy-{uuid.uuid4().hex[:8]}")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, staging, ignore=shutil.ignore_patterns(CHECKPOINT_FILE))
    atomic.write_text(staging / "metrics.json", json.dumps({**metrics, COPIED_FROM: origin}, indent=2) + "\n")
    if target.exists():
        shutil.rmtree(target)  # an unfinished attempt of the same run, replaced by the finished one
    staging.rename(target)
    log.info("copying the finished run %s (identical config, commit and versions) as %s", origin, target)
