"""Argument checks for all optimizers: one `ValueError` per bad value, naming it and what is accepted."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_lr(lr: Any) -> float:
    """Return ``lr`` as a float if it is a finite number > 0."""
    if not _is_real(lr) or lr <= 0:
        raise ValueError(f"Invalid learning rate: {lr!r} (accepted: a finite number > 0)")
    return float(lr)


def check_eps(eps: Any, name: str = "eps") -> float:
    """Return ``eps`` as a float if it is a finite number > 0."""
    if not _is_real(eps) or eps <= 0:
        raise ValueError(f"Invalid {name} value: {eps!r} (accepted: a finite number > 0)")
    return float(eps)


def check_weight_decay(weight_decay: Any) -> float:
    """Return ``weight_decay`` as a float if it is a finite number >= 0."""
    if not _is_real(weight_decay) or weight_decay < 0:
        raise ValueError(f"Invalid weight_decay value: {weight_decay!r} (accepted: a finite number >= 0)")
    return float(weight_decay)


def check_unit_interval(value: Any, name: str) -> float:
    """Return ``value`` as a float if 0 <= value < 1 (a beta, a pole, a zero)."""
    if not _is_real(value) or not 0.0 <= value < 1.0:
        raise ValueError(f"Invalid {name}: {value!r} (accepted: 0 <= {name} < 1)")
    return float(value)


def check_positive(value: Any, name: str) -> float:
    """Return ``value`` as a float if it is a finite number > 0."""
    if not _is_real(value) or value <= 0:
        raise ValueError(f"Invalid {name} value: {value!r} (accepted: a finite number > 0)")
    return float(value)


def check_nonnegative(value: Any, name: str) -> float:
    """Return ``value`` as a float if it is a finite number >= 0."""
    if not _is_real(value) or value < 0:
        raise ValueError(f"Invalid {name} value: {value!r} (accepted: a finite number >= 0)")
    return float(value)


def check_fraction(value: Any, name: str) -> float:
    """Return ``value`` as a float if 0 < value <= 1."""
    if not _is_real(value) or not 0.0 < value <= 1.0:
        raise ValueError(f"Invalid {name} value: {value!r} (accepted: 0 < {name} <= 1)")
    return float(value)


def check_bool(value: Any, name: str) -> bool:
    """Return ``value`` if it is a bool."""
    if not isinstance(value, bool):
        raise ValueError(f"Invalid {name} value: {value!r} (accepted: True or False)")
    return value


def check_bool_or_none(value: Any, name: str) -> bool | None:
    """Return ``value`` if it is ``None`` (the default), ``True`` or ``False``."""
    if value is not None and not isinstance(value, bool):
        raise ValueError(f"Invalid {name} value: {value!r} (accepted: None, True or False)")
    return value


def check_foreach(value: Any) -> bool | None:
    """Return ``value`` if it is ``None`` (the default implementation), ``True`` or ``False``."""
    if value is not None and not isinstance(value, bool):
        raise ValueError(f"Invalid foreach value: {value!r} (accepted: None, True or False)")
    return value


def check_betas(betas: Any, names: Sequence[str]) -> tuple[float, ...]:
    """Return ``betas`` as a tuple of floats if it has ``len(names)`` entries, each in [0, 1).

    ``names`` gives the meaning of each beta, used in the error message; an optimizer without betas
    has no names and accepts only an empty sequence.
    """
    if not names and (isinstance(betas, (str, bytes)) or not isinstance(betas, Sequence) or len(betas)):
        raise ValueError(f"Invalid betas: {betas!r} (accepted: none; this optimizer has no betas)")
    if isinstance(betas, (str, bytes)) or not isinstance(betas, Sequence):
        raise ValueError(
            f"Invalid betas: {betas!r} (accepted: a sequence of {len(names)} numbers in [0, 1): "
            f"{', '.join(names)})"
        )
    if len(betas) != len(names):
        raise ValueError(
            f"Invalid betas: {tuple(betas)!r} has {len(betas)} values "
            f"(accepted: exactly {len(names)}: {', '.join(names)})"
        )
    out = []
    for index, (beta, meaning) in enumerate(zip(betas, names, strict=True)):
        if not _is_real(beta) or not 0.0 <= beta < 1.0:
            raise ValueError(
                f"Invalid beta parameter at index {index} ({meaning}): {beta!r} (accepted: 0 <= beta < 1)"
            )
        out.append(float(beta))
    return tuple(out)
