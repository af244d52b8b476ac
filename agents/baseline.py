"""Raw-action RL baseline: fine-tune the pretrained base model's own action head on the task.

    internal-rl baseline --base-model pinpad-transformer --task post --episodes 20000

The paper's baseline (§5, §C.5.3): the same RL algorithm as internal RL, in the primitive action
space, starting from the pretrained base model. The algorithm is the paper's Eq. 10: PPO's clipped
surrogate without a critic, with one advantage per trajectory,
A_τ = (R(τ) - mean_B R) / (std_B R + δ), over a batch B of episodes. When no episode in a batch
succeeds every advantage is zero and nothing is learned — which is exactly why token-level RL fails
on a sparse reward it never observes.

Writes ``<out>/curve.json`` (success of every episode, in order) and TensorBoard logs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from internal_rl_gym.hub import load_base_model

from .common import (
    Logger,
    atomic_write_json,
    pick_device,
    progress_bar,
    seed_everything,
    set_threads,
)
from .rollout import rollout


@dataclass
class BaselineConfig:
    base_model: str = field(
        default="pinpad-transformer",
        metadata={"help": "base model: embedded default name, local directory or Hub repo id"},
    )
    env_id: str = field(default="GridPinpad-v0", metadata={"help": "task environment"})
    task: str = field(default="post", metadata={"help": "task (post, or a colour sequence)"})
    episodes: int = field(default=20_000, metadata={"help": "training budget in episodes"})
    batch_episodes: int = field(default=64, metadata={"help": "episodes per update (batch B)"})
    epochs: int = field(default=2, metadata={"help": "passes over each batch"})
    lr: float = field(default=3e-5, metadata={"help": "AdamW learning rate (paper: 3e-5)"})
    clip_range: float = field(default=0.2, metadata={"help": "PPO clip ε"})
    delta: float = field(default=1e-3, metadata={"help": "δ in the advantage's denominator"})
    seed: int = field(default=0, metadata={"help": "random seed"})
    out: str = field(default="runs/baseline-raw", metadata={"help": "output directory"})
    device: str = field(default="auto", metadata={"help": "cpu, cuda or auto"})
    threads: int = field(default=0, metadata={"help": "torch CPU threads (0 = torch default)"})


def trajectory_advantages(returns: np.ndarray, delta: float = 1e-3) -> np.ndarray:
    """Paper Eq. 10's advantage: one normalised return per trajectory, shared by its steps."""
    return (returns - returns.mean()) / (returns.std() + delta)


def clipped_surrogate(
    logp: torch.Tensor, logp_old: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor, clip: float
) -> torch.Tensor:
    """-E[min(ρ A, clip(ρ, 1-ε, 1+ε) A)] over valid steps; ``adv`` is (B,), broadcast over T."""
    ratio = torch.exp(logp - logp_old)
    a = adv[:, None]
    surrogate = torch.minimum(ratio * a, ratio.clamp(1 - clip, 1 + clip) * a)
    return -(surrogate * mask).sum() / mask.sum().clamp(min=1)


def train_raw(cfg: BaselineConfig) -> dict:
    set_threads(cfg.threads)
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    base = load_base_model(cfg.base_model).to(device)
    if base.action_type != "discrete":
        raise ValueError(
            f"{cfg.base_model} has continuous actions; the raw-action baseline supports "
            "discrete-action base models (the grid) only so far."
        )
    base.requires_grad_(True).train()
    opt = torch.optim.AdamW(base.parameters(), lr=cfg.lr, weight_decay=0.0)
    out = Path(cfg.out)
    logger = Logger(out, cfg)
    envs = [gym.make(cfg.env_id, task=cfg.task) for _ in range(cfg.batch_episodes)]
    gen = torch.Generator().manual_seed(cfg.seed)
    successes: list[int] = []
    t0 = time.time()

    bar = progress_bar(total=cfg.episodes, desc="raw-action RL", unit="ep")
    update = 0
    while len(successes) < cfg.episodes:
        base.eval()
        seeds = [cfg.seed * 1_000_003 + len(successes) + i for i in range(cfg.batch_episodes)]
        batch = rollout(base, envs, seeds, gen)
        successes += batch.success.astype(int).tolist()
        adv = trajectory_advantages(batch.returns, cfg.delta)
        obs, act, logp_old, mask = (torch.as_tensor(x, device=device) for x in batch.padded())
        adv_t = torch.as_tensor(adv, dtype=torch.float32, device=device)
        base.train()
        for _ in range(cfg.epochs):
            if not np.any(adv):
                break  # no success (or all succeeded): zero advantage, zero gradient
            head = base(obs[:, :-1])
            logp = torch.log_softmax(head.action_logits, -1).gather(-1, act[..., None])[..., 0]
            loss = clipped_surrogate(logp, logp_old, adv_t, mask.float(), cfg.clip_range)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        update += 1
        logger.log(
            len(successes),
            **{
                "rollout/success_rate": batch.success.mean(),
                "rollout/ep_len": batch.lengths.mean(),
            },
        )
        bar.update(len(batch.success))
        bar.set_postfix(success=f"{np.mean(successes[-500:]):.3f}", refresh=False)
    bar.close()
    logger.close()
    result = {
        "method": "raw-action RL (paper Eq. 10 on primitive actions)",
        "config": cfg.__dict__,
        "successes": successes[: cfg.episodes],
        "seconds": time.time() - t0,
    }
    atomic_write_json(out / "curve.json", result)
    return result


def run(cfg: BaselineConfig) -> None:
    result = train_raw(cfg)
    successes = result["successes"]
    last = min(500, len(successes))
    print(
        f"raw-action RL: success over the last {last} episodes "
        f"{np.mean(successes[-last:]):.3f} ({result['seconds']:.0f}s)"
    )
