"""Quickstart: the paper's gridworld, its expert, and the internal-control view of it.

    python examples/quickstart.py [--base-model DIR_OR_REPO --metacontroller DIR_OR_REPO]

Without checkpoints it only plays GridPinpad with the expert. With a base model and a
metacontroller (e.g. from `internal-rl pretrain` and `internal-rl discover`) it also takes a few
abstract actions in InternalControl-v0 and prints what happened inside each.
"""

import argparse

import gymnasium as gym
import numpy as np

import internal_rl_gym  # noqa: F401  (registers the env ids)
from internal_rl_gym.envs.grid_expert import GridPinpadExpert


def play_grid(seed: int = 0) -> None:
    env = gym.make("GridPinpad-v0", task="pretraining", render_mode="ansi")
    expert = GridPinpadExpert(seed=seed)
    obs, info = env.reset(seed=seed)
    print(env.render())
    steps, done = 0, False
    while not done:
        obs, reward, terminated, truncated, info = env.step(expert.act(env))
        steps, done = steps + 1, terminated or truncated
    print(f"expert solved task {info['task']} in {steps} steps: success={info['success']}")


def play_internal_control(base_model: str, metacontroller: str, seed: int = 0) -> None:
    env = gym.make(
        "InternalControl-v0", base_model=base_model, metacontroller=metacontroller, task="post"
    )
    obs, info = env.reset(seed=seed)
    print(f"observation: the residual stream, shape {obs.shape}")
    rng = np.random.default_rng(seed)
    for k in range(5):
        z = rng.standard_normal(env.action_space.shape).astype(np.float32) / 3.0  # z ~ N(0, I)
        obs, reward, terminated, truncated, info = env.step(z)
        print(
            f"abstract step {k}: {info['primitive_steps']} primitive steps, colours visited "
            f"{info['visited_colours']}, reward {reward}"
        )
        if terminated or truncated:
            break


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--base-model")
    p.add_argument("--metacontroller")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    play_grid(args.seed)
    if args.base_model and args.metacontroller:
        play_internal_control(args.base_model, args.metacontroller, args.seed)
