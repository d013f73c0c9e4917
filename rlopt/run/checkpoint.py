"""Checkpoints of a training run: everything that decides what it computes next, so that a run stopped
at any moment (a kill -9, a session that ends) continues from its last checkpoint *bit for bit* as if
it had never stopped.

A checkpoint is taken at a rollout start (PPO: after the previous ``train()``, before the next rollout;
SAC: after the previous gradient steps), the first one at or past every ``checkpoint_every`` env steps.
There the state of a run is:

- the agent: policy (and target networks), every optimizer's ``state_dict`` (SAC's entropy optimizer
  and ``log_ent_coef`` included), SB3's counters and the last observation it acts on;
- the random streams: torch's, NumPy's global one (PPO's minibatch order, SAC's replay sampling),
  Python's, the action space's (SAC's warm-up actions);
- the training and evaluation envs: ``VecNormalize``'s running statistics and discounted returns,
  ``DummyVecEnv``'s buffers, every wrapper's counters (``Monitor``'s episode so far, ``TimeLimit``'s
  step count), the task's random generator and MuJoCo's whole ``MjData`` (positions, velocities,
  warm start and the derived quantities a step reads before it integrates, such as Ant's body
  positions: a partial state is not enough);
- SAC's replay buffer (the filled part);
- the run's own bookkeeping: evaluations so far, the next evaluation step, the stability counters,
  the diagnostics counters, the gradient steps and the wall time spent.

Tasks: Gymnasium's MuJoCo tasks, and tasks whose whole state is plain attributes (numbers, arrays:
the classic-control ones); a task keeping state in other objects (Box2D's worlds) would not resume
exactly. Vectorised envs: ``DummyVecEnv`` (under ``VecNormalize`` or not), as every rlopt run has.

The file is ``checkpoint.pt`` in the run folder, written atomically (a temporary file renamed over the
old one), so a kill while writing leaves the previous checkpoint. It is a pickle (``torch.save``): load
only checkpoints you made. Written by hand: SB3's ``save``/``load`` keep neither the envs' state nor
the random streams, so a loaded agent does not continue the same run.
"""

from __future__ import annotations

import copy
import pickle
import random
import zlib
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecNormalize

from rlopt import atomic
from rlopt.optim._flat import FlatLayouts

CHECKPOINT_FILE = "checkpoint.pt"
FORMAT = 1
"""Bumped when the layout changes; a checkpoint of another format is not resumed (the run restarts)."""

_ALGORITHM_ATTRS = (
    "num_timesteps",
    "_n_updates",
    "_episode_num",
    "_last_obs",
    "_last_episode_starts",
    "_last_original_obs",
    "ep_info_buffer",
    "ep_success_buffer",
    "_current_progress_remaining",
)
_VEC_NORMALIZE_ATTRS = ("obs_rms", "ret_rms", "returns", "old_obs", "old_reward")
_DUMMY_VEC_ENV_ATTRS = ("buf_obs", "buf_dones", "buf_rews", "buf_infos", "_seeds", "_options", "reset_infos")
_SKIPPED_ENV_ATTRS = ("env", "_np_random", "model", "data")


def _is_plain(value: Any) -> bool:
    """Whether ``value`` is data (numbers, strings, arrays and containers of them), not an object."""
    if value is None or isinstance(value, (bool, int, float, str, bytes, np.ndarray, np.generic)):
        return True
    if isinstance(value, (list, tuple, deque)):
        return all(_is_plain(v) for v in value)
    if isinstance(value, Mapping):
        return all(isinstance(k, (str, int)) and _is_plain(v) for k, v in value.items())
    return False


def _plain_attrs(obj: Any) -> dict[str, Any]:
    """Copies of the data attributes of one env layer (its counters, buffers, flags)."""
    return {
        key: copy.deepcopy(value)
        for key, value in vars(obj).items()
        if key not in _SKIPPED_ENV_ATTRS and _is_plain(value)
    }


def _gym_env_state(env: gym.Env) -> dict[str, Any]:
    layers = []
    layer: Any = env
    while isinstance(layer, gym.Wrapper):
        layers.append(_plain_attrs(layer))
        layer = layer.env
    generator = getattr(layer, "_np_random", None)
    data = getattr(layer, "data", None)
    if data is not None and type(data).__name__ != "MjData":
        data = None  # not a MuJoCo task: its plain attributes are its state
    return {
        "wrappers": layers,
        "base": _plain_attrs(layer),  # _np_random_seed included
        "np_random": None if generator is None else generator.bit_generator.state,
        "mjdata": None if data is None else zlib.compress(pickle.dumps(data), 1),
    }


def _restore_gym_env(env: gym.Env, state: Mapping[str, Any]) -> None:
    layer: Any = env
    for attrs in state["wrappers"]:
        if not isinstance(layer, gym.Wrapper):
            raise ValueError("the checkpoint's env has more wrappers than this run's")
        for key, value in attrs.items():
            setattr(layer, key, copy.deepcopy(value))
        layer = layer.env
    if state["np_random"] is not None:  # (a generator of the saved kind, without seeding one anew)
        bit_generator = getattr(np.random, state["np_random"]["bit_generator"])()
        bit_generator.state = state["np_random"]
        layer._np_random = np.random.Generator(bit_generator)
    for key, value in state["base"].items():
        setattr(layer, key, copy.deepcopy(value))
    if state["mjdata"] is not None:
        import mujoco

        saved = pickle.loads(zlib.decompress(state["mjdata"]))
        mujoco.mj_copyData(layer.data, layer.model, saved)


def vec_env_state(env: VecEnv) -> dict[str, Any]:
    """The state of a run's vectorised env (``VecNormalize`` over ``DummyVecEnv``, or the latter)."""
    out: dict[str, Any] = {"normalize": None}
    if isinstance(env, VecNormalize):
        # (an eval env not yet reset has no old_obs: only what is set is kept)
        found = vars(env)
        out["normalize"] = {key: copy.deepcopy(found[key]) for key in _VEC_NORMALIZE_ATTRS if key in found}
        env = env.venv
    if not isinstance(env, DummyVecEnv):
        raise TypeError(f"checkpoints support DummyVecEnv envs, not {type(env).__name__}")
    out["buffers"] = {key: copy.deepcopy(vars(env)[key]) for key in _DUMMY_VEC_ENV_ATTRS if key in vars(env)}
    out["envs"] = [_gym_env_state(e) for e in env.envs]
    return out


def restore_vec_env(env: VecEnv, state: Mapping[str, Any]) -> None:
    """Put ``state`` (:func:`vec_env_state`) into a freshly built env of the same run."""
    if state["normalize"] is not None:
        if not isinstance(env, VecNormalize):
            raise ValueError("the checkpoint's env is normalised and this run's is not")
        for key, value in state["normalize"].items():
            setattr(env, key, copy.deepcopy(value))
        env = env.venv
    assert isinstance(env, DummyVecEnv)
    for key, value in state["buffers"].items():
        setattr(env, key, copy.deepcopy(value))
    if len(env.envs) != len(state["envs"]):
        raise ValueError(f"the checkpoint has {len(state['envs'])} envs and this run {len(env.envs)}")
    for gym_env, env_state in zip(env.envs, state["envs"], strict=True):
        _restore_gym_env(gym_env, env_state)


def rng_state(model: BaseAlgorithm) -> dict[str, Any]:
    """The random streams a run draws from."""
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "numpy": np.random.get_state(),
        "python": random.getstate(),
        "action_space": model.action_space.np_random.bit_generator.state,
    }


def restore_rng(model: BaseAlgorithm, state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    model.action_space.np_random.bit_generator.state = state["action_space"]


def _replay_buffer_state(model: BaseAlgorithm) -> dict[str, Any] | None:
    buffer = getattr(model, "replay_buffer", None)
    if buffer is None:
        return None
    if any(isinstance(value, dict) for value in vars(buffer).values()):  # DictReplayBuffer, HER
        raise TypeError(f"checkpoints support ReplayBuffer, not {type(buffer).__name__}")
    filled = buffer.buffer_size if buffer.full else buffer.pos
    arrays = {
        key: value[:filled].copy()
        for key, value in vars(buffer).items()
        if isinstance(value, np.ndarray) and value.ndim > 0 and value.shape[0] == buffer.buffer_size
    }
    return {"pos": buffer.pos, "full": buffer.full, "arrays": arrays}


def _restore_replay_buffer(model: BaseAlgorithm, state: Mapping[str, Any] | None) -> None:
    if state is None:
        return
    buffer = model.replay_buffer  # type: ignore[attr-defined]
    for key, saved in state["arrays"].items():
        getattr(buffer, key)[: len(saved)] = saved
    buffer.pos, buffer.full = state["pos"], state["full"]


def agent_state(model: BaseAlgorithm, optimizers: Mapping[str, torch.optim.Optimizer]) -> dict[str, Any]:
    """The agent's parameters, optimizer states, counters, random streams and replay buffer."""
    log_ent_coef = getattr(model, "log_ent_coef", None)
    return {
        "policy": model.policy.state_dict(),
        "optimizers": {role: opt.state_dict() for role, opt in optimizers.items()},
        "log_ent_coef": None if log_ent_coef is None else log_ent_coef.detach().clone(),
        "algorithm": {key: copy.deepcopy(getattr(model, key)) for key in _ALGORITHM_ATTRS},
        "rng": rng_state(model),
        "replay_buffer": _replay_buffer_state(model),
    }


def restore_agent(
    model: BaseAlgorithm, optimizers: Mapping[str, torch.optim.Optimizer], state: Mapping[str, Any]
) -> None:
    """Put ``state`` (:func:`agent_state`) into a freshly built agent of the same run, in place (the
    optimizers keep their parameters, flat layouts included)."""
    model.policy.load_state_dict(state["policy"])
    if set(optimizers) != set(state["optimizers"]):
        saved = sorted(state["optimizers"])
        raise ValueError(f"the checkpoint has optimizers {saved}, the run {sorted(optimizers)}")
    for role, optimizer in optimizers.items():
        optimizer.load_state_dict(state["optimizers"][role])
        if isinstance(optimizer, FlatLayouts):  # parameters back in their flat buffers before any forward
            optimizer.lay_out()
    if state["log_ent_coef"] is not None:
        with torch.no_grad():
            model.log_ent_coef.copy_(state["log_ent_coef"])  # type: ignore[attr-defined]
    for key, value in state["algorithm"].items():
        setattr(model, key, copy.deepcopy(value))
    _restore_replay_buffer(model, state["replay_buffer"])
    restore_rng(model, state["rng"])


_LOGGER_ATTRS = ("name_to_value", "name_to_count", "name_to_excluded")


def logger_state(logger: Any) -> dict[str, Any]:
    """The values SB3's logger holds until its next dump (the last ``train()``'s losses, which the
    diagnostics read at the next rollout end)."""
    return {key: copy.deepcopy(dict(getattr(logger, key))) for key in _LOGGER_ATTRS}


def restore_logger(logger: Any, state: Mapping[str, Any]) -> None:
    for key, values in state.items():
        getattr(logger, key).update(copy.deepcopy(values))


def write_checkpoint(run_dir: Path, state: Mapping[str, Any]) -> None:
    """Write ``checkpoint.pt`` atomically: the previous checkpoint stays until the new one is whole."""
    atomic.write_file(
        run_dir / CHECKPOINT_FILE, lambda fh: torch.save({"format": FORMAT, **state}, fh), sync=True
    )


def read_checkpoint(run_dir: Path) -> dict[str, Any] | None:
    """The run folder's checkpoint, or None if it has none (or one of another format)."""
    path = run_dir / CHECKPOINT_FILE
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)  # our own file: see the module docstring
    return state if isinstance(state, dict) and state.get("format") == FORMAT else None


class CheckpointCallback(BaseCallback):
    """Calls ``save()`` at the first rollout start at or past every ``every`` env steps.

    Put it after the callbacks that check the parameters at a rollout start (a diverged run is not
    checkpointed). ``start`` is the env step the run resumed from (no checkpoint is written there again).
    """

    def __init__(self, every: int, save: Callable[[], None], start: int = 0) -> None:
        super().__init__(verbose=0)
        self.every = every
        self.save = save
        self._next = (start // every + 1) * every

    def _on_rollout_start(self) -> None:
        if self.num_timesteps >= self._next:
            self._next = (self.num_timesteps // self.every + 1) * self.every
            self.save()

    def _on_step(self) -> bool:
        return True
