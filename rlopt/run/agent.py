"""SB3 agents with one optimizer injected everywhere the agent uses one.

- PPO: the policy's optimizer, through ``policy_kwargs["optimizer_class"/"optimizer_kwargs"]``. Because
  ``optimizer_kwargs`` is never ``None``, SB3's hidden ``eps=1e-5`` for a default Adam
  (``ActorCriticPolicy.__init__``) never applies: every argument is passed explicitly.
- SAC: the actor's and the critic's optimizers the same way, and the entropy-coefficient optimizer,
  which ``SAC._setup_model`` hard-codes as ``th.optim.Adam([log_ent_coef], lr=lr_schedule(1))``: it is
  rebuilt right after setup over the same tensor with the injected optimizer and the same initial lr.

SB3 rewrites every ``param_group["lr"]`` from the agent's schedule at each ``train()`` call
(``_update_learning_rate``), for the three SAC optimizers too, so schedules keep working.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from rlopt.config.agents import AgentHparams, algo_class, initial_learning_rate, sb3_defaults, to_sb3_kwargs
from rlopt.optim import ResolvedOptimizer, build, get_spec

_OPTIMIZER_CLIP_EXTRAS = ("max_grad_norm", "clip_lambda", "clip", "clip_exponent", "gamma", "delta")


def effective_extra(resolved: ResolvedOptimizer) -> dict[str, Any]:
    """The optimizer's extra arguments with its registry defaults filled in (what the class receives)."""
    return {**get_spec(resolved.name).extra, **resolved.extra}


def sb3_optimizer_args(resolved: ResolvedOptimizer) -> tuple[type[torch.optim.Optimizer], dict[str, Any]]:
    """``(optimizer_class, optimizer_kwargs)`` for SB3 policies; SB3 passes ``lr`` itself."""
    spec = get_spec(resolved.name)
    kwargs = spec.to_kwargs(resolved)
    kwargs.pop("lr")
    return spec.cls, kwargs


def build_agent(
    hparams: AgentHparams,
    env: VecEnv,
    resolved: ResolvedOptimizer,
    seed: int,
    device: str,
) -> BaseAlgorithm:
    """Build the SB3 agent of ``hparams`` on ``env`` with ``resolved`` as every optimizer it owns.

    ``resolved.lr`` must be the initial value of the agent's learning-rate schedule (the value SB3
    hands the optimizer); the schedule then drives it.
    """
    if not math.isclose(resolved.lr, initial_learning_rate(hparams), rel_tol=1e-12):
        raise ValueError(
            f"optimizer lr {resolved.lr} differs from the agent's initial lr {initial_learning_rate(hparams)}"
        )
    kwargs = to_sb3_kwargs(hparams)
    optimizer_class, optimizer_kwargs = sb3_optimizer_args(resolved)
    kwargs["policy_kwargs"] = {
        **kwargs["policy_kwargs"],
        "optimizer_class": optimizer_class,
        "optimizer_kwargs": optimizer_kwargs,
    }
    model = algo_class(hparams.algo)("MlpPolicy", env, seed=seed, device=device, verbose=0, **kwargs)
    if getattr(model, "ent_coef_optimizer", None) is not None:
        ent_resolved = dataclasses.replace(resolved, lr=model.lr_schedule(1))
        model.ent_coef_optimizer = build(ent_resolved, [model.log_ent_coef])
    return model


def agent_optimizers(model: BaseAlgorithm) -> dict[str, torch.optim.Optimizer]:
    """Every optimizer the agent steps, by role: PPO ``policy``; SAC ``actor``, ``critic``, ``ent_coef``."""
    if hasattr(model, "actor") and hasattr(model, "critic"):
        out = {"actor": model.actor.optimizer, "critic": model.critic.optimizer}
        ent_coef_optimizer = getattr(model, "ent_coef_optimizer", None)
        if ent_coef_optimizer is not None:
            out["ent_coef"] = ent_coef_optimizer
        return out
    return {"policy": model.policy.optimizer}


def gradient_clipping(hparams: AgentHparams, resolved: ResolvedOptimizer) -> dict[str, Any]:
    """Which gradient clipping is active: the agent's (PPO ``max_grad_norm``) and the optimizer's own.

    Returns:
        ``{"agent": {...} | None, "optimizer": {...} | None, "summary": str}``. PPO always calls
        ``clip_grad_norm_(max_grad_norm)`` before ``step()`` (inactive only for ``max_grad_norm=inf``);
        SB3's SAC does not clip. The optimizer's own clipping is δ-GClip's step-size rule, or a
        clipping argument such as Adan's ``max_grad_norm`` (> 0) or ADOPT's clip schedule.
    """
    agent: dict[str, Any] | None = None
    if hparams.algo == "ppo":
        max_norm = float(hparams.kwargs.get("max_grad_norm", sb3_defaults("ppo")["max_grad_norm"]))
        if math.isfinite(max_norm):
            agent = {
                "kind": "global_norm",
                "by": "PPO max_grad_norm (clip_grad_norm_ before step)",
                "max_norm": max_norm,
            }
    optimizer: dict[str, Any] | None = None
    extra = effective_extra(resolved)
    if resolved.name == "dgclip":
        optimizer = {
            "kind": "delta-GClip step size lr*min(1, max(delta, gamma/||g||))",
            **{k: extra[k] for k in ("gamma", "delta") if k in extra},
        }
    else:
        active = {}
        for key in _OPTIMIZER_CLIP_EXTRAS:
            value = extra.get(key)
            if value is None or value is False or key in ("gamma", "delta"):
                continue
            if isinstance(value, (int, float)) and value <= 0:
                continue
            active[key] = value if isinstance(value, (int, float, str, bool)) else repr(value)
        if active:
            optimizer = {"kind": f"{resolved.name}'s own clipping", **active}
    parts = []
    if agent:
        parts.append(f"PPO global-norm clip at {agent['max_norm']:g}")
    if optimizer:
        parts.append(str(optimizer["kind"]))
    return {"agent": agent, "optimizer": optimizer, "summary": " + ".join(parts) or "none"}
