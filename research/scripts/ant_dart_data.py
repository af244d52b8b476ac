"""Expert demonstrations with recoveries (DART, Laskey et al. 2017): can a base model that walks off
the grid in a third of its free-play episodes learn to come back from where its errors lead?

    python research/scripts/ant_dart_data.py --noise 0.15 --episodes 5000 --seed 3 \
        --out data/antroutes1_dart015.npz

The stochastic expert acts as in ``internal-rl collect --env AntPinpadRoutes-v1``, but the env
executes its torques plus Gaussian noise of scale ``--noise`` (clipped to [-1, 1]) while the
dataset records the torques the expert chose: the episodes drift off the expert's own path, and
their labels show the way back. Failed episodes are dropped, as ``collect`` drops them.
"""

from __future__ import annotations

import argparse

import numpy as np

import internal_rl_gym  # noqa: F401
from internal_rl_gym.envs import ant_expert


def noisy_execution(noise: float, seed: int):
    """``ant_expert.run_episode`` with the executed action perturbed and the chosen one recorded."""
    rng = np.random.default_rng(seed)
    original = ant_expert.run_episode

    def run_episode(env, expert, seed=None, record=False):
        step = env.step

        def perturbed(a):
            return step(np.clip(a + noise * rng.normal(size=a.shape), -1.0, 1.0).astype(a.dtype))

        env.step = perturbed
        try:
            return original(env, expert, seed=seed, record=record)
        finally:
            del env.step  # back to the class's step

    return run_episode


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="AntPinpadRoutes-v1")
    p.add_argument("--noise", type=float, required=True)
    p.add_argument("--episodes", type=int, default=5000)
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    ant_expert.run_episode = noisy_execution(args.noise, args.seed + 7)
    data = ant_expert.collect_ant_demonstrations(
        args.episodes, "pretraining", seed=args.seed, stochastic=True, env_id=args.env,
        progress=True,
    )  # fmt: skip
    data.metadata["execution_noise"] = args.noise
    m = data.metadata
    print(f"kept {args.episodes} of {m['attempts']} episodes ({m['dropped']} failed)")
    print(data.save(args.out))


if __name__ == "__main__":
    main()
