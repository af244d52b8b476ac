"""AntPinpad throughput: AntPinpad-v0 against Gymnasium's Ant-v5, in the same run.

    python benchmarks/ant_throughput.py [--seconds 5] [--episodes 20] \
        [--out benchmarks/results/ant_throughput.json]

Measures, single-threaded, steps per second of
  * a single env stepped with random actions through `gym.make` (PassiveEnvChecker and
    OrderEnforcing included, as users get it), for AntPinpad-v0 and Ant-v5, alternating short
    rounds so both see the same machine load;
  * expert demonstration collection (`collect_ant_demonstrations`, stochastic expert, pretraining
    tasks): expert env steps per second (all attempted steps, failures included) and successful
    episodes per second.
Issue target: AntPinpad-v0 >= 0.8x Ant-v5.
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

from internal_rl_gym.envs.ant_expert import collect_ant_demonstrations
from internal_rl_gym.envs.ant_pinpad import AntPinpadEnv

if "AntPinpad-v0" not in gym.registry:  # the package registers it; this keeps the script standalone
    gym.register("AntPinpad-v0", entry_point=AntPinpadEnv)


def _make(env_id: str) -> gym.Env:
    return gym.make(env_id, task="pretraining") if env_id == "AntPinpad-v0" else gym.make(env_id)


def step_rates(env_ids: list[str], seconds: float, rounds: int = 5) -> dict[str, float]:
    """Steps/s of each env with random actions, interleaved in ``rounds`` rounds."""
    envs = {k: _make(k) for k in env_ids}
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, size=(1000, 8)).astype(np.float32)
    counts = {k: 0 for k in env_ids}
    times = {k: 0.0 for k in env_ids}
    for env in envs.values():
        env.reset(seed=0)
        for a in actions[:50]:  # warm-up
            _, _, term, trunc, _ = env.step(a)
            if term or trunc:
                env.reset()
    for _ in range(rounds):
        for k, env in envs.items():
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds / rounds:
                for a in actions[:200]:
                    _, _, term, trunc, _ = env.step(a)
                    if term or trunc:
                        env.reset()
                n += 200
            times[k] += time.perf_counter() - t0
            counts[k] += n
    for env in envs.values():
        env.close()
    return {k: counts[k] / times[k] for k in env_ids}


def collection_rate(n_episodes: int) -> dict[str, float]:
    collect_ant_demonstrations(2, "pretraining", seed=99)  # warm-up
    t0 = time.perf_counter()
    data = collect_ant_demonstrations(n_episodes, "pretraining", seed=0, stochastic=True)
    dt = time.perf_counter() - t0
    env_steps = data.metadata["env_steps"]
    return {
        "expert_collection_env_steps_per_s": round(env_steps / dt),
        "expert_collection_kept_steps_per_s": round(data.n_steps / dt),
        "expert_collection_episodes_per_s": round(n_episodes / dt, 2),
        "expert_collection_episodes": n_episodes,
        "expert_collection_dropped": data.metadata["dropped"],
        "expert_collection_mean_length": round(float(data.lengths.mean()), 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seconds", type=float, default=5.0, help="stepping time per env")
    p.add_argument("--episodes", type=int, default=20, help="successful expert episodes")
    p.add_argument("--out", default="benchmarks/results/ant_throughput.json")
    args = p.parse_args()

    rates = step_rates(["AntPinpad-v0", "Ant-v5"], args.seconds)
    result = {
        "antpinpad_single_env_steps_per_s": round(rates["AntPinpad-v0"]),
        "ant_v5_single_env_steps_per_s": round(rates["Ant-v5"]),
        "ratio_antpinpad_over_ant_v5": round(rates["AntPinpad-v0"] / rates["Ant-v5"], 2),
        "target_ratio": 0.8,
        **collection_rate(args.episodes),
        "machine": {
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "load_average_1min": round(os.getloadavg()[0], 2),
        },
    }
    print(json.dumps(result, indent=2))
    atomic_write_json(args.out, result)


if __name__ == "__main__":
    main()
