"""The one YAML loader of rlopt: study files, agent and suite files, ``--set`` and ``--optimizer-arg``.

PyYAML follows YAML 1.1, where ``3e-4`` (no dot) is a *string*, ``1:30`` the integer 90, ``012`` the
integer 10, ``no`` the boolean ``False`` and ``2024-01-01`` a date. :class:`StrictLoader` resolves plain
scalars as a user types them instead (YAML 1.2's core schema, plus ``_`` between digits):

=====  =========================================================================================
null   ``~``, ``null``, ``Null``, ``NULL``, nothing
bool   ``true``/``True``/``TRUE``, ``false``/``False``/``FALSE`` (``yes``, ``no``, ``on``, ``off``: text)
int    ``12``, ``-3``, ``1_000_000``, ``012`` (= 12), ``0x1F``, ``0o17``, ``0b101``
float  ``1e-3``, ``3E-4``, ``.5``, ``-.5``, ``1.``, ``-2e-5``, ``1_000.5``, ``.inf``, ``-.inf``, ``.nan``
=====  =========================================================================================

Everything else plain is a string (``1:30``, ``2024-01-01``, ``lin_3e-4``). A key given twice in one
mapping is an error (PyYAML keeps the last value without a word), so is nesting deeper than
:data:`MAX_DEPTH` levels (PyYAML would hit Python's recursion limit). A file that is not UTF-8 text
gets one line naming it. :class:`StrictDumper` writes with the same rules, so a string that the loader
would read as a number is quoted.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import yaml

from rlopt.errors import ConfigError

MAX_DEPTH = 100
"""Deepest nesting of mappings and sequences accepted (rlopt's own files nest at most 5 levels)."""

_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT = re.compile(r"^(?:[-+]?[0-9][0-9_]*|0x[0-9a-fA-F_]+|0o[0-7_]+|0b[01_]+)$")
_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*\.[0-9_]*|\.[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_MERGE = re.compile(r"^(?:<<)$")
_RESOLVERS: tuple[tuple[str, re.Pattern[str], list[str]], ...] = (
    ("tag:yaml.org,2002:null", _NULL, ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:bool", _BOOL, list("tTfF")),
    ("tag:yaml.org,2002:int", _INT, list("-+0123456789")),
    ("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789.")),
    ("tag:yaml.org,2002:merge", _MERGE, ["<"]),
)
_INT_BASES = {"0x": 16, "0o": 8, "0b": 2}


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with the scalars of the module docstring, no repeated keys, bounded nesting."""

    yaml_implicit_resolvers: ClassVar[dict[Any, list[tuple[str, re.Pattern[str]]]]] = {}

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {MAX_DEPTH} levels", self.peek_event().start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                repeated = key in seen
            except TypeError:  # unhashable: SafeLoader says so below
                continue
            if repeated:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        """Decimal unless prefixed ``0x``/``0o``/``0b`` (PyYAML reads ``012`` as octal)."""
        text = str(self.construct_scalar(node)).replace("_", "")
        sign = -1 if text.startswith("-") else 1
        text = text.lstrip("+-")
        base = _INT_BASES.get(text[:2].lower(), 10)
        return sign * int(text if base == 10 else text[2:], base)


class StrictDumper(yaml.SafeDumper):
    """``yaml.SafeDumper`` quoting exactly the strings :class:`StrictLoader` would not read back as text."""

    yaml_implicit_resolvers: ClassVar[dict[Any, list[tuple[str, re.Pattern[str]]]]] = {}


for _cls in (StrictLoader, StrictDumper):
    for _tag, _regexp, _first in _RESOLVERS:
        _cls.add_implicit_resolver(_tag, _regexp, _first)
StrictLoader.add_constructor("tag:yaml.org,2002:int", StrictLoader.construct_yaml_int)


def _problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.reader.ReaderError):
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        return f"not valid YAML: character #x{code:04x} at position {exc.position} is not allowed"
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"not valid YAML{where}: {problem}"


def load(text: str, source: str) -> Any:
    """The data of the YAML document ``text``; ``source`` (a file name, ``--set x=...``) prefixes errors.

    Raises:
        ConfigError: not valid YAML, a repeated key or nesting too deep (one line, with the line number).
    """
    try:
        return yaml.load(text, Loader=StrictLoader)  # StrictLoader is a SafeLoader
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: {_problem(exc)}") from exc
    except RecursionError as exc:  # pragma: no cover - MAX_DEPTH stops nesting long before
        raise ConfigError(f"{source}: not valid YAML: nested too deeply") from exc


def read_yaml(path: Path, what: str = "YAML file") -> Any:
    """The data of the YAML file at ``path`` (``what`` names the kind of file in errors).

    Raises:
        ConfigError: the file is missing, unreadable, not UTF-8 text or not valid YAML (one line).
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        byte = raw[exc.start : exc.start + 1].hex()
        raise ConfigError(
            f"{path}: not a UTF-8 text file (byte 0x{byte} at offset {exc.start}; accepted: a {what} "
            "in UTF-8 YAML)"
        ) from exc
    return load(text, str(path))


def merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``update``, nested mappings merged key by key (agent hyperparameter overrides:
    agent file, study, arm, setting, ``--set``), as a new dict that shares nothing with either."""
    out = copy.deepcopy(dict(base))
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def dump_flow(value: Any) -> str:
    """``value`` as one line of flow-style YAML that :func:`load` reads back equal."""
    text = yaml.dump(value, Dumper=StrictDumper, default_flow_style=True, width=10_000)
    return text.strip().removesuffix("...").strip()
