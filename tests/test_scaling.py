"""Batch-size scaling rules (Malladi et al. 2022): hand-computed cases, the linear rule, refusals."""

from __future__ import annotations

import pytest
import torch

from rlopt.optim import make_optimizer, scale_hyperparameters
from rlopt.optim.scaling import LINEAR_RULE, SQRT_RULE


def test_sqrt_rule_on_adam_with_kappa_4() -> None:
    # lr * sqrt(4) = 2e-3; 1 - 4 * 0.1 = 0.6; 1 - 4 * 0.001 = 0.996; eps / sqrt(4) = 5e-9.
    scaled = scale_hyperparameters("adam", {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8}, kappa=4)
    assert scaled["lr"] == pytest.approx(2e-3, rel=1e-12)
    assert scaled["betas"] == pytest.approx((0.6, 0.996), rel=1e-12)
    assert scaled["eps"] == pytest.approx(5e-9, rel=1e-12)
    assert scaled["weight_decay"] == 0.0


def test_sqrt_rule_for_a_smaller_batch() -> None:
    # kappa = 1/4: lr / 2, 1 - 0.25 * 0.1 = 0.975, 1 - 0.25 * 0.001 = 0.99975, eps * 2.
    scaled = scale_hyperparameters("adamw", {"lr": 1e-3, "weight_decay": 0.01}, kappa=0.25)
    assert scaled["lr"] == pytest.approx(5e-4, rel=1e-12)
    assert scaled["betas"] == pytest.approx((0.975, 0.99975), rel=1e-12)
    assert scaled["eps"] == pytest.approx(2e-8, rel=1e-12)
    assert scaled["weight_decay"] == 0.01


def test_sqrt_rule_scales_rmsprops_single_beta() -> None:
    scaled = scale_hyperparameters("rmsprop", {"lr": 1e-2, "betas": (0.99,), "eps": 1e-8}, kappa=4)
    assert scaled["lr"] == pytest.approx(2e-2, rel=1e-12)
    assert scaled["betas"] == pytest.approx((0.96,), rel=1e-12)
    assert scaled["eps"] == pytest.approx(5e-9, rel=1e-12)


def test_unset_hyperparameters_are_taken_from_the_registry_and_scaled() -> None:
    # ADOPT's defaults: lr 1e-3, betas (0.9, 0.9999), eps 1e-6; extras pass through unchanged.
    scaled = scale_hyperparameters("adopt", {"clip_exponent": None}, kappa=9)
    assert scaled["lr"] == pytest.approx(3e-3, rel=1e-12)
    assert scaled["betas"] == pytest.approx((0.1, 0.9991), rel=1e-12)
    assert scaled["eps"] == pytest.approx(1e-6 / 3, rel=1e-12)
    assert scaled["clip_exponent"] is None


def test_linear_rule_for_sgd_scales_lr_only() -> None:
    scaled = scale_hyperparameters("sgd", {"lr": 0.01, "betas": (0.9,)}, kappa=8, rule="linear")
    assert scaled["lr"] == pytest.approx(0.08, rel=1e-12)
    assert scaled["betas"] == (0.9,)
    assert scaled["eps"] is None


def test_rule_none_returns_the_resolved_hyperparameters_unchanged() -> None:
    unchanged = scale_hyperparameters("adam", {"lr": 3e-4}, kappa=16, rule="none")
    assert unchanged == {"lr": 3e-4, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}
    # Any optimizer, even one no scaling rule covers.
    assert scale_hyperparameters("dgclip", {"gamma": 0.25}, kappa=16, rule="none") == {
        "lr": 0.1,
        "betas": (),
        "eps": None,
        "weight_decay": 0.0,
        "gamma": 0.25,
    }


@pytest.mark.parametrize("name", sorted(SQRT_RULE))
def test_scaled_hyperparameters_build_the_optimizer(name: str) -> None:
    scaled = scale_hyperparameters(name, {}, kappa=2)
    optimizer = make_optimizer(name, [torch.nn.Parameter(torch.zeros(2))], **scaled)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(scaled["lr"])


@pytest.mark.parametrize(
    ("name", "betas", "kappa", "pattern"),
    [
        (
            "adam",
            (0.9999, 0.999),
            1000.0,
            r"second-moment decay = 0\.999: kappa\*\(1-beta\) = 1 >= 1 \(accepted: kappa < 1000 ",
        ),
        (
            "adam",
            (0.9, 0.999),
            20.0,
            r"first-moment decay = 0\.9: kappa\*\(1-beta\) = 2 >= 1 \(accepted: kappa < 10 ",
        ),
        ("rmsprop", (0.99,), 200.0, r"alpha: second-moment decay = 0\.99: kappa\*\(1-beta\) = 2 >= 1"),
    ],
)
def test_impossible_kappa_raises(name: str, betas: tuple[float, ...], kappa: float, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        scale_hyperparameters(name, {"betas": betas}, kappa=kappa)


@pytest.mark.parametrize(
    ("name", "rule", "pattern"),
    [
        ("sgd", "sqrt", r"The sqrt scaling rule does not apply to optimizer 'sgd' \(accepted: adabelief,"),
        (
            "adan",
            "linear",
            r"The linear scaling rule does not apply to optimizer 'adan' \(accepted: adabelief, adam,",
        ),
        ("adan", "sqrt", r"does not apply to optimizer 'adan'"),
        ("nadam", "sqrt", r"does not apply to optimizer 'nadam'"),
        ("radam", "sqrt", r"does not apply to optimizer 'radam'"),
        ("adamssm", "sqrt", r"does not apply to optimizer 'adamssm'"),
        ("dgclip", "sqrt", r"does not apply to optimizer 'dgclip'"),
        ("pytorch_optimizer:lion", "sqrt", r"does not apply to optimizer 'pytorch_optimizer:lion'"),
        ("adam", "cubic", r"Invalid scaling rule: 'cubic' \(accepted: sqrt, linear, none\)"),
    ],
)
def test_rule_that_does_not_apply_raises(name: str, rule: str, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        scale_hyperparameters(name, {}, kappa=2, rule=rule)


def test_sqrt_rule_refuses_rmsprop_with_momentum() -> None:
    with pytest.raises(ValueError, match=r"RMSprop without momentum and not centered \(got momentum=0\.9"):
        scale_hyperparameters("rmsprop", {"momentum": 0.9}, kappa=2)


def test_every_sqrt_rule_optimizer_also_has_the_linear_baseline_and_sgd_only_linear() -> None:
    assert set(SQRT_RULE) <= set(LINEAR_RULE)
    assert set(LINEAR_RULE) - set(SQRT_RULE) == {"sgd"}


def test_linear_rule_for_adam_scales_lr_only_as_the_naive_baseline() -> None:
    scaled = scale_hyperparameters(
        "adam", {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8}, kappa=4, rule="linear"
    )
    assert scaled["lr"] == pytest.approx(4e-3)
    assert scaled["betas"] == (0.9, 0.999)
    assert scaled["eps"] == 1e-8
