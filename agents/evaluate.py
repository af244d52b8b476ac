"""Evaluate a trained internal-RL policy: success rate and return on an InternalControl env.

    internal-rl evaluate --policy runs/train/ppo-InternalControl-v0.zip --env-id InternalControl-v0 \
        --base-model ... --metacontroller ... --task post --episodes 200 --out runs/train/eval.json

Runs the policy (deterministic by default) in the batched InternalControl VecEnv and writes a JSON
that `internal-rl push --eval-json` turns into the model card's metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .common import atomic_write_json
from .train import TrainConfig, finished_episodes, make_vec


@dataclass
class EvaluateConfig:
    policy: str = field(default="", metadata={"help": "SB3 policy .zip from `internal-rl train`"})
    algo: str = field(default="ppo", metadata={"help": "ppo or recurrent-ppo"})
    env_id: str = field(default="InternalControl-Pinpad-v0", metadata={"help": "env id"})
    base_model: str = field(default="", metadata={"help": "override the id's base model"})
    metacontroller: str = field(default="", metadata={"help": "override the id's metacontroller"})
    task: str = field(default="", metadata={"help": "override the id's task"})
    episodes: int = field(default=200, metadata={"help": "evaluation episodes"})
    n_envs: int = field(default=16, metadata={"help": "episodes run in parallel"})
    stochastic: bool = field(default=False, metadata={"help": "sample actions instead of the mean"})
    seed: int = field(default=12345, metadata={"help": "random seed (distinct from training)"})
    out: str = field(default="", metadata={"help": "write the results JSON here"})


def evaluate(cfg: EvaluateConfig) -> dict:
    if not cfg.policy:
        raise SystemExit("evaluate: pass --policy <file.zip> (written by `internal-rl train`).")
    if cfg.algo == "ppo":
        from stable_baselines3 import PPO as Algo
    else:
        from sb3_contrib import RecurrentPPO as Algo
    model = Algo.load(cfg.policy, device="cpu")
    train_like = TrainConfig(
        env_id=cfg.env_id,
        base_model=cfg.base_model,
        metacontroller=cfg.metacontroller,
        task=cfg.task,
    )
    vec = make_vec(train_like, cfg.n_envs, cfg.seed)
    infos = finished_episodes(model, vec, cfg.episodes, deterministic=not cfg.stochastic)
    s = np.array([float(bool(i.get("is_success"))) for i in infos])
    r = np.array([float(i["episode"]["r"]) for i in infos])
    lengths = [int(i["episode"]["l"]) for i in infos]
    result = {
        "env_id": cfg.env_id,
        "n_eval_episodes": cfg.episodes,
        "metrics": {
            "success_rate": {"mean": float(s.mean()), "std": float(s.std())},
            "mean_reward": {"mean": float(r.mean()), "std": float(r.std())},
            "abstract_steps_per_episode": {"mean": float(np.mean(lengths))},
        },
        "policy": cfg.policy,
        "deterministic": not cfg.stochastic,
        "config": cfg.__dict__,
    }
    print(f"success {s.mean():.3f} ± {s.std() / np.sqrt(len(s)):.3f} over {len(s)} episodes")
    if cfg.out:
        atomic_write_json(cfg.out, result)
    return result


def run(cfg: EvaluateConfig) -> None:
    evaluate(cfg)
