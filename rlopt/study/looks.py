"""Sequential seeds: run a study's cells look by look, stop when its claims are decided.

A study with ``seeds: {initial: 5, max: 15, step: 5}`` runs every cell (trial) on the first 5 seeds,
then judges its claims (:func:`rlopt.analysis.verdict_table.judge`) on those runs. Each claim is judged
at confidence ``1 − (1 − c)/L`` at every one of the ``L`` planned looks (``c`` the claim's confidence):
the chance of a false *reproduced* at any look is then at most ``L · (1 − c)/(2L) = (1 − c)/2``,
the fixed design's, whatever the correlation of the looks (Bonferroni over looks). When every claim is
reproduced or contradicted the study stops; otherwise every cell gets ``step`` more seeds and the claims
are judged again, up to ``max`` seeds, whose verdict is final. ``rlopt.analysis.simulation``'s
``sequential_verdict`` is the same procedure on simulated studies (false-reproduced rate and seeds
spent: README, "Verdicts").

How a look extends a cell: a WAITING copy of its trial is queued whose ``retry_history`` names it, as a
retry of a failed trial does (:mod:`rlopt.study.retries`), so the copy moves in the runs the cell
finished and trains only the new seeds; the extended trial no longer counts, as a retried one does not.
The claims are judged by a function of the analysis layer that ``rlopt study run`` passes in
(:func:`rlopt.analysis.look_verdicts.judge_look`: studies never import analysis). The look in progress
and each look's verdicts are user attributes of every arm's Optuna study
(:data:`LOOK_ATTR`, :data:`HISTORY_ATTR`), so workers on several machines share them.

Written here because Optuna has no notion of a trial that grows; its samplers and storages do the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

log = logging.getLogger(__name__)

LOOK_ATTR = "rlopt_seed_look"
"""Index into :attr:`StudySpec.seed_looks` of the look being run (0 until the first look is judged)."""
HISTORY_ATTR = "rlopt_seed_looks"
"""One entry per judged look: ``{look, seeds, outcomes, final}``."""
EXTENDS_ATTR = "extends"
"""System attribute of a copy queued to extend a cell: the trial it extends."""


def current_look(study: optuna.Study) -> int:
    """The look an arm's study is at."""
    return int(study.user_attrs.get(LOOK_ATTR, 0))


def history(study: optuna.Study) -> list[dict[str, Any]]:
    """The judged looks of an arm's study, first first."""
    return list(study.user_attrs.get(HISTORY_ATTR, []))


def is_final(study: optuna.Study) -> bool:
    """Whether the sequential procedure has ended (claims decided, or the last look judged)."""
    judged = history(study)
    return bool(judged) and bool(judged[-1].get("final"))


def extended_numbers(trials: Sequence[FrozenTrial]) -> set[int]:
    """Numbers of the trials that a later trial extends to more seeds (their runs live in it)."""
    return {t.system_attrs[EXTENDS_ATTR] for t in trials if EXTENDS_ATTR in t.system_attrs}


def queue_extensions(study: optuna.Study, seeds: int) -> int:
    """Queue a copy of every answered cell that ran fewer than ``seeds`` seeds, to run ``seeds`` of them.

    Call it under the claim lock, so two workers never queue the same copy.

    Returns:
        How many copies were queued.
    """
    from rlopt.study.retries import queue_successor, retried_numbers

    trials = study.get_trials(deepcopy=False)
    retried = retried_numbers(trials)
    queued = 0
    for trial in trials:
        if trial.state != TrialState.COMPLETE or trial.number in retried:
            continue
        if len(trial.user_attrs.get("seeds", [])) >= seeds:
            continue
        queue_successor(study, trial, {EXTENDS_ATTR: trial.number}, {})
        queued += 1
    if queued:
        log.info("%s: %d cell(s) extended to %d seeds", study.study_name, queued, seeds)
    return queued


@dataclass(frozen=True)
class LookResult:
    """The verdicts at one look: ``outcomes`` one per claim, ``final`` when the study stops here."""

    look: int
    seeds: int
    outcomes: tuple[str, ...]
    reasons: tuple[str, ...]
    final: bool

    def as_attr(self) -> dict[str, Any]:
        return {"look": self.look, "seeds": self.seeds, "outcomes": list(self.outcomes),
                "reasons": list(self.reasons), "final": self.final}


def record_look(studies: Sequence[optuna.Study], result: LookResult) -> bool:
    """Record ``result`` on every arm's study and move them to the next look unless it is final.

    Call it under the claim lock. Returns False (and records nothing) when another command already
    recorded this look.
    """
    if any(current_look(s) != result.look or is_final(s) for s in studies):
        return False
    for study in studies:
        study.set_user_attr(HISTORY_ATTR, [*history(study), result.as_attr()])
        if not result.final:
            study.set_user_attr(LOOK_ATTR, result.look + 1)
    return True
