"""The one YAML loader: numbers as users type them, no repeated keys, one-line errors for bad files."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from rlopt.config.agents import parse_set
from rlopt.config.yaml import MAX_DEPTH, dump_flow, load, read_yaml
from rlopt.errors import ConfigError

SCALARS: list[tuple[str, Any]] = [
    ("1e-3", 1e-3),
    ("3E-4", 3e-4),
    ("-2e-5", -2e-5),
    ("+1.5e+3", 1500.0),
    ("1_000_000", 1_000_000),
    ("1_000.5", 1000.5),
    (".5", 0.5),
    ("-.5", -0.5),
    ("1.", 1.0),
    ("0.9999", 0.9999),
    ("12", 12),
    ("-3", -3),
    ("012", 12),
    ("0x1F", 31),
    ("0o17", 15),
    ("0b101", 5),
    (".inf", math.inf),
    ("-.inf", -math.inf),
    ("true", True),
    ("False", False),
    ("~", None),
    ("null", None),
    ("yes", "yes"),
    ("off", "off"),
    ("1:30", "1:30"),
    ("2024-01-01", "2024-01-01"),
    ("lin_3e-4", "lin_3e-4"),
    ("1e", "1e"),
    ("e3", "e3"),
    ("=", "="),
]


@pytest.mark.parametrize(("text", "expected"), SCALARS, ids=[t for t, _ in SCALARS])
def test_plain_scalars_read_as_typed(text: str, expected: Any) -> None:
    value = load(text, "x")
    assert value == expected and type(value) is type(expected)
    assert load(f"key: {text}", "x") == {"key": expected}
    assert load(f"[{text}]", "x") == [expected]


def test_nan_is_a_float() -> None:
    assert math.isnan(load(".nan", "x"))


@pytest.mark.parametrize("value", ["1e3", "-.5", "0o17", ".5", "012", "yes", "true", "", "a: b", 1e-10, None])
def test_dump_flow_quotes_what_would_not_read_back_as_text(value: Any) -> None:
    assert load(dump_flow(value), "x") == value


def test_safe_loader_semantics_otherwise_and_merge_keys_allowed() -> None:
    text = "base: &b {n_steps: 64, gamma: 0.99}\nentry:\n  <<: *b\n  gamma: 0.9\n"
    assert load(text, "x") == {"base": {"n_steps": 64, "gamma": 0.99}, "entry": {"n_steps": 64, "gamma": 0.9}}
    with pytest.raises(ConfigError, match=r"^x: not valid YAML at line 1: could not determine a constructor"):
        load("!!python/object/apply:os.system [echo]", "x")


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("a: 1\nb: 2\na: 3\n", 3),
        ("tasks:\n  Hopper-v5:\n    n_steps: 1\n    n_steps: 2\n", 4),
        ("x: {a: 1, a: 2}\n", 1),
        ("- {a: 1}\n- {b: 1, b: 1}\n", 2),
    ],
)
def test_a_key_given_twice_is_refused_with_its_line(text: str, line: int) -> None:
    expected = rf"^f\.yaml: not valid YAML at line {line}: key '\w+' is given twice$"
    with pytest.raises(ConfigError, match=expected):
        load(text, "f.yaml")


@pytest.mark.parametrize(
    "text",
    [
        "[" * 5000 + "]" * 5000,
        "".join(f"{'  ' * i}k:\n" for i in range(5000)),
        "{a: " * 5000 + "1" + "}" * 5000,
    ],
    ids=["flow sequences", "block mappings", "flow mappings"],
)
def test_deep_nesting_is_one_line_not_a_recursion_error(text: str) -> None:
    expected = rf"^deep\.yaml: not valid YAML at line \d+: nested deeper than {MAX_DEPTH} levels$"
    with pytest.raises(ConfigError, match=expected):
        load(text, "deep.yaml")
    assert load("[" * MAX_DEPTH + "]" * MAX_DEPTH, "ok.yaml") is not None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", r"not a UTF-8 text file \(byte 0x89 at offset 0; accepted"),
        ("name: caf\xe9\n".encode("latin-1"), r"not a UTF-8 text file \(byte 0xe9 at offset 9; accepted"),
        (b"name: x\x00y\n", r"not valid YAML: character #x0000 at position 7 is not allowed"),
    ],
    ids=["binary", "latin-1", "NUL"],
)
def test_a_file_not_utf8_text_gets_one_line_naming_it(tmp_path: Path, raw: bytes, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(raw)
    with pytest.raises(ConfigError, match="^" + str(path).replace(".", r"\.") + ": " + message) as info:
        read_yaml(path, "study file")
    assert "\n" not in str(info.value)


def test_utf8_with_a_byte_order_mark_and_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes("\ufeffname: café\n".encode())
    assert read_yaml(path) == {"name": "café"}
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read the study file \(No such file"):
        read_yaml(tmp_path / "nope.yaml", "study file")


def test_set_and_optimizer_arg_values_use_the_loader() -> None:
    assert parse_set(["learning_rate=3e-4", "buffer_size=1_000_000", "gae_lambda=.95", "x.y=-2e-5"]) == {
        "learning_rate": 3e-4,
        "buffer_size": 1_000_000,
        "gae_lambda": 0.95,
        "x": {"y": -2e-5},
    }
    assert parse_set(["delta=1e-3"], flag="--optimizer-arg") == {"delta": 1e-3}
    assert yaml.safe_load("1e-3") == "1e-3"  # what PyYAML alone makes of it
    with pytest.raises(ConfigError, match=r"^Malformed --optimizer-arg 'delta' \(accepted: key=value"):
        parse_set(["delta"], flag="--optimizer-arg")
    with pytest.raises(ConfigError, match=r"^Malformed --set 'x=\{a: 1, a: 2\}': the value: .* given twice"):
        parse_set(["x={a: 1, a: 2}"])
    with pytest.raises(ConfigError, match=r"^Malformed --set 'n_steps=128': n_steps is given twice"):
        parse_set(["n_steps=64", "n_steps=128"])


@pytest.mark.slow
def test_rlopt_train_reads_3e_4_and_1e_3_as_numbers(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable, "-m", "rlopt", "train", "--algo", "ppo", "--env", "InvertedPendulum-v5",
            "--optimizer", "dgclip", "--optimizer-arg", "delta=1e-3", "--set", "learning_rate=3e-4",
            "--set", "n_steps=64", "--set", "batch_size=32", "--set", "n_epochs=1",
            "--set", "policy_kwargs.net_arch=[8]", "--timesteps", "128", "--eval-freq", "64",
            "--eval-episodes", "1", "--run-dir", "run", "--no-progress",
        ],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["agent"]["hyperparameters"]["learning_rate"] == 0.0003
    assert config["optimizer"]["lr"] == 0.0003
    assert config["optimizer"]["delta"] == 0.001
    assert config["gradient_clipping"]["optimizer"]["delta"] == 0.001
    command = (tmp_path / "run" / "command.txt").read_text()
    assert "--optimizer-arg delta=1e-3" in command and "--set learning_rate=3e-4" in command
