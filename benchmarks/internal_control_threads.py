"""InternalControl with torch's default threads vs one thread: primitive steps/s, same run.

    python benchmarks/internal_control_threads.py [--seconds 20] [--rounds 3]

The engine runs its small torch calls on one thread by default (``ControlOptions.torch_threads``),
so a user who leaves torch's thread count alone should get the one-thread speed (issue target:
within 10%). Measures ``InternalControl-Pinpad-v0`` with random actions, in alternating time
slices: (a) torch's default thread count, engine default; (b) ``torch.set_num_threads(1)`` set
by the user; (c) torch's default threads with ``torch_threads=None`` (the engine leaves torch
alone: what it did before). Writes ``benchmarks/results/internal_control_threads.json``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from internal_rl_agents.common import atomic_write_json

import internal_rl_gym  # noqa: F401  (registers the ids)

OUT = Path(__file__).resolve().parent / "results" / "internal_control_threads.json"


def steps_per_second(env: gym.Env, seconds: float, threads: int | None) -> float:
    default = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        steps, t0 = 0, time.perf_counter()
        env.reset(seed=int(t0))
        while time.perf_counter() - t0 < seconds:
            _, _, terminated, truncated, info = env.step(env.action_space.sample())
            steps += info["primitive_steps"]
            if terminated or truncated:
                env.reset()
        return steps / (time.perf_counter() - t0)
    finally:
        torch.set_num_threads(default)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=20.0, help="seconds per time slice")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args()
    engine_default = gym.make("InternalControl-Pinpad-v0")
    engine_off = gym.make("InternalControl-Pinpad-v0", torch_threads=None)
    runs: dict[str, list[float]] = {"default_threads": [], "one_thread": [], "engine_off": []}
    load_before = os.getloadavg()
    for _ in range(args.rounds):
        runs["default_threads"].append(steps_per_second(engine_default, args.seconds, None))
        runs["one_thread"].append(steps_per_second(engine_default, args.seconds, 1))
        runs["engine_off"].append(steps_per_second(engine_off, args.seconds, None))
    med = {k: float(np.median(v)) for k, v in runs.items()}
    report = {
        "command": "python benchmarks/internal_control_threads.py "
        + f"--seconds {args.seconds:g} --rounds {args.rounds}",
        "torch_default_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "loadavg_before_after": [load_before, os.getloadavg()],
        "primitive_steps_per_s_median": {k: round(v, 1) for k, v in med.items()},
        "runs": {k: [round(x, 1) for x in v] for k, v in runs.items()},
        "default_over_one_thread": round(med["default_threads"] / med["one_thread"], 3),
        "engine_off_over_one_thread": round(med["engine_off"] / med["one_thread"], 3),
        "target": "default_over_one_thread >= 0.9",
    }
    for k, v in report["primitive_steps_per_s_median"].items():
        print(f"{k:16s} {v:8.1f} primitive steps/s")
    print("default / one thread:", report["default_over_one_thread"])
    atomic_write_json(args.out, report)


if __name__ == "__main__":
    main()
