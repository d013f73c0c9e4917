"""Batch-size scaling rules: the square-root rule for adaptive methods and the linear rule for SGD.

When the batch size is multiplied by κ, Malladi et al. (2022) show that Adam and RMSprop follow
approximately the same SDE, so training curves as a function of samples seen stay close, if

    lr → √κ·lr,   β → 1 − κ(1 − β) for every β that is an EMA decay,   eps → eps/√κ,

which requires κ(1 − β) < 1. It is derived for the regime where gradient noise dominates. SGD's
counterpart is the linear rule lr → κ·lr (momentum unchanged); for the adaptive methods below the
linear rule is offered only as the naive baseline the square-root rule is compared against.

Which optimizers each rule applies to (:data:`SQRT_RULE`, :data:`LINEAR_RULE`):

- derived in the paper: ``adam``, ``rmsprop`` (without momentum and not centered, the form analysed);
  ``adamw`` is Adam plus decoupled decay and is treated like Adam.
- by analogy, not derived: ``amsgrad`` (Adam with a running max of v), ``adabelief`` (both betas are
  EMA decays, eps scales like Adam's), ``adopt`` (both betas are EMA decays; eps is a floor on √v
  and scales like it). Say so when reporting results that rely on them.
- not covered, refused with a ``ValueError``: ``nadam`` (its momentum schedule counts steps),
  ``radam`` (its rectification depends on the step count), ``adan`` (the gradient-difference terms
  scale differently with the batch), ``adamssm`` (no rule for its pole and zero), ``dgclip`` (a
  clipping method), ``pytorch_optimizer:*``; and ``sgd`` under the sqrt rule (use ``rule="linear"``).

``weight_decay`` is left unchanged by both rules (the rule as stated does not cover it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from rlopt.optim.registry import get_spec, resolve
from rlopt.optim.validation import check_positive

SQRT_RULE: Mapping[str, str] = {
    "adam": "derived (Malladi et al. 2022)",
    "adamw": "derived for Adam; decoupled weight decay left unchanged",
    "rmsprop": "derived (Malladi et al. 2022), without momentum, not centered",
    "amsgrad": "by analogy with Adam (not derived)",
    "adabelief": "by analogy with Adam (not derived)",
    "adopt": "by analogy with Adam (not derived)",
}
LINEAR_RULE: Mapping[str, str] = {
    "sgd": "linear rule lr -> kappa * lr, momentum unchanged",
    # For adaptive methods the linear rule is not derived: it is the naive baseline the sqrt rule is
    # tested against (the scaling-rule claim compares sqrt, linear and no scaling).
    **{name: "naive baseline: lr -> kappa * lr, betas and eps unchanged" for name in SQRT_RULE},
}
RULES = ("sqrt", "linear", "none")


def scale_hyperparameters(
    name: str, hparams: Mapping[str, Any], kappa: float, rule: str = "sqrt"
) -> dict[str, Any]:
    """Hyperparameters of optimizer ``name`` for a batch ``kappa`` times larger.

    Args:
        name: registry name of the optimizer.
        hparams: any of ``lr``, ``betas``, ``eps``, ``weight_decay`` and the optimizer's extra
            arguments; unset ones take the registry defaults (which are then scaled too).
        kappa: batch-size multiplier κ > 0 (κ < 1 for a smaller batch).
        rule: ``"sqrt"`` (adaptive methods), ``"linear"`` (SGD) or ``"none"`` (unchanged).

    Returns:
        ``{"lr", "betas", "eps", "weight_decay", **extra}``, ready for
        ``make_optimizer(name, params, **result)``.

    Raises:
        ValueError: bad ``kappa`` or ``rule``, a rule that does not apply to ``name``, or
            κ(1 − β) >= 1 for some β.
    """
    if rule not in RULES:
        raise ValueError(f"Invalid scaling rule: {rule!r} (accepted: {', '.join(RULES)})")
    kappa = check_positive(kappa, "kappa")
    resolved = resolve(name, **hparams)
    result: dict[str, Any] = {
        "lr": resolved.lr,
        "betas": resolved.betas,
        "eps": resolved.eps,
        "weight_decay": resolved.weight_decay,
        **resolved.extra,
    }
    if rule == "none":
        return result
    table = SQRT_RULE if rule == "sqrt" else LINEAR_RULE
    if resolved.name not in table:
        raise ValueError(
            f"The {rule} scaling rule does not apply to optimizer {resolved.name!r} "
            f"(accepted: {', '.join(sorted(table))}; rule 'none' for any optimizer)"
        )
    if rule == "linear":
        result["lr"] = resolved.lr * kappa
        return result
    if resolved.name == "rmsprop" and (resolved.extra.get("momentum", 0.0) or resolved.extra.get("centered")):
        raise ValueError(
            "The sqrt scaling rule covers RMSprop without momentum and not centered "
            f"(got momentum={resolved.extra.get('momentum')!r}, centered={resolved.extra.get('centered')!r})"
        )
    beta_names = get_spec(resolved.name).beta_names
    betas = []
    for beta, meaning in zip(resolved.betas, beta_names, strict=True):
        shrink = kappa * (1.0 - beta)
        # The tolerance absorbs rounding in 1 - beta (kappa=10, beta=0.9 gives 0.9999999999999998).
        if shrink >= 1.0 - 1e-12:
            raise ValueError(
                f"Cannot apply the sqrt scaling rule with kappa={kappa:g} to {meaning} = {beta!r}: "
                f"kappa*(1-beta) = {shrink:.6g} >= 1 "
                f"(accepted: kappa < {1.0 / (1.0 - beta):.6g} for this beta)"
            )
        betas.append(1.0 - shrink)
    result["lr"] = resolved.lr * math.sqrt(kappa)
    result["betas"] = tuple(betas)
    if resolved.eps is not None:
        result["eps"] = resolved.eps / math.sqrt(kappa)
    return result
