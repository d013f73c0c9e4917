"""The chosen optimizer replaces every optimizer the agent owns, with every argument explicit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlopt.config.agents import initial_learning_rate, resolve_agent
from rlopt.optim import OPTIMIZERS, get_spec, resolve
from rlopt.run.agent import agent_optimizers, build_agent, gradient_clipping
from rlopt.run.envs import make_train_env

SEED_PAPER_OPTIMIZERS = ["adopt", "adan", "dgclip", "adabelief", "adamssm"]


def _agent(algo: str, optimizer: str, overrides: dict | None = None, **optimizer_args: object):
    tiny = {
        "ppo": {"n_steps": 64, "batch_size": 32, "n_epochs": 1},
        "sac": {"learning_starts": 32, "batch_size": 16, "buffer_size": 500},
    }[algo]
    hp = resolve_agent(
        algo, "InvertedPendulum-v5", {**tiny, "policy_kwargs": {"net_arch": [8]}, **(overrides or {})}
    )
    resolved = resolve(optimizer, lr=initial_learning_rate(hp), **optimizer_args)
    env = make_train_env(hp.task, 1, 0, hp.normalize, 0.99)
    return build_agent(hp, env, resolved, seed=0, device="cpu"), resolved


def test_the_seed_papers_optimizers_are_registered() -> None:
    assert set(SEED_PAPER_OPTIMIZERS) <= set(OPTIMIZERS)


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop", "sgd", *SEED_PAPER_OPTIMIZERS])
def test_ppo_policy_optimizer_is_the_injected_class_with_its_resolved_arguments(optimizer: str) -> None:
    model, resolved = _agent("ppo", optimizer)
    opt = model.policy.optimizer
    assert type(opt) is get_spec(optimizer).cls
    group = opt.param_groups[0]
    assert group["lr"] == resolved.lr
    assert {id(p) for p in group["params"]} == {id(p) for p in model.policy.parameters()}
    if "betas" in group:
        assert tuple(group["betas"]) == resolved.betas
    if resolved.eps is not None and "eps" in group:
        assert group["eps"] == resolved.eps


def test_ppo_adam_never_gets_sb3s_hidden_eps() -> None:
    model, _ = _agent("ppo", "adam")
    assert model.policy.optimizer.param_groups[0]["eps"] == 1e-8
    model, _ = _agent("ppo", "adam", eps=1e-5, betas=(0.8, 0.99), weight_decay=1e-4)
    group = model.policy.optimizer.param_groups[0]
    assert (group["eps"], group["betas"], group["weight_decay"]) == (1e-5, (0.8, 0.99), 1e-4)


@pytest.mark.parametrize("optimizer", ["adam", *SEED_PAPER_OPTIMIZERS])
def test_sac_actor_critic_and_entropy_optimizers_are_all_injected(optimizer: str) -> None:
    model, resolved = _agent("sac", optimizer)
    optimizers = agent_optimizers(model)
    assert set(optimizers) == {"actor", "critic", "ent_coef"}
    cls = get_spec(optimizer).cls
    assert all(type(opt) is cls for opt in optimizers.values())
    ent = model.ent_coef_optimizer
    assert ent.param_groups[0]["params"][0] is model.log_ent_coef
    assert ent.param_groups[0]["lr"] == model.lr_schedule(1) == resolved.lr


def test_learning_rate_schedule_drives_every_injected_optimizer() -> None:
    model, _ = _agent("sac", "adopt", {"learning_rate": "lin_1e-3"})
    model.learn(64)
    expected = model.lr_schedule(model._current_progress_remaining)
    assert expected < 1e-3
    for opt in agent_optimizers(model).values():
        assert opt.param_groups[0]["lr"] == pytest.approx(expected)


def test_sac_entropy_coefficient_is_learned_by_the_injected_optimizer() -> None:
    model, _ = _agent("sac", "dgclip")
    before = model.log_ent_coef.detach().clone()
    model.learn(64)
    assert type(model.ent_coef_optimizer).__name__ == type(model.actor.optimizer).__name__
    assert not torch.equal(before, model.log_ent_coef.detach())
    assert np.isfinite(model.log_ent_coef.item())


def test_gradient_clipping_record_names_ppo_and_optimizer_clipping() -> None:
    hp = resolve_agent("ppo", "InvertedPendulum-v5")
    clip = gradient_clipping(hp, resolve("dgclip", lr=0.1))
    assert clip["agent"]["max_norm"] == 0.3
    assert "delta-GClip" in clip["optimizer"]["kind"] and clip["optimizer"]["gamma"] == 0.1
    clip = gradient_clipping(hp, resolve("adan", lr=1e-3, max_grad_norm=1.0))
    assert clip["optimizer"]["max_grad_norm"] == 1.0
    assert gradient_clipping(hp, resolve("adan", lr=1e-3))["optimizer"] is None
    sac = resolve_agent("sac", "InvertedPendulum-v5")
    assert gradient_clipping(sac, resolve("adam", lr=3e-4)) == {
        "agent": None,
        "optimizer": None,
        "summary": "none",
    }
    no_clip = resolve_agent("ppo", "InvertedPendulum-v5", {"max_grad_norm": float("inf")})
    assert gradient_clipping(no_clip, resolve("adam", lr=1e-3))["agent"] is None
