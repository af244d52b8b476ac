"""Rollouts of a base model acting with its own action head (agents/rollout.py): what the
diagnostics' free play and the raw-action baseline run on."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import internal_rl_gym  # noqa: F401  (registers the envs)
from agents.rollout import rollout
from internal_rl_gym.models import BaseModel
from tests.conftest import tiny_mixture_ant

pytest.importorskip("mujoco")


@pytest.fixture(scope="module")
def mixture_ant() -> BaseModel:
    return tiny_mixture_ant()


def ant_envs(n: int) -> list[gym.Env]:
    return [gym.make("AntPinpad-v0", max_episode_steps=6) for _ in range(n)]


def test_the_recorded_first_observation_is_the_resets(mixture_ant):
    """Regression: the first observation was a view of the batch array the next step overwrote,
    so every trajectory began with o_2 instead of o_1."""
    got = rollout(mixture_ant, ant_envs(2), [3, 4], torch.Generator().manual_seed(0))
    for obs, env, seed in zip(got.obs, ant_envs(2), [3, 4]):
        np.testing.assert_array_equal(obs[0], env.reset(seed=seed)[0])
        assert not np.array_equal(obs[0], obs[1])


def test_greedy_mixture_rollout_takes_the_most_probable_components_mean(mixture_ant):
    got = rollout(mixture_ant, ant_envs(2), [0, 1], torch.Generator().manual_seed(0), act="greedy")
    for obs, actions, log_probs in zip(got.obs, got.actions, got.log_probs):
        with torch.no_grad():
            head = mixture_ant(torch.as_tensor(obs[None, :-1]))
        k = head.action_mix_logits[0].argmax(-1)
        mean = head.action_mean[0, torch.arange(len(k)), k]
        np.testing.assert_allclose(actions, mean.clamp(-1, 1).numpy(), rtol=1e-4, atol=1e-5)
        want_lp = mixture_ant.action_distribution(head).log_prob(mean[None])[0]
        np.testing.assert_allclose(log_probs, want_lp.numpy(), rtol=1e-4, atol=1e-4)


def test_sampled_mixture_rollout_is_reproducible_and_not_the_greedy_one(mixture_ant):
    def run(seed: int):
        return rollout(mixture_ant, ant_envs(2), [0, 1], torch.Generator().manual_seed(seed))

    a, b, c = run(0), run(0), run(1)
    for x, y in zip(a.actions, b.actions):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.actions[0], c.actions[0])
    greedy = rollout(mixture_ant, ant_envs(1), [0], torch.Generator(), act="greedy")
    assert not np.array_equal(a.actions[0], greedy.actions[0])


def test_mean_mixture_rollout_takes_the_mixtures_mean_action(mixture_ant):
    """act="mean": Σ_k π_k μ_k, neither a sample nor the top component's mean."""
    got = rollout(mixture_ant, ant_envs(2), [0, 1], torch.Generator().manual_seed(0), act="mean")
    greedy = rollout(mixture_ant, ant_envs(2), [0, 1], torch.Generator(), act="greedy")
    for obs, actions, top in zip(got.obs, got.actions, greedy.actions):
        with torch.no_grad():
            head = mixture_ant(torch.as_tensor(obs[None, :-1]))
        pi = torch.softmax(head.action_mix_logits[0], -1)
        want = (pi[..., None] * head.action_mean[0]).sum(-2)
        np.testing.assert_allclose(actions, want.clamp(-1, 1).numpy(), rtol=1e-4, atol=1e-5)
        assert not np.allclose(actions[0], top[0])


def test_rollout_refuses_an_unknown_act_and_a_mean_of_discrete_actions(mixture_ant):
    with pytest.raises(ValueError, match="--act must be one of"):
        rollout(mixture_ant, ant_envs(1), [0], torch.Generator(), act="mode")
    grid = BaseModel(obs_dim=637, n_actions=4, d_model=8, n_layers=1, n_heads=1, d_head=8)
    env = gym.make("GridPinpad-v0")
    with pytest.raises(ValueError, match="--act mean reads a continuous head's mean action"):
        rollout(grid, [env], [0], torch.Generator(), act="mean")


def test_sampled_rollout_records_the_unclipped_samples_its_log_probs_score(mixture_ant):
    """The env gets the sample clipped to the action bounds; ``raw_actions`` keeps the sample,
    and the recorded log-probs are the head's, recomputed from the recorded observations, of
    exactly those (what the baseline's PPO ratio needs). ``padded()`` hands out the same.
    Mutants: the clipped actions recorded as raw; log-probs of the clipped actions."""
    envs = [gym.make("AntPinpad-v0", max_episode_steps=5 + i) for i in range(3)]
    got = rollout(mixture_ant, envs, [0, 1, 2], torch.Generator().manual_seed(0))
    assert not all(np.array_equal(a, r) for a, r in zip(got.actions, got.raw_actions))
    obs, act, logp, mask = got.padded()
    for i, (o, a, raw, lp) in enumerate(zip(got.obs, got.actions, got.raw_actions, got.log_probs)):
        np.testing.assert_array_equal(a, np.clip(raw, -1, 1))
        np.testing.assert_array_equal(act[i, : len(raw)], raw)
        with torch.no_grad():
            head = mixture_ant(torch.as_tensor(o[None, :-1]))
            want = mixture_ant.action_distribution(head).log_prob(torch.as_tensor(raw[None]))[0]
        np.testing.assert_allclose(lp, want.numpy(), rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(logp[i, : len(lp)], lp)
    assert mask.sum() == sum(len(a) for a in got.actions)


def test_discrete_raw_actions_are_the_actions():
    from tests.conftest import build_tiny_grid_models

    base, _ = build_tiny_grid_models()
    envs = [gym.make("GridPinpad-v0", task="0-1") for _ in range(2)]
    got = rollout(base, envs, [0, 1], torch.Generator().manual_seed(0))
    for a, raw in zip(got.actions, got.raw_actions):
        assert a.dtype == raw.dtype == np.int64
        np.testing.assert_array_equal(a, raw)
