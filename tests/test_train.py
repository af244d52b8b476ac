"""Internal RL, its evaluation and the raw-action baseline run end to end on tiny checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from agents.baseline import BaselineConfig, clipped_surrogate, train_raw, trajectory_advantages
from agents.evaluate import EvaluateConfig, evaluate
from agents.train import TrainConfig, train


def _tiny_train_config(tiny_checkpoints, out, **kw) -> TrainConfig:
    """PPO on the tiny grid checkpoints, a few updates."""
    settings = dict(
        env_id="InternalControl-v0",
        task="0-1",
        episodes=12,
        n_envs=2,
        n_steps=8,
        batch_size=16,
        n_epochs=1,
        eval_every=6,
        eval_episodes=2,
        out=str(out),
        progress=False,
    )
    return TrainConfig(**{**settings, **tiny_checkpoints, **kw})


def test_train_then_evaluate(tiny_checkpoints, tmp_path):
    result = train(_tiny_train_config(tiny_checkpoints, tmp_path / "train"))
    assert len(result["successes"]) >= 12 and len(result["evaluations"]) == 2
    curve = json.loads((tmp_path / "train" / "curve.json").read_text())
    assert curve["config"]["gamma"] == 1.0
    report = evaluate(
        EvaluateConfig(
            policy=result["policy"],
            env_id="InternalControl-v0",
            task="0-1",
            episodes=4,
            n_envs=2,
            out=str(tmp_path / "eval.json"),
            **tiny_checkpoints,
        )
    )
    # a success rate over exactly 4 episodes
    assert report["metrics"]["success_rate"]["mean"] * 4 in (0.0, 1.0, 2.0, 3.0, 4.0)


def test_a_rerun_logs_to_its_own_tensorboard_run(tiny_checkpoints, tmp_path):
    cfg = _tiny_train_config(tiny_checkpoints, tmp_path / "train", episodes=8, eval_every=4)
    train(cfg)
    train(cfg)  # the same --out again, e.g. a run restarted after an interruption
    tb = tmp_path / "train" / "tb"
    # one TensorBoard run each (not both in one folder), continued across evaluation chunks
    assert sorted(p.name for p in tb.iterdir()) == ["ppo_1", "ppo_2"]
    for run in ("ppo_1", "ppo_2"):
        assert len(list((tb / run).glob("events.out.tfevents.*"))) == 2  # one per chunk


def test_raw_action_baseline_runs(tiny_checkpoints, tmp_path):
    result = train_raw(
        BaselineConfig(
            base_model=tiny_checkpoints["base_model"],
            task="0-1",
            episodes=8,
            batch_episodes=4,
            out=str(tmp_path / "raw"),
            device="cpu",
        )
    )
    assert len(result["successes"]) == 8


def test_trajectory_advantage_and_surrogate():
    adv = trajectory_advantages(np.array([1.0, 0.0, 0.0, 1.0]))
    np.testing.assert_allclose(adv, [1, -1, -1, 1], atol=1e-2)
    assert np.all(trajectory_advantages(np.zeros(5)) == 0)  # no success: no signal
    logp = torch.zeros(2, 3, requires_grad=True)
    loss = clipped_surrogate(
        logp, torch.zeros(2, 3), torch.tensor([1.0, -1.0]), torch.ones(2, 3), 0.2
    )
    loss.backward()
    # gradient raises the log-probability of the successful trajectory, lowers the other's
    assert torch.all(logp.grad[0] < 0) and torch.all(logp.grad[1] > 0)


def test_eq10_loss_matches_a_hand_computation():
    """Paper Eq. 10 on a batch of three abstract steps from two episodes (returns 1 and 0):
    A_τ = (R - mean R) / (std R + δ) = ±0.5/(0.5 + δ); loss = -mean_t min(ρ A, clip(ρ) A)."""
    import gymnasium as gym

    from agents.train import Eq10Policy, eq10_loss

    adv_ep = trajectory_advantages(np.array([1.0, 0.0]), delta=1e-3)
    np.testing.assert_allclose(adv_ep, [0.5 / 0.501, -0.5 / 0.501])
    policy = Eq10Policy(2, gym.spaces.Discrete(2), log_std_init=0.0)
    with torch.no_grad():
        policy.head.weight.zero_()
        policy.head.bias.copy_(torch.tensor([0.0, np.log(3.0)]))  # π = (0.25, 0.75)
    obs = torch.zeros(3, 2)
    actions = torch.tensor([0, 1, 1])
    logp_old = torch.log(torch.tensor([0.5, 0.5, 0.5]))  # ρ = 0.5, 1.5, 1.5
    adv = torch.tensor([adv_ep[0], adv_ep[0], adv_ep[1]], dtype=torch.float32)
    a = 0.5 / 0.501
    # step 1: ρ=0.5, A>0 -> min(0.5A, 0.8A) = 0.5A; step 2: ρ=1.5, A>0 -> min(1.5A, 1.2A) = 1.2A;
    # step 3: ρ=1.5, A<0 -> min(-1.5a, -1.2a) = -1.5a
    expected = -(0.5 * a + 1.2 * a - 1.5 * a) / 3
    loss = eq10_loss(policy, obs, actions, logp_old, adv, clip=0.2)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_eq10_trains_on_the_oracle_and_writes_a_curve(tiny_oracle, tmp_path):
    cfg = TrainConfig(
        env_id="InternalControl-Pinpad-Oracle-v0",
        **tiny_oracle,
        task="0-1",
        algo="eq10",
        episodes=8,
        n_envs=4,
        batch_episodes=4,
        max_primitive_steps=10,
        out=str(tmp_path / "eq10"),
        progress=False,
    )
    result = train(cfg)
    assert len(result["successes"]) == 8 and set(result["successes"]) <= {0, 1}
    saved = json.loads((tmp_path / "eq10" / "curve.json").read_text())
    assert saved["algo"] == "eq10" and saved["successes"] == result["successes"]
    assert (tmp_path / "eq10" / "eq10-InternalControl-Pinpad-Oracle-v0.pt").is_file()


def test_eq10_continues_from_a_saved_policy(tiny_oracle, tmp_path):
    """--init-policy (a curriculum over task length): the second run starts from the first
    run's weights; a missing file is explained."""
    from agents.train import Eq10Policy  # noqa: F401 - the saved format

    def cfg(out, **kw):
        return TrainConfig(
            env_id="InternalControl-Pinpad-Oracle-v0", **tiny_oracle, task="0-1", algo="eq10",
            episodes=4, n_envs=4, batch_episodes=4, max_primitive_steps=10, out=str(out),
            progress=False, **kw,
        )  # fmt: skip

    first = train(cfg(tmp_path / "a", lr=0.5))
    saved = torch.load(first["policy"], weights_only=True)
    # another seed: a policy that ignored --init-policy would start from other weights
    second = train(cfg(tmp_path / "b", init_policy=first["policy"], lr=1e-12, seed=1))
    after = torch.load(second["policy"], weights_only=True)
    for k in saved:
        torch.testing.assert_close(after[k], saved[k], atol=1e-6, rtol=0)
    with pytest.raises(SystemExit, match="init-policy"):
        train(cfg(tmp_path / "c", init_policy=str(tmp_path / "missing.pt")))


def test_an_ids_own_settings_hold_unless_overridden():
    """InternalControl-Ant-v3 registers its task env, the mean action and a 200-step cap per
    abstract step; `train` keeps them unless told otherwise. Mutant: the old fixed default of
    50 primitive steps written over every id's own."""
    from agents.train import internal_control_kwargs

    kw = internal_control_kwargs(TrainConfig(env_id="InternalControl-Ant-v3"))
    assert (kw["env_id"], kw["primitive_sampling"], kw["max_primitive_steps"]) == (
        "AntPinpadRoutes-v1",
        "mean",
        200,
    )
    kw = internal_control_kwargs(
        TrainConfig(
            env_id="InternalControl-Ant-v3",
            task_env="AntPinpad-v0",
            primitive_sampling="sample",
            max_primitive_steps=20,
        )
    )
    assert (kw["env_id"], kw["primitive_sampling"], kw["max_primitive_steps"]) == (
        "AntPinpad-v0",
        "sample",
        20,
    )
    assert "max_primitive_steps" not in internal_control_kwargs(
        TrainConfig(env_id="InternalControl-v0")
    )
