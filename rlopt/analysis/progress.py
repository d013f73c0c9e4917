"""How far a study got: its runs that count, of the runs asked for so far, and whether it is complete.

A run *counts* when it finished in a complete trial that no later trial extends
(:func:`rlopt.analysis.scores.is_usable`). A study with a fixed set of seeds asks for every run its file
plans (:meth:`rlopt.config.study.StudySpec.planned_runs`) and is complete when that many count. A study
with sequential seeds (:mod:`rlopt.study.looks`) asks for the first look's seeds per cell, and for more
at each look that leaves a claim undecided: it is complete when the procedure has ended (its claims
decided, or its last look judged), and the runs asked for are those of the look it reached. The claims
table (``scripts/claims_table.py``) and ``scripts/resume_campaign.py`` both read it, so "complete" means
one thing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlopt.analysis.load import load_runs, pointing_back, untouched_copy
from rlopt.analysis.scores import RunCensus
from rlopt.config.study import StudySpec
from rlopt.records import RunRecord


@dataclass(frozen=True)
class StudyProgress:
    """``counted`` runs of the ``asked`` ones; ``complete`` as the module says; ``look`` says where a
    sequential study stands (``""`` for fixed seeds); ``waiting``: finished runs of trials still
    running, which count when their trial completes."""

    counted: int
    asked: int
    complete: bool
    look: str = ""
    waiting: int = 0

    def describe(self) -> str:
        """``20 of 20 (complete)``, ``12 of 20 (partial)``, ``20 of 20 (look 1 of 2, judging)``,
        ``0 of 50 (partial; 2 more finished, waiting for their trial to complete)``..."""
        state = "complete" if self.complete else "partial"
        waiting = (f"; {self.waiting} more finished, waiting for their trial to complete"
                   if self.waiting else "")
        return f"{self.counted} of {self.asked} ({state}{', ' + self.look if self.look else ''}{waiting})"


def progress_of(spec: StudySpec, records: Sequence[RunRecord], looks: Sequence[Mapping[str, Any]],
                look: int) -> StudyProgress:
    """The progress of ``spec``'s study from its runs and, for sequential seeds, the judged ``looks``
    (:func:`rlopt.study.looks.history`) and the ``look`` index it is at."""
    census = RunCensus.of(records)
    counted, waiting = census.usable, census.finished_running
    if not spec.seed_looks:
        return StudyProgress(counted, spec.planned_runs(), counted >= spec.planned_runs(), waiting=waiting)
    cells = spec.planned_runs() // len(spec.seeds)
    final = bool(looks) and bool(looks[-1].get("final"))
    seeds = int(looks[-1]["seeds"]) if final else spec.seed_looks[min(look, len(spec.seed_looks) - 1)]
    of = f"of {len(spec.seed_looks)}, {seeds} seeds per cell, up to {spec.seed_looks[-1]}"
    where = f"stopped at look {len(looks)} {of}" if final else f"look {look + 1} {of}"
    return StudyProgress(counted, cells * seeds, final, where, waiting)


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
