"""Environment throughput: GridPinpad-v0 against MiniGrid-Empty-8x8-v0, in the same run.

    python benchmarks/env_throughput.py [--seconds 5] [--out benchmarks/results/env_throughput.json]

Measures, single-threaded, steps per second of
  * a single env stepped with random actions through `gym.make` (PassiveEnvChecker and
    OrderEnforcing included, as users get it), for GridPinpad-v0 and MiniGrid-Empty-8x8-v0;
  * the batched expert collector (`collect_grid_demonstrations`, the vectorised form used by
    `internal-rl collect` and online pretraining data), in expert steps per second.
Issue targets: single env >= 5x MiniGrid; collection >= 20k expert steps/s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import gymnasium as gym
import numpy as np
from internal_rl_agents.common import atomic_write_json

from internal_rl_gym.envs.grid_expert import collect_grid_demonstrations


def steps_per_second(env_id: str, seconds: float, **kwargs) -> float:
    env = gym.make(env_id, **kwargs)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 3 if "MiniGrid" in env_id else 4, size=100_000)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for a in actions[:1000]:
            _, _, term, trunc, _ = env.step(int(a))
            if term or trunc:
                env.reset()
        n += 1000
    return n / (time.perf_counter() - t0)


def collection_rate(n_episodes: int) -> tuple[float, int]:
    collect_grid_demonstrations(256, "pretraining", seed=99)  # warm-up
    t0 = time.perf_counter()
    data = collect_grid_demonstrations(n_episodes, "pretraining", seed=0)
    return data.n_steps / (time.perf_counter() - t0), data.n_steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--episodes", type=int, default=20_000)
    p.add_argument("--out", default="benchmarks/results/env_throughput.json")
    args = p.parse_args()

    import minigrid  # noqa: F401  (registers MiniGrid ids)

    grid = steps_per_second("GridPinpad-v0", args.seconds, task="pretraining")
    mini = steps_per_second("MiniGrid-Empty-8x8-v0", args.seconds)
    collect, n_steps = collection_rate(args.episodes)
    result = {
        "gridpinpad_single_env_steps_per_s": round(grid),
        "minigrid_empty8x8_single_env_steps_per_s": round(mini),
        "ratio_gridpinpad_over_minigrid": round(grid / mini, 2),
        "target_ratio": 5.0,
        "expert_collection_steps_per_s": round(collect),
        "expert_collection_steps": n_steps,
        "target_collection_steps_per_s": 20_000,
        "machine": {
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
        },
    }
    print(json.dumps(result, indent=2))
    atomic_write_json(args.out, result)


if __name__ == "__main__":
    main()
