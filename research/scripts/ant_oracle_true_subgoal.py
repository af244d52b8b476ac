"""The ceiling of the ant oracle: InternalControl-Ant-Oracle-v2 played by the policy that always
picks the env's true subgoal (what Eq. 10 on the oracle should approach).

    python research/scripts/ant_oracle_true_subgoal.py --episodes 24 \
        --out research/results/session29/ant_oracle_true_subgoal.json
"""

from __future__ import annotations

import argparse
import sys

import gymnasium as gym
import numpy as np
import torch
from internal_rl_agents.common import atomic_write_json

import internal_rl_gym  # noqa: F401  (registers the ids)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env-id", default="InternalControl-Ant-Oracle-v2")
    p.add_argument("--episodes", type=int, default=24)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(1)
    env = gym.make(args.env_id)
    success, decisions = [], []
    for ep in range(args.episodes):
        _, info = env.reset(seed=ep)
        done, n = False, 0
        while not done:
            _, _, term, trunc, info = env.step(int(info.get("subgoal", 0)))
            done, n = term or trunc, n + 1
        success.append(bool(info["is_success"]))
        decisions.append(n)
    report = {
        "env_id": args.env_id,
        "episodes": args.episodes,
        "success": float(np.mean(success)),
        "abstract_steps_per_episode": float(np.mean(decisions)),
        "command": " ".join(["python", *sys.argv]),
    }
    print(report)
    atomic_write_json(args.out, report)


if __name__ == "__main__":
    main()
