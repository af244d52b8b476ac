"""Raw-action RL baseline: fine-tune the pretrained base model's own action head on the task.

    internal-rl baseline --base-model pinpad-transformer --task post --episodes 20000
    internal-rl baseline --base-model ant-transformer --task post --episodes 2000 --threads 1

The paper's baseline (§5, §C.5.3): the same RL algorithm as internal RL, in the primitive action
space, starting from the pretrained base model. The algorithm is the paper's Eq. 10: PPO's clipped
surrogate without a critic, with one advantage per trajectory,
A_τ = (R(τ) - mean_B R) / (std_B R + δ), over a batch B of episodes. When no episode in a batch
succeeds every advantage is zero and nothing is learned — which is exactly why token-level RL fails
on a sparse reward it never observes.

Discrete (grid) and continuous (ant) base models alike: the log-probabilities are
``base.action_distribution(head)``'s (categorical, Gaussian, or a mixture of Gaussians) of the
actions the head sampled; for continuous actions those are the unclipped samples
(``Rollouts.raw_actions``), not the clipped actions the env executed. The env is the one whose
observations the base model reads (GridPinpad-v0, or the AntPinpad id with its observation
size) unless ``--env-id`` names another.

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
    env_of,
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
    env_id: str = field(
        default="",
        metadata={
            "help": "task environment (default: the one the base model reads: GridPinpad-v0, "
            "or the AntPinpad id of the base model's observation size)"
        },
    )
    task: str = field(default="post", metadata={"help": "task (post, or a colour sequence)"})
    episodes: int = field(default=20_000, metadata={"help": "training budget in episodes"})
    batch_episodes: int = field(default=64, metadata={"help": "episodes per update (batch B)"})
    epochs: int = field(default=2, metadata={"help": "passes over each batch"})
    chunk_episodes: int = field(
        default=16,
        metadata={
            "help": "episodes per forward/backward pass; gradients are summed over the batch, "
            "so the update is the same, in bounded memory (500-step ant episodes: ~1 GB per 16)"
        },
    )
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


def policy_update(base, opt, batch, adv: np.ndarray, epochs: int, clip: float, chunk: int) -> int:
    """Eq. 10 on a batch of rollouts: ``epochs`` steps of ``opt`` on the clipped surrogate, the
    log-probs recomputed for the sampled (unclipped) actions. Each step sums the gradients of
    chunks of ``chunk`` episodes (each cut to its longest episode: the model is causal), weighted
    so that the step is the whole batch's. Returns the steps taken: none when every advantage is
    zero (no episode succeeded, or all did), which would give a zero gradient."""
    if not np.any(adv):
        return 0
    device = base.device
    obs, act, logp_old, mask = (torch.as_tensor(x, device=device) for x in batch.padded())
    adv_t = torch.as_tensor(adv, dtype=torch.float32, device=device)
    n_valid = mask.sum()
    chunk = max(1, chunk)
    base.train()
    for _ in range(epochs):
        opt.zero_grad(set_to_none=True)
        for s in range(0, len(adv), chunk):
            rows = slice(s, s + chunk)
            t = int(mask[rows].sum(1).max())
            head = base(obs[rows, :t])
            dist = base.action_distribution(head, validate_args=False)
            logp = dist.log_prob(act[rows, :t])
            m = mask[rows, :t]
            loss = clipped_surrogate(logp, logp_old[rows, :t], adv_t[rows], m.float(), clip)
            (loss * (m.sum() / n_valid)).backward()
        opt.step()
    return epochs


def train_raw(cfg: BaselineConfig) -> dict:
    set_threads(cfg.threads)
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    base = load_base_model(cfg.base_model).to(device)
    env_id = cfg.env_id or env_of(base, "baseline", "--env-id")
    base.requires_grad_(True).train()
    opt = torch.optim.AdamW(base.parameters(), lr=cfg.lr, weight_decay=0.0)
    out = Path(cfg.out)
    logger = Logger(out, cfg)
    envs = [gym.make(env_id, task=cfg.task) for _ in range(cfg.batch_episodes)]
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
        policy_update(base, opt, batch, adv, cfg.epochs, cfg.clip_range, cfg.chunk_episodes)
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
    for env in envs:
        env.close()
    result = {
        "method": "raw-action RL (paper Eq. 10 on primitive actions)",
        "env_id": env_id,
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
