"""The verdicts of a sequential-seeds study at one look (:mod:`rlopt.study.looks`), from its runs.

``rlopt study run`` passes :func:`judge_look` to :func:`rlopt.study.run.run_study`: the study layer
decides when to look and what to do next, this layer reads the runs and judges the claims, as
``rlopt report`` does.
"""

from __future__ import annotations

from pathlib import Path

from rlopt.analysis.load import load_runs
from rlopt.analysis.scores import normaliser_for
from rlopt.analysis.verdict import INCONCLUSIVE
from rlopt.analysis.verdict_table import judge
from rlopt.config.claims import claims_at_looks
from rlopt.config.study import StudySpec
from rlopt.study.looks import LookResult


def judge_look(spec: StudySpec, study_dir: Path, url: str, look: int) -> LookResult:
    """The claims' verdicts on the study's runs at ``look`` (intervals at the per-look confidence).

    The study stops when no claim is inconclusive, or at the last look.
    """
    claims = claims_at_looks(spec.claim, len(spec.seed_looks))
    records = load_runs(study_dir, url)
    verdicts = judge(claims, records, normaliser=normaliser_for(records, suite=spec.suite))
    outcomes = tuple(v.outcome for v in verdicts)
    final = look == len(spec.seed_looks) - 1 or INCONCLUSIVE not in outcomes
    return LookResult(look, spec.seed_looks[look], outcomes, tuple(v.reason for v in verdicts), final)
