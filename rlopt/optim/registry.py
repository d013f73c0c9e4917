"""The optimizer registry: every optimizer reachable by name with one set of argument names.

``make_optimizer(name, params, lr=..., betas=..., eps=..., weight_decay=..., **extra)`` resolves the
uniform arguments against the optimizer's defaults, validates them, maps them onto the class's own
keyword names (``betas=(0.9,)`` becomes ``momentum=0.9`` for SGD, ``alpha=0.99`` for RMSprop) and builds
the optimizer. ``OPTIMIZERS`` maps each name to its :class:`OptimizerSpec`.

Optimizers of the ``pytorch-optimizer`` package, where it is installed, are reachable as
``pytorch_optimizer:<name>`` (e.g. ``pytorch_optimizer:lion``); rlopt's own stay the default for the
seed papers' methods.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from rlopt.optim import adabelief, adamssm, adan, adopt
from rlopt.optim.adabelief import AdaBelief
from rlopt.optim.adamssm import AdamSSM
from rlopt.optim.adan import Adan
from rlopt.optim.adopt import ADOPT
from rlopt.optim.dgclip import DeltaGClip
from rlopt.optim.flat_adam import Adam as FlatAdam
from rlopt.optim.flat_adam import AdamW as FlatAdamW
from rlopt.optim.validation import check_betas, check_eps, check_lr, check_weight_decay

PYTORCH_OPTIMIZER_PREFIX = "pytorch_optimizer:"

KwargsMapper = Callable[["ResolvedOptimizer"], dict[str, Any]]


@dataclass(frozen=True)
class ResolvedOptimizer:
    """Fully resolved, validated hyperparameters of one optimizer, as recorded in a run's config."""

    name: str
    lr: float
    betas: tuple[float, ...]
    eps: float | None
    weight_decay: float
    extra: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "lr": self.lr,
            "betas": list(self.betas),
            "eps": self.eps,
            "weight_decay": self.weight_decay,
            **{k: v for k, v in self.extra.items()},
        }


def _standard_kwargs(resolved: ResolvedOptimizer) -> dict[str, Any]:
    """Adam-like classes: ``lr``, ``betas``, ``eps``, ``weight_decay`` under those names."""
    kwargs: dict[str, Any] = {"lr": resolved.lr, "weight_decay": resolved.weight_decay, **resolved.extra}
    if resolved.betas:
        kwargs["betas"] = resolved.betas
    if resolved.eps is not None:
        kwargs["eps"] = resolved.eps
    return kwargs


@dataclass(frozen=True)
class OptimizerSpec:
    """What the registry knows about one optimizer.

    Attributes:
        name: registry name (lower case).
        cls: the ``torch.optim.Optimizer`` subclass.
        lr, betas, eps, weight_decay: defaults of the uniform arguments (``eps=None``: the method has
            no eps, and passing one is an error).
        beta_names: meaning of each beta, in order; its length is the number of betas accepted.
        extra: further keyword arguments accepted, with their defaults.
        paper: the reference the update rule comes from.
        source: ``"rlopt"``, ``"torch.optim"`` or ``"pytorch-optimizer"``.
        to_kwargs: maps resolved uniform arguments onto the class's own keyword names.
    """

    name: str
    cls: type[torch.optim.Optimizer]
    lr: float
    betas: tuple[float, ...]
    beta_names: tuple[str, ...]
    eps: float | None
    weight_decay: float
    paper: str
    source: str
    extra: Mapping[str, Any] = field(default_factory=dict)
    to_kwargs: KwargsMapper = _standard_kwargs


def _sgd_kwargs(resolved: ResolvedOptimizer) -> dict[str, Any]:
    return {
        "lr": resolved.lr,
        "momentum": resolved.betas[0],
        "weight_decay": resolved.weight_decay,
        **resolved.extra,
    }


def _rmsprop_kwargs(resolved: ResolvedOptimizer) -> dict[str, Any]:
    return {
        "lr": resolved.lr,
        "alpha": resolved.betas[0],
        "eps": resolved.eps,
        "weight_decay": resolved.weight_decay,
        **resolved.extra,
    }


def _amsgrad_kwargs(resolved: ResolvedOptimizer) -> dict[str, Any]:
    return {**_standard_kwargs(resolved), "amsgrad": True}


_ADAM_BETAS = ("beta1: first-moment decay", "beta2: second-moment decay")
_FAST_TORCH = {"foreach": None, "fused": None}
# torch.optim's Adam/AdamW kernels on flat buffers (rlopt.optim.flat_adam): fused on the CPU by default,
# fused=False for torch's default arithmetic bit for bit.
_FLAT_TORCH = {**_FAST_TORCH, "flat": None}
# rlopt's own: flat buffers by default (fastest), foreach or the per-tensor reference on request.
_FAST_RLOPT = {"foreach": None, "flat": None}
# ... and where the rule has a compiled kernel (rlopt.optim._compiled): fused=True, opt-in.
_FUSED_RLOPT = {**_FAST_RLOPT, "fused": False}

OPTIMIZERS: dict[str, OptimizerSpec] = {}


def register(spec: OptimizerSpec) -> OptimizerSpec:
    """Add ``spec`` to :data:`OPTIMIZERS`; a name may be registered once."""
    if spec.name in OPTIMIZERS:
        raise ValueError(f"optimizer {spec.name!r} is already registered")
    if len(spec.betas) != len(spec.beta_names):
        raise ValueError(f"optimizer {spec.name!r}: {len(spec.betas)} default betas for {spec.beta_names}")
    OPTIMIZERS[spec.name] = spec
    return spec


for _spec in (
    OptimizerSpec(
        "adam", FlatAdam, 1e-3, (0.9, 0.999), _ADAM_BETAS, 1e-8, 0.0,
        "Kingma & Ba 2015, Adam: A Method for Stochastic Optimization", "torch.optim",
        extra=_FLAT_TORCH,
    ),
    OptimizerSpec(
        "amsgrad", FlatAdam, 1e-3, (0.9, 0.999), _ADAM_BETAS, 1e-8, 0.0,
        "Reddi et al. 2018, On the Convergence of Adam and Beyond", "torch.optim",
        extra=_FLAT_TORCH, to_kwargs=_amsgrad_kwargs,
    ),
    OptimizerSpec(
        "adamw", FlatAdamW, 1e-3, (0.9, 0.999), _ADAM_BETAS, 1e-8, 1e-2,
        "Loshchilov & Hutter 2019, Decoupled Weight Decay Regularization", "torch.optim",
        extra=_FLAT_TORCH,
    ),
    OptimizerSpec(
        "rmsprop", torch.optim.RMSprop, 1e-2, (0.99,), ("alpha: second-moment decay",), 1e-8, 0.0,
        "Tieleman & Hinton 2012, Lecture 6.5 (RMSprop)", "torch.optim",
        extra={"momentum": 0.0, "centered": False, "foreach": None}, to_kwargs=_rmsprop_kwargs,
    ),
    OptimizerSpec(
        "sgd", torch.optim.SGD, 1e-2, (0.9,), ("momentum",), None, 0.0,
        "Polyak 1964 heavy-ball momentum (torch.optim.SGD)", "torch.optim",
        extra={"nesterov": False, "dampening": 0.0, "foreach": None}, to_kwargs=_sgd_kwargs,
    ),
    OptimizerSpec(
        "nadam", torch.optim.NAdam, 2e-3, (0.9, 0.999), _ADAM_BETAS, 1e-8, 0.0,
        "Dozat 2016, Incorporating Nesterov Momentum into Adam", "torch.optim",
        extra={"momentum_decay": 4e-3, "decoupled_weight_decay": False, "foreach": None},
    ),
    OptimizerSpec(
        "radam", torch.optim.RAdam, 1e-3, (0.9, 0.999), _ADAM_BETAS, 1e-8, 0.0,
        "Liu et al. 2020, On the Variance of the Adaptive Learning Rate and Beyond", "torch.optim",
        extra={"decoupled_weight_decay": False, "foreach": None},
    ),
    OptimizerSpec(
        "adopt", ADOPT, 1e-3, (0.9, 0.9999), adopt.BETA_NAMES, 1e-6, 0.0,
        "Taniguchi et al. 2024, ADOPT: Modified Adam Can Converge with Any beta2 with the Optimal Rate",
        "rlopt", extra={"decoupled_weight_decay": False, "clip_exponent": 0.25, **_FUSED_RLOPT},
    ),
    OptimizerSpec(
        "adan", Adan, 1e-3, (0.98, 0.92, 0.99), adan.BETA_NAMES, 1e-8, 0.0,
        "Xie et al. 2022, Adan: Adaptive Nesterov Momentum Algorithm for Faster Optimizing Deep Models",
        "rlopt", extra={"no_prox": False, "max_grad_norm": 0.0, **_FUSED_RLOPT},
    ),
    OptimizerSpec(
        "adabelief", AdaBelief, 1e-3, (0.9, 0.999), adabelief.BETA_NAMES, 1e-16, 0.0,
        "Zhuang et al. 2020, AdaBelief Optimizer: Adapting Stepsizes by the Belief in Observed Gradients",
        "rlopt", extra=_FUSED_RLOPT,
    ),
    OptimizerSpec(
        "adamssm", AdamSSM, 1e-3, (0.9, 0.999), adamssm.BETA_NAMES, 1e-8, 0.0,
        "Chakrabarti & Chopra 2022, A Control Theoretic Framework for Adaptive Gradient Optimizers "
        "(rlopt's pole-zero realisation, not the paper's verified equations)",
        "rlopt", extra={"rho": 0.9, "zeta": 0.8, **_FUSED_RLOPT},
    ),
    OptimizerSpec(
        "dgclip", DeltaGClip, 0.1, (), (), None, 0.0,
        "Tucat & Mukherjee 2024, Regularized Gradient Clipping Provably Trains Wide and Deep Neural Networks",
        "rlopt", extra={"gamma": 0.1, "delta": 1e-3, **_FAST_RLOPT},
    ),
):
    register(_spec)


def known_names() -> list[str]:
    """Registered names (the ``pytorch_optimizer:`` prefix is accepted in addition)."""
    return sorted(OPTIMIZERS)


def _pytorch_optimizer_spec(name: str) -> OptimizerSpec:
    """Build a spec on the fly for ``pytorch_optimizer:<inner>`` from the class's own signature."""
    inner = name[len(PYTORCH_OPTIMIZER_PREFIX):]
    try:
        import pytorch_optimizer
    except ImportError as exc:
        raise ValueError(
            f"Unknown optimizer {name!r}: the pytorch-optimizer package is not installed "
            "(pip install pytorch-optimizer)"
        ) from exc
    supported = sorted(pytorch_optimizer.get_supported_optimizers())
    if inner.lower() not in supported:
        raise ValueError(
            f"Unknown optimizer {name!r} "
            f"(accepted after {PYTORCH_OPTIMIZER_PREFIX!r}: {', '.join(supported)})"
        )
    cls = pytorch_optimizer.load_optimizer(inner.lower())
    params = inspect.signature(cls.__init__).parameters

    def default(key: str, fallback: Any) -> Any:
        p = params.get(key)
        return fallback if p is None or p.default is inspect.Parameter.empty else p.default

    betas = tuple(default("betas", ()))
    uniform = {"self", "params", "lr", "betas", "eps", "weight_decay", "kwargs"}
    extra = {
        k: p.default
        for k, p in params.items()
        if k not in uniform and p.default is not inspect.Parameter.empty
    }
    return OptimizerSpec(
        name=name, cls=cls, lr=float(default("lr", 1e-3)), betas=betas,
        beta_names=tuple(f"beta{i + 1}" for i in range(len(betas))),
        eps=default("eps", None) if "eps" in params else None,
        weight_decay=float(default("weight_decay", 0.0)), paper=f"see pytorch-optimizer's {cls.__name__}",
        source="pytorch-optimizer", extra=extra,
    )


def get_spec(name: str) -> OptimizerSpec:
    """Look up ``name`` (case-insensitive); an unknown name raises a ``ValueError`` listing the known ones."""
    if not isinstance(name, str):
        raise ValueError(f"Unknown optimizer {name!r} (accepted: {', '.join(known_names())})")
    if name.startswith(PYTORCH_OPTIMIZER_PREFIX):
        return _pytorch_optimizer_spec(name)
    spec = OPTIMIZERS.get(name.lower())
    if spec is None:
        raise ValueError(
            f"Unknown optimizer {name!r} (accepted: {', '.join(known_names())}, "
            f"or {PYTORCH_OPTIMIZER_PREFIX}<name> for any pytorch-optimizer optimizer)"
        )
    return spec


def resolve(
    name: str,
    lr: float | None = None,
    betas: Iterable[float] | None = None,
    eps: float | None = None,
    weight_decay: float | None = None,
    **extra: Any,
) -> ResolvedOptimizer:
    """Fill unset arguments from the optimizer's defaults and validate all of them.

    Raises:
        ValueError: naming the bad value and what is accepted.
    """
    spec = get_spec(name)
    resolved_lr = check_lr(spec.lr if lr is None else lr)
    resolved_betas = check_betas(spec.betas if betas is None else tuple(betas), spec.beta_names)
    if spec.eps is None:
        if eps is not None:
            raise ValueError(
                f"Invalid eps for optimizer {spec.name!r}: {eps!r} (accepted: none; it has no eps)"
            )
        resolved_eps = None
    else:
        resolved_eps = check_eps(spec.eps if eps is None else eps)
    resolved_wd = check_weight_decay(spec.weight_decay if weight_decay is None else weight_decay)
    unknown = sorted(set(extra) - set(spec.extra))
    if unknown:
        accepted = ", ".join(sorted(spec.extra)) or "none"
        raise ValueError(
            f"Unknown argument {unknown[0]!r} for optimizer {spec.name!r} "
            f"(accepted: lr, betas, eps, weight_decay; extra: {accepted})"
        )
    resolved = ResolvedOptimizer(
        name=spec.name, lr=resolved_lr, betas=resolved_betas, eps=resolved_eps,
        weight_decay=resolved_wd, extra={**extra},
    )
    _check_with_class(spec, resolved)
    return resolved


def _check_with_class(spec: OptimizerSpec, resolved: ResolvedOptimizer) -> None:
    """Let the class check its own arguments (the extra ones too) by building it over a throwaway tensor.

    This keeps one source of truth for each optimizer's rules (e.g. AdamSSM's ``zeta <= rho``) while
    still failing in :func:`resolve`, before anything is written.
    """
    try:
        spec.cls([torch.zeros(1, requires_grad=True)], **spec.to_kwargs(resolved))
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"Invalid arguments for optimizer {spec.name!r}: {exc}") from exc


def build(resolved: ResolvedOptimizer, params: Any) -> torch.optim.Optimizer:
    """Build the optimizer described by ``resolved`` over ``params``."""
    spec = get_spec(resolved.name)
    return spec.cls(params, **spec.to_kwargs(resolved))


def make_optimizer(
    name: str,
    params: Any,
    lr: float | None = None,
    betas: Iterable[float] | None = None,
    eps: float | None = None,
    weight_decay: float | None = None,
    **extra: Any,
) -> torch.optim.Optimizer:
    """Build optimizer ``name`` over ``params`` with the uniform argument names.

    Unset arguments take the optimizer's defaults (see ``OPTIMIZERS[name]``). Every argument is
    validated here: 0 <= beta < 1 with the right number of betas, lr > 0, eps > 0, weight_decay >= 0,
    known extra arguments only.

    Example:
        >>> opt = make_optimizer("adopt", model.parameters(), lr=3e-4, betas=(0.9, 0.9999))
    """
    return build(resolve(name, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, **extra), params)
