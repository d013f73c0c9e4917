"""Every registered optimizer minimises a quadratic and the Rosenbrock function (one table drives both).

Deterministic: fixed starts, exact gradients, float64, the registry's defaults except lr and
weight_decay = 0 (weight decay moves the minimum). Tolerance: distance to the minimiser below 1e-3 on
the quadratic and 2e-2 on Rosenbrock.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from rlopt.optim import OPTIMIZERS, make_optimizer

CURVATURE = torch.tensor([1.0, 4.0, 10.0], dtype=torch.float64)


def quadratic_grad(x: Tensor) -> Tensor:
    """Gradient of 0.5 * sum(c_i x_i^2), minimum at 0."""
    return CURVATURE * x


def rosenbrock_grad(x: Tensor) -> Tensor:
    """Gradient of (1 - a)^2 + 100 (b - a^2)^2, minimum at (1, 1)."""
    a, b = x[0], x[1]
    return torch.stack([-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)])


PROBLEMS: dict[str, tuple[Callable[[Tensor], Tensor], list[float], list[float], float]] = {
    "quadratic": (quadratic_grad, [1.0, -2.0, 3.0], [0.0, 0.0, 0.0], 1e-3),
    "rosenbrock": (rosenbrock_grad, [-1.0, 1.5], [1.0, 1.0], 2e-2),
}

# name -> {problem: (lr, steps)}
SETTINGS: dict[str, dict[str, tuple[float, int]]] = {
    "adabelief": {"quadratic": (0.03, 1000), "rosenbrock": (0.03, 5000)},
    "adam": {"quadratic": (0.03, 1000), "rosenbrock": (0.03, 5000)},
    "adamssm": {"quadratic": (0.03, 1000), "rosenbrock": (0.03, 5000)},
    "adamw": {"quadratic": (0.03, 1000), "rosenbrock": (0.03, 5000)},
    "adan": {"quadratic": (0.03, 1000), "rosenbrock": (3e-3, 5000)},
    "adopt": {"quadratic": (0.03, 1000), "rosenbrock": (0.3, 5000)},
    "amsgrad": {"quadratic": (0.03, 1000), "rosenbrock": (0.1, 5000)},
    "dgclip": {"quadratic": (0.1, 1000), "rosenbrock": (0.03, 10000)},
    "nadam": {"quadratic": (0.03, 1000), "rosenbrock": (0.01, 5000)},
    # RAdam's first steps are un-normalised momentum SGD: a larger lr throws it far off Rosenbrock's valley.
    "radam": {"quadratic": (0.03, 1000), "rosenbrock": (3e-3, 15000)},
    # Without momentum or a decaying lr, RMSprop hovers at a distance that grows with lr.
    "rmsprop": {"quadratic": (3e-3, 2000), "rosenbrock": (3e-3, 10000)},
    "sgd": {"quadratic": (0.03, 1000), "rosenbrock": (1e-3, 5000)},
}


def test_every_registered_optimizer_has_a_convergence_setting() -> None:
    assert set(SETTINGS) == set(OPTIMIZERS)


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_optimizer_minimises_the_problem(name: str, problem: str) -> None:
    grad_fn, start, minimiser, tolerance = PROBLEMS[problem]
    lr, steps = SETTINGS[name][problem]
    x = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    optimizer = make_optimizer(name, [x], lr=lr, weight_decay=0.0)
    for _ in range(steps):
        x.grad = grad_fn(x.detach())
        optimizer.step()
    distance = float((x.detach() - torch.tensor(minimiser, dtype=torch.float64)).norm())
    assert distance < tolerance, f"{name} on {problem}: distance {distance:.3g} after {steps} steps, lr {lr}"
