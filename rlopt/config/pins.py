"""The evidence campaign's pins, as data: which pinned commit trains which claims, in order.

``results/campaign/pins.yaml``::

    stages:
      - tag: campaign-3                                     # a git tag; its worktree is ../rlopt-<tag>
        commit: ff5805c7e4a1f514d5e03bc49036be586b0edd54    # the full commit the tag names
        claims: [1, 2]                                      # trained in this order
      - tag: campaign-6
        commit: ...
        studies: [sanity-sac-halfcheetah]                   # studies/<name>.yaml that test no claim

A stage names claims (their ``studies/claim<N>-*.yaml``), studies by name (a study that tests no claim,
such as a sanity check against published numbers), or both: its claims' studies train first.

Read by ``scripts/resume_campaign.py`` (which trains each stage's unfinished studies) and by
``scripts/claims_table.py`` (which names the stage that trains each study); one reader, so a bad file is
the same one-line error in both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rlopt.config.yaml import read_yaml
from rlopt.errors import ConfigError

HEX_DIGITS = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class Stage:
    """One pinned commit of the campaign and what it trains, in order: its claims' studies, then the
    studies it names (``studies/<name>.yaml``)."""

    tag: str
    commit: str
    claims: tuple[int, ...]
    studies: tuple[str, ...] = ()


def read_pins(path: Path) -> list[Stage]:
    """The stages of a pins file, in order; a bad file raises :class:`ConfigError` naming the bad value."""
    data = read_yaml(path, "campaign pins file")
    stages = data.get("stages") if isinstance(data, dict) else None
    if not isinstance(stages, list) or not stages:
        raise ConfigError(f"{path}: 'stages' must be a non-empty list "
                          "(accepted: - {tag: ..., commit: ..., claims: [...]} and/or studies: [...])")
    return [_stage(entry, f"{path}: stages[{i}]") for i, entry in enumerate(stages)]


def _stage(entry: object, where: str) -> Stage:
    keys = set(entry) if isinstance(entry, dict) else set()
    if (not isinstance(entry, dict) or not {"tag", "commit"} <= keys or not keys & {"claims", "studies"}
            or keys - {"tag", "commit", "claims", "studies"}):
        raise ConfigError(f"{where}: {entry!r} (accepted: a mapping with tag, commit and claims, studies "
                          "or both)")
    tag, commit = entry["tag"], entry["commit"]
    claims, studies = entry.get("claims", []), entry.get("studies", [])
    if not isinstance(tag, str) or not tag.replace("-", "").replace(".", "").isalnum():
        raise ConfigError(f"{where}.tag: {tag!r} (accepted: a tag name of letters, digits, '-' and '.')")
    if not isinstance(commit, str) or len(commit) != 40 or set(commit) - HEX_DIGITS:
        raise ConfigError(f"{where}.commit: {commit!r} (accepted: a full 40-digit lower-case commit hash)")
    if (not isinstance(claims, list) or ("claims" in entry and not claims)
            or not all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in claims)):
        raise ConfigError(f"{where}.claims: {claims!r} "
                          "(accepted: a non-empty list of claim numbers, e.g. [1, 2])")
    if (not isinstance(studies, list) or ("studies" in entry and not studies)
            or not all(isinstance(n, str) and n and n.replace("-", "").replace("_", "").isalnum()
                       for n in studies)):
        raise ConfigError(f"{where}.studies: {studies!r} (accepted: a non-empty list of study names, "
                          "studies/<name>.yaml without .yaml, e.g. [sanity-sac-halfcheetah])")
    return Stage(tag, commit, tuple(claims), tuple(studies))
