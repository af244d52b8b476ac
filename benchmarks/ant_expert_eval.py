"""Success rate of the AntPinpad expert (gait + grid planner) on the paper's tasks.

    python benchmarks/ant_expert_eval.py [--episodes 200] [--tasks pretraining post] \
        [--modes mean stochastic] [--seed 0] [--cell-size 2.0] [--unfiltered] \
        [--out benchmarks/results/ant_expert_eval.json]

Runs `evaluate_ant_expert` for every (task set, mode): "mean" is the deterministic expert (the
analogue of the PPO expert's mean, used for D*), "stochastic" the noisy one (used for D).
The paper's PPO expert reaches 0.8 on the pretraining tasks and 0.7 on 0-1-2-3; these are the
issue's targets. `--unfiltered` keeps layouts that cannot be solved on the grid graph (as the
paper's sampler probably does); by default the env rejects them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

from internal_rl_agents.common import atomic_write_json

from internal_rl_gym.envs.ant_expert import AntPinpadExpert, evaluate_ant_expert

TARGETS = {"pretraining": 0.8, "post": 0.7}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--episodes", type=int, default=200, help="episodes per (task set, mode)")
    p.add_argument("--tasks", nargs="+", default=["pretraining", "post"])
    p.add_argument(
        "--modes", nargs="+", default=["mean", "stochastic"], choices=["mean", "stochastic"]
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cell-size", type=float, default=2.0)
    p.add_argument("--unfiltered", action="store_true", help="keep unsolvable layouts")
    p.add_argument("--out", default="benchmarks/results/ant_expert_eval.json")
    args = p.parse_args()

    env_kwargs = {"cell_size": args.cell_size, "filter_unsolvable": not args.unfiltered}
    runs = []
    for task in args.tasks:
        for mode in args.modes:
            t0 = time.perf_counter()
            r = evaluate_ant_expert(
                task,
                args.episodes,
                args.seed,
                stochastic=mode == "stochastic",
                env_kwargs=env_kwargs,
            )
            r["mode"] = mode
            r["target"] = TARGETS.get(task)
            r["seconds"] = round(time.perf_counter() - t0, 1)
            runs.append(r)
            print(
                f"{task:>12} {mode:>10}: success {r['success_rate']:.3f} +- {r['stderr']:.3f} "
                f"(n={args.episodes}, target {r['target']}) ends {r['terminations']}",
                flush=True,
            )
    result = {
        "runs": runs,
        "expert_params": {
            mode: AntPinpadExpert(stochastic=mode == "stochastic").params() for mode in args.modes
        },
        "env_kwargs": env_kwargs,
        "machine": {
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
        },
    }
    atomic_write_json(args.out, result)
    print(json.dumps({"written": args.out}))


if __name__ == "__main__":
    main()
