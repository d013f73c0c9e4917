"""The verdicts of a set of claims on a set of runs, as the report's ``## Verdicts`` section.

:func:`judge` is what ``rlopt report`` and ``rlopt verdict`` both call, so a verdict recomputed from an
exported runs CSV is the report's, line for line.
"""

from __future__ import annotations

from collections.abc import Sequence

from rlopt import stats
from rlopt.analysis.scores import Normaliser, RunLike, mark_duplicates
from rlopt.analysis.verdict import Verdict, evaluate
from rlopt.config.claims import Claim


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (``|`` escaped, newlines flattened): the report's tables and its verdict table."""
    lines = ["| " + " | ".join(_cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def judge(
    claims: Sequence[Claim],
    records: Sequence[RunLike],
    *,
    normaliser: Normaliser,
    n_resamples: int = stats.DEFAULT_RESAMPLES,
    seed: int = 0,
) -> list[Verdict]:
    """One verdict per claim (:func:`rlopt.analysis.verdict.evaluate`) on the same runs and references
    (one run per (setting, task, seed): see :func:`rlopt.analysis.scores.mark_duplicates`)."""
    records = mark_duplicates(records)
    return [evaluate(c, records, normaliser=normaliser, n_resamples=n_resamples, seed=seed) for c in claims]


def verdicts_markdown(verdicts: Sequence[Verdict]) -> str:
    """The ``## Verdicts`` section: a table (claim, paper, measured, verdict with its budget) and one
    detail line per claim (kind, metric, arms, effect, the reason for the outcome, the runs used)."""
    parts = ["## Verdicts\n"]
    if not verdicts:
        parts.append(
            "No claim is declared for this study (a study file's `claim:` section), so there is no verdict.\n"
        )
        return "\n".join(parts)
    rows = []
    for v in verdicts:
        paper = f"{v.claim.paper_says} ({v.claim.source})" if v.claim.paper_says else v.claim.source
        verdict = f"**{v.outcome}**" + (f" ({v.budget})" if v.budget else "")
        rows.append([v.claim.statement, paper, v.measured, verdict])
    parts.append(markdown_table(["claim", "what the paper says", "what we measured", "verdict"], rows) + "\n")
    details = []
    for v in verdicts:
        arms = f"candidate: {v.claim.candidate.describe()}"
        if v.claim.baseline is not None:
            arms += f"; baseline: {v.claim.baseline.describe()}"
        details.append(
            f"- *{v.claim.statement}* — kind `{v.claim.kind}`, metric `{v.claim.metric}`, {arms}. "
            f"Effect: {v.effect}. Why **{v.outcome}**: {v.reason}."
            + (f" {v.runs.capitalize()}." if v.runs else "")
            + (f" Each task alone (the same rule on its runs; what the pooled verdict rests on, not what "
               f"decides it): {v.per_task}." if v.per_task else "")
        )
    parts.append("\n".join(details) + "\n")
    return "\n".join(parts)
