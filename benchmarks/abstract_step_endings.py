"""How do the abstract steps of an InternalControl env end: the gate (β ≥ 0.5), the cap on
primitive steps, or the episode's end?

    python benchmarks/abstract_step_endings.py --env-id InternalControl-Ant-v3 --episodes 32

Codes come from the metacontroller's prior, z ~ N(0, I) (action = z / action_scale, what
`internal-rl train`'s initial policy sends). A gate that never fires makes every abstract step
run to ``max_primitive_steps``.
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
import torch
from internal_rl_agents.common import atomic_write_json

import internal_rl_gym  # noqa: F401  (registers the ids)
from internal_rl_gym.internal_control import ControlOptions


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--env-id", default="InternalControl-Ant-v3")
    p.add_argument("--episodes", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="benchmarks/results/ant-transformer/abstract_step_endings.json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    env = gym.make(args.env_id)
    defaults = {**vars(ControlOptions()), **gym.spec(args.env_id).kwargs}  # the id's own options
    scale, cap = defaults["action_scale"], defaults["max_primitive_steps"]
    rng = np.random.default_rng(args.seed)
    lengths, endings = [], {"gate": 0, "cap": 0, "episode_end": 0}
    for ep in range(args.episodes):
        env.reset(seed=args.seed + ep)
        done = False
        while not done:
            z = rng.standard_normal(env.action_space.shape)
            action = np.clip(z / scale, env.action_space.low, env.action_space.high)
            *_, term, trunc, info = env.step(action.astype(np.float32))
            done = term or trunc
            n = int(info["primitive_steps"])
            lengths.append(n)
            endings["episode_end" if done else "cap" if n >= cap else "gate"] += 1
    result = {
        "env_id": args.env_id,
        "episodes": args.episodes,
        "max_primitive_steps": cap,
        "abstract_steps": len(lengths),
        "endings": endings,
        "mean_primitive_steps": float(np.mean(lengths)),
        "seed": args.seed,
    }
    print(result)
    atomic_write_json(args.out, result)


if __name__ == "__main__":
    main()
