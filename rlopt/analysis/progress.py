"""How far a study got: its runs that count, of the runs asked for so far, and whether it is complete.

A run *counts* when it finished in a complete trial that no later trial extends
(:func:`rlopt.analysis.scores.is_usable`) and is the first such run of its (setting, task, seed)
(:func:`rlopt.analysis.scores.mark_duplicates`): the statistics take one run per cell, so the counts do
too, for the study as for each claim. A study with a fixed set of seeds asks for every run its file
plans (:meth:`rlopt.config.study.StudySpec.planned_runs`) and is complete when that many count; one
whose sampler draws settings (``n_trials``) may draw a setting twice, and is complete when its trials
are (its second runs of a cell said apart). A study with sequential seeds (:mod:`rlopt.study.looks`)
asks for the first look's seeds per cell, and for more at each look that leaves a claim undecided: it
is complete when the procedure has ended (its claims decided, or its last look judged), and the runs
asked for are those of the look it reached. The claims table (``scripts/claims_table.py``) and
``scripts/resume_campaign.py`` both read it, so "complete" means one thing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlopt.analysis.load import load_runs, pointing_back, untouched_copy
from rlopt.analysis.scores import Normaliser, RunCensus, is_usable, mark_duplicates
from rlopt.config.claims import Claim
from rlopt.config.study import Arm, StudySpec
from rlopt.records import RunRecord


@dataclass(frozen=True)
class StudyProgress:
    """``counted`` runs of the ``asked`` ones; ``complete`` as the module says; ``look`` says where a
    sequential study stands (``""`` for fixed seeds); ``waiting``: finished runs of trials still
    running, which count when their trial completes; ``duplicates``: second finished runs of a cell,
    which do not count."""

    counted: int
    asked: int
    complete: bool
    look: str = ""
    waiting: int = 0
    duplicates: int = 0

    def describe(self) -> str:
        """``20 of 20 (complete)``, ``12 of 20 (partial)``, ``20 of 20 (look 1 of 2, judging)``,
        ``0 of 50 (partial; 2 more finished, waiting for their trial to complete)``,
        ``7 of 8 (complete; 1 second run of a cell, not counted)``..."""
        state = "complete" if self.complete else "partial"
        waiting = (f"; {self.waiting} more finished, waiting for their trial to complete"
                   if self.waiting else "")
        duplicates = (f"; {self.duplicates} second run{'s' if self.duplicates > 1 else ''} of a cell, "
                      "not counted" if self.duplicates else "")
        look = f", {self.look}" if self.look else ""
        return f"{self.counted} of {self.asked} ({state}{look}{waiting}{duplicates})"


def progress_of(spec: StudySpec, records: Sequence[RunRecord], looks: Sequence[Mapping[str, Any]],
                look: int) -> StudyProgress:
    """The progress of ``spec``'s study from its runs and, for sequential seeds, the judged ``looks``
    (:func:`rlopt.study.looks.history`) and the ``look`` index it is at."""
    census = RunCensus.of(mark_duplicates(records))
    counted, waiting, duplicates = census.usable, census.finished_running, census.counts["duplicate"]
    if not spec.seed_looks:
        # a grid is complete when each of its cells counts; a sampler's study when its trials are
        finished = counted + (duplicates if spec.n_trials is not None else 0)
        return StudyProgress(counted, spec.planned_runs(), finished >= spec.planned_runs(), waiting=waiting,
                             duplicates=duplicates)
    cells = spec.planned_runs() // len(spec.seeds)
    final = bool(looks) and bool(looks[-1].get("final"))
    seeds = int(looks[-1]["seeds"]) if final else spec.seed_looks[min(look, len(spec.seed_looks) - 1)]
    of = f"of {len(spec.seed_looks)}, {seeds} seeds per cell, up to {spec.seed_looks[-1]}"
    where = f"stopped at look {len(looks)} {of}" if final else f"look {look + 1} {of}"
    return StudyProgress(counted, cells * seeds, final, where, waiting, duplicates)


@dataclass(frozen=True)
class ClaimProgress:
    """How far the runs one claim compares got, within its study: ``counted`` of the ``asked`` runs of
    the optimizer entries it draws on (:func:`claim_arms`); ``settled`` when its verdict can no longer
    change while the rest of the study trains (:func:`claim_progress`)."""

    counted: int
    asked: int
    settled: bool

    def describe(self) -> str:
        """``this claim's 20 of 20 runs all in: verdict final`` or ``this claim's runs: 12 of 20``."""
        if self.settled:
            return f"this claim's {self.counted} of {self.asked} runs all in: verdict final"
        return f"this claim's runs: {self.counted} of {self.asked}"


def claim_arms(spec: StudySpec, claim: Claim) -> list[Arm]:
    """The study's optimizer entries whose runs the claim may compare: those its candidate or baseline
    can select by optimizer, scaling rule or entry label (an entry whose settings the selectors name
    only by betas, lr... is counted in: it may hold a selected run)."""
    selectors = [s for s in (claim.candidate, claim.baseline) if s is not None]
    return [arm for arm in spec.arms if any(
        s.may_select({"optimizer": arm.optimizer, "scaling_rule": arm.scaling_rule, "arm": arm.label})
        for s in selectors)]


def claim_progress(spec: StudySpec, claim: Claim, records: Sequence[RunRecord],
                   normaliser: Normaliser) -> ClaimProgress:
    """The runs that count of the claim's optimizer entries (:func:`claim_arms`), of the runs the study
    asks of them. The claim is *settled* when all of those count, its seeds are fixed (sequential seeds
    may add more) and its scores' references are the suite's, not drawn from the study's runs
    (:meth:`rlopt.analysis.scores.Normaliser.from_runs`): the verdict reads only these runs, so the
    entries still training cannot change it."""
    arms = claim_arms(spec, claim)
    labels = {arm.label for arm in arms}
    counted = sum(is_usable(r) and (r.params or {}).get("arm") in labels for r in mark_duplicates(records))
    asked = sum(spec.trials_for(arm) for arm in arms) * len(spec.tasks) * len(spec.seeds)
    settled = bool(arms) and counted >= asked and not spec.seed_looks and not normaliser.drawn_from_runs
    return ClaimProgress(counted, asked, settled)


def study_progress(spec: StudySpec, study_dir: Path) -> tuple[list[RunRecord], StudyProgress]:
    """The runs of the study in ``study_dir`` (read as :func:`rlopt.analysis.load.load_runs_untouched`
    reads them, from one copy: a committed bundle is never written to) and its :class:`StudyProgress`."""
    looks: list[dict[str, Any]] = []
    look = 0
    with untouched_copy(study_dir) as copy:
        records = pointing_back(load_runs(copy), copy, study_dir)
        if spec.seed_looks:
            from rlopt.study import looks as seed_looks
            from rlopt.study.status import open_study

            first = next(iter(open_study(copy).arms.values()))
            looks, look = seed_looks.history(first), seed_looks.current_look(first)
    return records, progress_of(spec, records, looks, look)
