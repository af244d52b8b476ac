"""Internal RL, its evaluation and the raw-action baseline run end to end on tiny checkpoints."""

from __future__ import annotations

import json

import numpy as np
import torch

from agents.baseline import BaselineConfig, clipped_surrogate, train_raw, trajectory_advantages
from agents.evaluate import EvaluateConfig, evaluate
from agents.train import TrainConfig, train


def test_train_then_evaluate(tiny_checkpoints, tmp_path):
    cfg = TrainConfig(
        env_id="InternalControl-v0",
        task="0-1",
        episodes=12,
        n_envs=2,
        n_steps=8,
        batch_size=16,
        n_epochs=1,
        eval_every=6,
        eval_episodes=2,
        out=str(tmp_path / "train"),
        progress=False,
        **tiny_checkpoints,
    )
    result = train(cfg)
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
    assert 0.0 <= report["metrics"]["success_rate"]["mean"] <= 1.0


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
