"""GridPinpad vector env speed: the native GridPinpadVectorEnv against SyncVectorEnv, same run.

    python benchmarks/grid_vector_speed.py [--sizes 16 64 256] [--seconds 2] [--repeats 3]
        [--task post] [--out benchmarks/results/grid_vector_speed.json]

For each number of envs N, steps per second (env steps: N per ``step`` call) of
  * ``gym.make_vec("GridPinpad-v0", num_envs=N, vectorization_mode="vector_entry_point")``, the
    numpy-batched env, and
  * ``gym.make_vec(..., vectorization_mode="sync")``, a ``SyncVectorEnv`` of N single envs,
with uniformly random actions (episodes of ~13 steps on average, so autoresets are frequent).
The two are measured alternately, ``--repeats`` times each, and each repeat's ratio is taken
from a back-to-back pair; the reported ratio is the median over repeats. Single-threaded numpy.
The machine's load average (``os.getloadavg()``) before and after is recorded: on a shared
machine absolute numbers vary, ratios of back-to-back pairs less so.
Issue targets: ratio >= 10 at N = 256 (goal 50).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import gymnasium as gym
import numpy as np
from internal_rl_agents.common import atomic_write_json

MODES = ("vector_entry_point", "sync")


def steps_per_second(mode: str, n: int, seconds: float, task: str) -> float:
    """Env steps per second of one vector env stepped for about ``seconds`` with random actions."""
    envs = gym.make_vec("GridPinpad-v0", num_envs=n, vectorization_mode=mode, task=task)
    envs.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, 4, size=(256, n))
    for a in actions[:8]:  # warm-up (first layouts, caches)
        envs.step(a)
    calls, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for a in actions[:32]:
            envs.step(a)
        calls += 32
    rate = calls * n / (time.perf_counter() - t0)
    envs.close()
    return rate


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sizes", type=int, nargs="+", default=[16, 64, 256], help="values of N")
    p.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    p.add_argument("--repeats", type=int, default=3, help="alternating measurements per mode")
    p.add_argument("--task", default="post", help="task= of the env (default: the id's)")
    p.add_argument("--out", default="benchmarks/results/grid_vector_speed.json")
    args = p.parse_args()
    if args.repeats < 1 or args.seconds <= 0 or min(args.sizes) < 1:
        p.error("--repeats and every --sizes value must be >= 1 and --seconds > 0.")

    load_before = os.getloadavg()
    rows = []
    for n in args.sizes:
        rates: dict[str, list[float]] = {m: [] for m in MODES}
        for _ in range(args.repeats):
            for mode in MODES:
                rates[mode].append(steps_per_second(mode, n, args.seconds, args.task))
        pair_ratios = [v / s for v, s in zip(rates["vector_entry_point"], rates["sync"])]
        row = {
            "num_envs": n,
            "vector_entry_point_steps_per_s": round(statistics.median(rates[MODES[0]])),
            "sync_steps_per_s": round(statistics.median(rates["sync"])),
            "ratio": round(statistics.median(pair_ratios), 1),
            "ratios_per_repeat": [round(r, 1) for r in pair_ratios],
            "vector_entry_point_runs": [round(r) for r in rates[MODES[0]]],
            "sync_runs": [round(r) for r in rates["sync"]],
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {
        "command": "python benchmarks/grid_vector_speed.py " + " ".join(sys.argv[1:]),
        "task": args.task,
        "policy": "uniform random actions (episodes of ~13 steps: autoreset-heavy)",
        "seconds_per_measurement": args.seconds,
        "repeats": args.repeats,
        "results": rows,
        "target_ratio_at_256": 10.0,
        "goal_ratio_at_256": 50.0,
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "note": (
            "Measured on a shared machine (other experiments running; see loadavg): absolute "
            "steps/s vary between runs, the ratios come from back-to-back pairs."
        ),
        "machine": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "gymnasium": gym.__version__,
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
        },
    }
    atomic_write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
