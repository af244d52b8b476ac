"""`internal-rl baseline` on a continuous-action (ant) base model: the paper's Eq. 10 on the
Gaussian / mixture-of-Gaussians head, scoring the unclipped samples the rollout drew."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

import internal_rl_gym  # noqa: F401  (registers the envs)
from agents import baseline
from agents.baseline import BaselineConfig, policy_update, train_raw
from agents.rollout import rollout
from internal_rl_gym.hub import load_base_model
from internal_rl_gym.models import BaseModel
from tests.conftest import tiny_mixture_ant

pytest.importorskip("mujoco")

_make = gym.make


def short_ant_envs(monkeypatch, steps: int = 8) -> None:
    """Every env train_raw makes ends after ``steps`` steps (tiny test budgets)."""
    monkeypatch.setattr(
        baseline.gym, "make", lambda env_id, **kw: _make(env_id, max_episode_steps=steps, **kw)
    )


def mixture_ant(components: int = 3) -> BaseModel:
    return tiny_mixture_ant(components)


def params(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def train_with_returns(monkeypatch, tmp_path, returns: list[float]):
    """train_raw on a held tiny mixture-head ant whose rollouts report ``returns``; the model
    and the parameters it started from."""
    model = mixture_ant()
    before = params(model)
    monkeypatch.setattr(baseline, "load_base_model", lambda name: model)

    def fixed_returns(*args, **kwargs):
        batch = rollout(*args, **kwargs)
        batch.returns = np.array(returns, dtype=np.float32)
        batch.success = batch.returns > 0
        return batch

    monkeypatch.setattr(baseline, "rollout", fixed_returns)
    short_ant_envs(monkeypatch)
    cfg = BaselineConfig(
        base_model="held",
        task="post",
        episodes=len(returns),
        batch_episodes=len(returns),
        lr=1e-2,
        out=str(tmp_path / "raw"),
        device="cpu",
        threads=1,
    )
    result = train_raw(cfg)
    return model, before, result


def test_the_ant_baseline_runs_on_the_env_its_base_model_reads(tiny_ant, tmp_path, monkeypatch):
    """It used to refuse continuous-action models; the env follows the base model (41-dim
    observations: AntPinpad-v0), and curve.json records it."""
    short_ant_envs(monkeypatch)
    cfg = BaselineConfig(
        base_model=tiny_ant["base_model"],
        episodes=4,
        batch_episodes=4,
        out=str(tmp_path / "raw"),
        device="cpu",
        threads=1,
    )
    result = train_raw(cfg)
    saved = json.loads((tmp_path / "raw" / "curve.json").read_text())
    assert result["env_id"] == saved["env_id"] == "AntPinpad-v0"
    assert saved["successes"] == result["successes"] and len(saved["successes"]) == 4


def test_no_success_learns_nothing(monkeypatch, tmp_path):
    """Every return 0: every advantage is 0, so not one parameter moves."""
    model, before, result = train_with_returns(monkeypatch, tmp_path, [0.0] * 4)
    assert result["successes"] == [0, 0, 0, 0]
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0, msg=k)


def test_a_success_changes_the_action_head(monkeypatch, tmp_path):
    """Returns 1, 0, 0, 1: non-zero advantages move the parameters (Eq. 10 on the mixture
    head). Mutant: the update skipped, or its advantages dropped."""
    model, before, result = train_with_returns(monkeypatch, tmp_path, [1.0, 0.0, 0.0, 1.0])
    assert result["successes"] == [1, 0, 0, 1]
    assert any(not torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_the_update_scores_the_unclipped_samples_and_chunks_change_nothing():
    """The first Eq. 10 step starts at ratio 1 (the new log-probs of the same unclipped samples
    equal the recorded ones), so its gradient is that of sum_t A·log π; and cutting the batch
    into chunks gives the same step as the whole batch. Mutants: the clipped actions scored
    (ratio ≠ 1: the clip zeroes some gradients), chunks not weighted by their steps."""
    model = mixture_ant()
    envs = [_make("AntPinpad-v0", max_episode_steps=6 + i) for i in range(4)]
    batch = rollout(model, envs, [0, 1, 2, 3], torch.Generator().manual_seed(0))
    assert any(not np.array_equal(a, r) for a, r in zip(batch.actions, batch.raw_actions))
    adv = np.array([1.0, -1.0, 0.5, -0.5])

    start = params(mixture_ant())

    def one_step(chunk: int) -> dict[str, torch.Tensor]:
        m = mixture_ant()
        opt = torch.optim.SGD(m.parameters(), lr=1.0)
        assert policy_update(m, opt, batch, adv, epochs=1, clip=0.2, chunk=chunk) == 1
        return {k: v.detach() - start[k] for k, v in m.state_dict().items()}

    whole, chunked = one_step(4), one_step(1)
    for k in whole:
        torch.testing.assert_close(chunked[k], whole[k], rtol=1e-4, atol=1e-6, msg=k)

    # the unclipped gradient by hand: -sum_t A_i log π(raw_t) / n_valid
    m = mixture_ant()
    obs, _, _, mask = (torch.as_tensor(x) for x in batch.padded())
    raw = torch.zeros(4, mask.shape[1], 8)
    for i, r in enumerate(batch.raw_actions):
        raw[i, : len(r)] = torch.as_tensor(r)
    logp = m.action_distribution(m(obs[:, :-1])).log_prob(raw)
    loss = -(torch.as_tensor(adv, dtype=torch.float32)[:, None] * logp * mask).sum() / mask.sum()
    loss.backward()
    for k, p in m.named_parameters():
        want = torch.zeros_like(p) if p.grad is None else -p.grad  # e.g. the obs head: none
        torch.testing.assert_close(whole[k], want, rtol=1e-4, atol=1e-6, msg=k)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())


def test_zero_advantage_takes_no_step():
    model = mixture_ant()
    envs = [_make("AntPinpad-v0", max_episode_steps=4) for _ in range(2)]
    batch = rollout(model, envs, [0, 1], torch.Generator().manual_seed(0))
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    assert policy_update(model, opt, batch, np.zeros(2), epochs=2, clip=0.2, chunk=1) == 0


def test_a_model_of_no_known_env_says_which_option_to_pass(tmp_path):
    path = tmp_path / "odd"
    kw = dict(arch="hawk", action_dim=8, action_type="continuous", d_model=8, n_layers=1)
    BaseModel(obs_dim=50, n_heads=1, d_mlp=8, **kw).save_pretrained(path)
    assert load_base_model(path).config.obs_dim == 50
    with pytest.raises(SystemExit, match=r"baseline: no AntPinpad id .* pass --env-id"):
        train_raw(
            BaselineConfig(base_model=str(path), episodes=1, threads=1, out=str(tmp_path / "o"))
        )
