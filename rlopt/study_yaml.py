"""Reading study files: YAML with scientific-notation floats and without silently repeated keys.

PyYAML follows YAML 1.1, where ``3e-4`` (no dot) is a *string*; every study file writes learning rates
that way, so the loader below also resolves ``<digits>e<exponent>`` as a float. A key given twice in one
mapping is an error (PyYAML would keep the last value without a word).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from rlopt.errors import ConfigError

_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class StudyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that reads ``1e-5`` as a float and refuses repeated keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


StudyLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:float"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
StudyLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def read_yaml(path: Path) -> Any:
    """The data of the YAML file at ``path``.

    Raises:
        ConfigError: the file is missing, unreadable or not valid YAML (one line, with the line number).
    """
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the study file ({exc.strerror or exc})") from exc
    try:
        return yaml.load(text, Loader=StudyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from exc
