"""The oracle of internal RL: ground-truth subgoal controllers as a Discrete action, switching when
the true subgoal changes (``InternalControl-Pinpad-Oracle-v0``), and their checkpoints."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import internal_rl_gym  # noqa: F401
from internal_rl_gym.hub import CheckpointError, load_base_model, load_subgoal_controllers
from internal_rl_gym.internal_control import make_internal_control_vec_env
from tests.conftest import build_tiny_grid_models, tiny_subgoal_controllers


@pytest.fixture
def oracle_kwargs(tiny_oracle):
    return tiny_oracle


def make_oracle(oracle_kwargs, **kw) -> gym.Env:
    return gym.make("InternalControl-Pinpad-Oracle-v0", **oracle_kwargs, **kw)


def test_oracle_is_a_discrete_choice_of_subgoal(oracle_kwargs):
    env = make_oracle(oracle_kwargs)
    assert env.action_space == gym.spaces.Discrete(4)
    assert env.observation_space.shape == (16,)


def test_both_env_checkers_pass_on_the_oracle(oracle_kwargs):
    env = make_oracle(oracle_kwargs)
    gym_check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env, warn=True)


@pytest.mark.parametrize("threshold", [0.5, 1.0])
def test_an_abstract_step_ends_exactly_when_the_true_subgoal_changes(oracle_kwargs, threshold):
    """Mutant: a switch on any colour (or never, up to the cap) instead of on pair completion;
    ``β > beta_threshold`` for ``>=`` (the oracle's β of 1 never ends a step at threshold 1;
    core ``_step_rows`` 181)."""
    env = make_oracle(
        oracle_kwargs, task="0-1-2-3-4-5", max_primitive_steps=100, beta_threshold=threshold
    )
    env.action_space.seed(0)
    changes = 0
    for seed in range(40):
        _, info = env.reset(seed=seed)
        subgoal, done = info["subgoal"], False
        while not done:
            _, _, term, trunc, info = env.step(int(env.action_space.sample()))
            done = term or trunc
            if not done:  # the step ended on the switch: the subgoal moved on, and only then
                assert info["subgoal"] != subgoal
                assert set(info["beta"][:-1]) <= {0.0} and info["beta"][-1] == 1.0
                changes += 1
            subgoal = info["subgoal"]
    assert changes > 0, "no episode ever completed a pair: the test checked nothing"


def test_the_chosen_subgoal_steers(oracle_kwargs):
    """Mutant: the action ignored (one controller for every subgoal index)."""
    env = make_oracle(oracle_kwargs, task="0-1-2-3-4-5", max_primitive_steps=6)
    firsts = set()
    for g in range(4):
        env.reset(seed=3)
        *_, info = env.step(g)
        firsts.add(tuple(info["primitive_actions"]))
    assert len(firsts) > 1


@pytest.mark.parametrize("bad", [4, -1, 1.5, np.array([0, 1]), "two"])
def test_a_bad_subgoal_index_is_explained(oracle_kwargs, bad):
    env = make_oracle(oracle_kwargs)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="subgoal index"):
        env.unwrapped.step(bad)


def test_oracle_vec_env_matches_the_single_env(oracle_kwargs):
    vec = make_internal_control_vec_env(
        2, env_id="GridPinpad-v0", task="0-1-2-3", seed=5, monitor=False, **oracle_kwargs
    )
    obs = vec.reset()
    single = make_oracle(oracle_kwargs, task="0-1-2-3")
    o, _ = single.reset(seed=5)
    np.testing.assert_allclose(obs[0], o, atol=1e-5)
    obs, _, dones, infos = vec.step(np.array([1, 2]))
    o, _, term, trunc, info = single.step(1)
    assert dones[0] == (term or trunc)
    row0 = infos[0]["terminal_observation"] if dones[0] else obs[0]
    np.testing.assert_allclose(row0, o, atol=1e-5)
    assert infos[0]["primitive_actions"] == info["primitive_actions"]


def test_subgoal_controllers_round_trip_and_check_their_base_model(tmp_path):
    base, _ = build_tiny_grid_models()
    ctrl = tiny_subgoal_controllers(base, layer=2)
    ctrl.save_pretrained(tmp_path / "ctrl")
    loaded = load_subgoal_controllers(tmp_path / "ctrl", base_model=base)
    assert loaded.layer == 2 and loaded.n_subgoals == 4
    torch.testing.assert_close(loaded.a, ctrl.a)
    other, _ = build_tiny_grid_models(seed=1)
    with pytest.raises(CheckpointError, match="trained on base model"):
        load_subgoal_controllers(tmp_path / "ctrl", base_model=other)
    with pytest.raises(CheckpointError, match="load_subgoal_controllers"):
        from internal_rl_gym.hub import load_metacontroller

        load_metacontroller(tmp_path / "ctrl")


def test_subgoal_controllers_without_a_layer_are_refused(tmp_path):
    base, _ = build_tiny_grid_models()
    tiny_subgoal_controllers(base, layer=-1).save_pretrained(tmp_path / "ctrl")
    with pytest.raises(CheckpointError, match="records no layer"):
        load_subgoal_controllers(tmp_path / "ctrl")


def test_shipped_oracle_steers_the_shipped_base_model_at_its_control_layer():
    base = load_base_model("pinpad-transformer")
    ctrl = load_subgoal_controllers("pinpad-subgoal-controllers", base_model=base)
    assert ctrl.layer == base.control_layer == 1
