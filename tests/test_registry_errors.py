"""Bad optimizer arguments fail early with one clear line, through the registry and through the classes."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import pytest
import torch

from rlopt.optim import (
    ADOPT,
    OPTIMIZERS,
    AdaBelief,
    AdamSSM,
    Adan,
    DeltaGClip,
    get_spec,
    known_names,
    make_optimizer,
    resolve,
    scale_hyperparameters,
)

NAN = float("nan")


def _params() -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(torch.zeros(2))]


# (id, call, expected message pattern)
REGISTRY_CASES: list[tuple[str, Callable[[], Any], str]] = [
    ("beta-at-1", lambda: make_optimizer("adam", _params(), betas=(0.9, 1.0)),
     r"Invalid beta parameter at index 1 \(beta2: second-moment decay\): 1\.0 \(accepted: 0 <= beta < 1\)"),
    ("beta-negative", lambda: make_optimizer("adopt", _params(), betas=(-0.1, 0.99)),
     r"Invalid beta parameter at index 0 .*: -0\.1 \(accepted: 0 <= beta < 1\)"),
    ("two-betas-for-adan", lambda: make_optimizer("adan", _params(), betas=(0.9, 0.99)),
     r"Invalid betas: \(0\.9, 0\.99\) has 2 values \(accepted: exactly 3: beta1: gradient-average"),
    ("betas-for-dgclip", lambda: make_optimizer("dgclip", _params(), betas=(0.9,)),
     r"Invalid betas: \(0\.9,\) \(accepted: none; this optimizer has no betas\)"),
    ("lr-zero", lambda: make_optimizer("adabelief", _params(), lr=0.0),
     r"Invalid learning rate: 0\.0 \(accepted: a finite number > 0\)"),
    ("lr-negative", lambda: make_optimizer("sgd", _params(), lr=-1e-3),
     r"Invalid learning rate: -0\.001"),
    ("lr-nan", lambda: make_optimizer("adamssm", _params(), lr=NAN),
     r"Invalid learning rate: nan \(accepted: a finite number > 0\)"),
    ("lr-string", lambda: make_optimizer("adam", _params(), lr="3e-4"),
     r"Invalid learning rate: '3e-4'"),
    ("eps-zero", lambda: make_optimizer("adopt", _params(), eps=0.0),
     r"Invalid eps value: 0\.0 \(accepted: a finite number > 0\)"),
    ("eps-for-dgclip", lambda: make_optimizer("dgclip", _params(), eps=1e-8),
     r"Invalid eps for optimizer 'dgclip': 1e-08 \(accepted: none; it has no eps\)"),
    ("eps-for-sgd", lambda: make_optimizer("sgd", _params(), eps=1e-8),
     r"Invalid eps for optimizer 'sgd'"),
    ("weight-decay-negative", lambda: make_optimizer("adan", _params(), weight_decay=-0.1),
     r"Invalid weight_decay value: -0\.1 \(accepted: a finite number >= 0\)"),
    ("unknown-extra", lambda: make_optimizer("adopt", _params(), clip=1.0),
     r"Unknown argument 'clip' for optimizer 'adopt' \(accepted: lr, betas, eps, weight_decay; "
     r"extra: clip_exponent, decoupled_weight_decay, flat, foreach, fused\)"),
    ("zeta-above-rho", lambda: make_optimizer("adamssm", _params(), rho=0.5, zeta=0.9),
     r"Invalid zeta: 0\.9 is above rho=0\.5 \(accepted: 0 <= zeta <= rho < 1"),
    ("rho-at-1", lambda: make_optimizer("adamssm", _params(), rho=1.0),
     r"Invalid rho: 1\.0 \(accepted: 0 <= rho < 1\)"),
    ("delta-above-1", lambda: make_optimizer("dgclip", _params(), delta=2.0),
     r"Invalid delta value: 2\.0 \(accepted: 0 < delta <= 1\)"),
    ("gamma-zero", lambda: make_optimizer("dgclip", _params(), gamma=0.0),
     r"Invalid gamma value: 0\.0 \(accepted: a finite number > 0\)"),
    ("clip-exponent-negative", lambda: make_optimizer("adopt", _params(), clip_exponent=-0.25),
     r"Invalid clip_exponent value: -0\.25"),
    ("max-grad-norm-negative", lambda: make_optimizer("adan", _params(), max_grad_norm=-1.0),
     r"Invalid max_grad_norm value: -1\.0 \(accepted: a finite number >= 0\)"),
    ("foreach-string", lambda: make_optimizer("adabelief", _params(), foreach="yes"),
     r"Invalid foreach value: 'yes' \(accepted: None, True or False\)"),
    ("torch-class-rule", lambda: make_optimizer("sgd", _params(), betas=(0.0,), nesterov=True),
     r"Invalid arguments for optimizer 'sgd': Nesterov momentum requires"),
    ("kappa-zero", lambda: scale_hyperparameters("adam", {}, kappa=0.0),
     r"Invalid kappa value: 0\.0 \(accepted: a finite number > 0\)"),
    ("kappa-nan", lambda: scale_hyperparameters("adam", {}, kappa=NAN), r"Invalid kappa value: nan"),
    ("kappa-too-large", lambda: scale_hyperparameters("adam", {"betas": (0.9, 0.999)}, kappa=10.0),
     r"kappa\*\(1-beta\) = 1 >= 1 \(accepted: kappa < 10 for this beta\)"),
]


@pytest.mark.parametrize(
    ("call", "pattern"), [c[1:] for c in REGISTRY_CASES], ids=[c[0] for c in REGISTRY_CASES]
)
def test_bad_argument_through_the_registry_raises_one_clear_line(
    call: Callable[[], Any], pattern: str
) -> None:
    with pytest.raises(ValueError, match=pattern) as info:
        call()
    assert "\n" not in str(info.value)


def test_unknown_name_lists_every_known_optimizer() -> None:
    with pytest.raises(ValueError, match=r"Unknown optimizer 'adamz' \(accepted: ") as info:
        make_optimizer("adamz", _params())
    for name in known_names():
        assert name in str(info.value)
    assert "pytorch_optimizer:<name>" in str(info.value)


def test_resolve_rejects_bad_extra_arguments_before_anything_is_built() -> None:
    with pytest.raises(ValueError, match="Invalid zeta"):
        resolve("adamssm", zeta=0.95)
    assert resolve("adamssm", zeta=0.5).extra == {"zeta": 0.5}


CLASS_CASES: list[tuple[type[torch.optim.Optimizer], dict[str, Any], str]] = [
    (cls, kwargs, pattern)
    for cls in (ADOPT, Adan, AdaBelief, AdamSSM, DeltaGClip)
    for kwargs, pattern in (
        ({"lr": 0.0}, r"Invalid learning rate: 0\.0"),
        ({"lr": NAN}, r"Invalid learning rate: nan"),
        ({"lr": math.inf}, r"Invalid learning rate: inf"),
        ({"weight_decay": -1.0}, r"Invalid weight_decay value: -1\.0"),
        ({"foreach": 1}, r"Invalid foreach value: 1"),
    )
] + [
    (cls, kwargs, pattern)
    for cls, n_betas in ((ADOPT, 2), (Adan, 3), (AdaBelief, 2), (AdamSSM, 2))
    for kwargs, pattern in (
        ({"betas": (0.9,) * (n_betas - 1) + (1.0,)}, rf"Invalid beta parameter at index {n_betas - 1} .*: 1"),
        ({"betas": (-0.5,) + (0.9,) * (n_betas - 1)}, r"Invalid beta parameter at index 0 .*: -0\.5"),
        ({"betas": (0.9,) * (n_betas + 1)}, rf"has {n_betas + 1} values \(accepted: exactly {n_betas}"),
        ({"betas": 0.9}, r"Invalid betas: 0\.9 \(accepted: a sequence of"),
        ({"eps": 0.0}, r"Invalid eps value: 0\.0"),
        ({"eps": -1e-8}, r"Invalid eps value: -1e-08"),
    )
] + [
    (ADOPT, {"clip_exponent": 0.0}, r"Invalid clip_exponent value: 0\.0"),
    (ADOPT, {"decoupled_weight_decay": "yes"}, r"Invalid decoupled_weight_decay value: 'yes'"),
    (Adan, {"no_prox": 1}, r"Invalid no_prox value: 1 \(accepted: True or False\)"),
    (Adan, {"max_grad_norm": NAN}, r"Invalid max_grad_norm value: nan"),
    (AdamSSM, {"rho": 0.5, "zeta": 0.6}, r"Invalid zeta: 0\.6 is above rho=0\.5"),
    (AdamSSM, {"zeta": -0.1}, r"Invalid zeta: -0\.1 \(accepted: 0 <= zeta < 1\)"),
    (DeltaGClip, {"delta": 0.0}, r"Invalid delta value: 0\.0 \(accepted: 0 < delta <= 1\)"),
    (DeltaGClip, {"gamma": -1.0}, r"Invalid gamma value: -1\.0"),
]


@pytest.mark.parametrize(
    ("cls", "kwargs", "pattern"), CLASS_CASES, ids=[f"{c.__name__}-{k}" for c, k, _ in CLASS_CASES]
)
def test_bad_argument_through_the_class_raises_one_clear_line(
    cls: type[torch.optim.Optimizer], kwargs: dict[str, Any], pattern: str
) -> None:
    with pytest.raises(ValueError, match=pattern) as info:
        cls(_params(), **kwargs)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", sorted(n for n, s in OPTIMIZERS.items() if s.source == "rlopt"))
def test_registry_defaults_are_the_class_defaults(name: str) -> None:
    spec = get_spec(name)
    signature = inspect.signature(spec.cls.__init__).parameters
    assert spec.lr == signature["lr"].default
    assert spec.weight_decay == signature["weight_decay"].default
    assert spec.betas == (signature["betas"].default if "betas" in signature else ())
    assert spec.eps == (signature["eps"].default if "eps" in signature else None)
    for key, value in spec.extra.items():
        assert signature[key].default == value, key
    assert set(spec.extra) == set(signature) - {"self", "params", "lr", "betas", "eps", "weight_decay"}
    built = make_optimizer(name, _params())
    assert isinstance(built, spec.cls)
    assert built.defaults["lr"] == spec.lr


def test_resolved_dgclip_records_no_betas_and_no_eps() -> None:
    record = resolve("dgclip", lr=0.05, gamma=0.25).as_dict()
    assert record == {
        "name": "dgclip", "lr": 0.05, "betas": [], "eps": None, "weight_decay": 0.0, "gamma": 0.25
    }
