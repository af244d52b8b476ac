"""The embedded default checkpoints: each committed one loads strictly and carries a valid card.

Parametrised over what is committed under ``internal_rl_gym/checkpoints/``, so a checkpoint added
later is covered without editing this file.
"""

from __future__ import annotations

import pytest
from huggingface_hub import ModelCard

from internal_rl_gym.hub import CHECKPOINT_DIR, DEFAULT_CHECKPOINTS, available_defaults

COMMITTED = (
    sorted(p for p in CHECKPOINT_DIR.iterdir() if p.is_dir()) if CHECKPOINT_DIR.is_dir() else []
)


@pytest.mark.parametrize("folder", COMMITTED, ids=lambda p: p.name)
def test_every_committed_checkpoint_has_a_card_with_hub_metadata(folder):
    card = ModelCard.load(folder / "README.md")
    data = card.data.to_dict()
    assert data.get("library_name") and data.get("tags"), f"{folder.name}: card lacks metadata"
    assert "reinforcement-learning" in data["tags"]


@pytest.mark.parametrize("name", available_defaults(), ids=str)
def test_every_available_default_loads(name):
    from internal_rl_gym import load_base_model, load_metacontroller, load_subgoal_controllers

    kind = DEFAULT_CHECKPOINTS[name].kind
    if kind == "base_model":
        model = load_base_model(name)
        assert model.n_params > 0
        assert 0 <= model.control_layer <= model.n_layers
    else:
        base = load_base_model(DEFAULT_CHECKPOINTS[name].base_model)
        load = load_subgoal_controllers if kind == "subgoal_controllers" else load_metacontroller
        acting = load(name, base_model=base)
        if kind == "subgoal_controllers":  # the oracle steers where the base model says
            assert acting.layer == base.control_layer


def test_missing_default_gives_a_clear_error(monkeypatch):
    """A default listed but not in this installation (e.g. one added to the list before its
    files are committed) says so, instead of a bare file-not-found."""
    from internal_rl_gym import hub

    ghost = hub.DefaultCheckpoint("ghost-transformer", "base_model", "internal-rl-gym/ghost")
    monkeypatch.setitem(hub.DEFAULT_CHECKPOINTS, ghost.name, ghost)
    assert ghost.name not in available_defaults()
    with pytest.raises(hub.CheckpointError, match="not included"):
        hub.load_base_model(ghost.name)


def _pinpad_defaults_shipped() -> bool:
    return {"pinpad-transformer", "pinpad-metacontroller"} <= set(available_defaults())


@pytest.mark.skipif(not _pinpad_defaults_shipped(), reason="grid defaults not committed")
def test_internal_control_pinpad_runs_out_of_the_box_with_stock_ppo():
    import warnings

    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env as gym_check_env
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make("InternalControl-Pinpad-v0")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(infinite|inf|precision).*")
        gym_check_env(env.unwrapped, skip_render_check=True)
        sb3_check_env(env, warn=True)
    PPO("MlpPolicy", env, n_steps=32, batch_size=32, n_epochs=1, seed=0).learn(64)
    env.close()


def _ant_defaults_shipped() -> bool:
    ant = {"ant-transformer", "ant-metacontroller", "ant-subgoal-controllers"}
    return ant <= set(available_defaults())


@pytest.mark.skipif(not _ant_defaults_shipped(), reason="ant defaults not committed")
def test_internal_control_ant_runs_out_of_the_box_with_stock_ppo():
    """The continuous twin of the grid test: torques, the mean of the transformer base model's
    mixture head, in AntPinpadRoutes-v1."""
    import warnings

    import gymnasium as gym
    import numpy as np
    from gymnasium.utils.env_checker import check_env as gym_check_env
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make("InternalControl-Ant-v3", max_primitive_steps=20)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(infinite|inf|precision).*")
        gym_check_env(env.unwrapped, skip_render_check=True)
        sb3_check_env(env, warn=True)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (env.unwrapped.base_model.d_model,)
    *_, info = env.step(env.action_space.sample())
    torques = np.stack(info["primitive_actions"])
    assert torques.shape[1] == 8 and np.all(np.abs(torques) <= 1.0)
    PPO("MlpPolicy", env, n_steps=32, batch_size=32, n_epochs=1, seed=0).learn(64)
    env.close()
