"""The evidence campaign's pins, as data: which pinned commit trains which claims, in order.

``results/campaign/pins.yaml``::

    stages:
      - tag: campaign-3                                     # a git tag; its worktree is ../rlopt-<tag>
        commit: ff5805c7e4a1f514d5e03bc49036be586b0edd54    # the full commit the tag names
        claims: [1, 2]                                      # trained in this order

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
    """One pinned commit of the campaign and the claims it trains, in order."""

    tag: str
    commit: str
    claims: tuple[int, ...]


def read_pins(path: Path) -> list[Stage]:
    """The stages of a pins file, in order; a bad file raises :class:`ConfigError` naming the bad value."""
    data = read_yaml(path, "campaign pins file")
    stages = data.get("stages") if isinstance(data, dict) else None
    if not isinstance(stages, list) or not stages:
        raise ConfigError(f"{path}: 'stages' must be a non-empty list "
                          "(accepted: - {tag: ..., commit: ..., claims: [...]})")
    return [_stage(entry, f"{path}: stages[{i}]") for i, entry in enumerate(stages)]


def _stage(entry: object, where: str) -> Stage:
    if not isinstance(entry, dict) or set(entry) != {"tag", "commit", "claims"}:
        raise ConfigError(f"{where}: {entry!r} (accepted: a mapping with exactly tag, commit and claims)")
    tag, commit, claims = entry["tag"], entry["commit"], entry["claims"]
    if not isinstance(tag, str) or not tag.replace("-", "").replace(".", "").isalnum():
        raise ConfigError(f"{where}.tag: {tag!r} (accepted: a tag name of letters, digits, '-' and '.')")
    if not isinstance(commit, str) or len(commit) != 40 or set(commit) - HEX_DIGITS:
        raise ConfigError(f"{where}.commit: {commit!r} (accepted: a full 40-digit lower-case commit hash)")
    if (not isinstance(claims, list) or not claims
            or not all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in claims)):
        raise ConfigError(f"{where}.claims: {claims!r} "
                          "(accepted: a non-empty list of claim numbers, e.g. [1, 2])")
    return Stage(tag, commit, tuple(claims))
