"""The paper's Fig. 8 comparison on one held-out task: internal RL against raw-action RL.

    python benchmarks/internal_rl_learning.py --tasks 0-1-2-3-4-5 2-3-4-5-6-7 \
        --seeds 0 1 2 --episodes 6000

For every task and seed, with the same episode budget, it trains:

* ``ppo``: stock SB3 ``PPO("MlpPolicy")`` on ``InternalControl-Pinpad-v0`` (the shipped defaults,
  or ``--base-model`` / ``--metacontroller``): `internal-rl train`;
* ``eq10``: internal RL with the paper's critic-free algorithm (Eq. 10) on the same env:
  `internal-rl train --algo eq10`;
* ``raw``: raw-action RL, the paper's Eq. 10 on the base model's own action head:
  `internal-rl baseline`;
* ``oracle``: Eq. 10 on ``InternalControl-Pinpad-Oracle-v0``, whose actions are the ground-truth
  subgoal controllers at the base model's control layer (the ceiling internal RL should approach).

Each run writes its own ``curve.json`` under ``--runs`` (a finished run is reused, so a stopped
benchmark resumes where it was); the benchmark writes ``<out>.json`` (the success of every
episode of every run, success in windows of episodes with the median and interquartile range
over seeds, wall times) and ``<out>.png`` (success against episodes, Fig. 8 style).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from agents.baseline import BaselineConfig, train_raw  # noqa: E402
from agents.common import atomic_write_json  # noqa: E402
from agents.train import TrainConfig, train  # noqa: E402

METHODS = {
    "ppo": "internal RL, stock SB3 PPO (MlpPolicy)",
    "eq10": "internal RL, paper Eq. 10",
    "raw": "raw-action RL, paper Eq. 10",
    "oracle": "oracle: ground-truth controllers, Eq. 10",
}


def windowed(successes: list[int], window: int) -> np.ndarray:
    s = np.asarray(successes, dtype=float)
    n = len(s) // window
    return s[: n * window].reshape(n, window).mean(1)


def run_one(method: str, task: str, seed: int, args: argparse.Namespace) -> dict:
    """One training run (or its saved result); returns its curve.json content."""
    acting = {"ppo": args.metacontroller, "eq10": args.metacontroller, "oracle": args.controllers}
    name = method + (f"-{Path(acting[method]).name}" if method in acting else "")
    out = Path(args.runs) / args.base_model.replace("/", "_") / task / name / f"seed{seed}"
    if (out / "curve.json").is_file():
        saved = json.loads((out / "curve.json").read_text())
        if len(saved["successes"]) >= args.episodes:
            return saved
    common = dict(task=task, episodes=args.episodes, seed=seed, out=str(out))
    if method == "raw":
        cfg = BaselineConfig(base_model=args.base_model, lr=args.raw_lr, **common)
        return train_raw(cfg)
    internal = dict(
        n_envs=args.n_envs, eval_every=args.episodes, progress=False, threads=args.threads
    )
    if method == "ppo":
        cfg = TrainConfig(
            env_id="InternalControl-v0",
            base_model=args.base_model,
            metacontroller=args.metacontroller,
            algo="ppo",
            lr=args.ppo_lr,
            **internal,
            **common,
        )
    elif method == "eq10":
        cfg = TrainConfig(
            env_id="InternalControl-v0",
            base_model=args.base_model,
            metacontroller=args.metacontroller,
            algo="eq10",
            lr=args.eq10_lr,
            batch_episodes=args.batch_episodes,
            **internal,
            **common,
        )
    elif method == "oracle":
        cfg = TrainConfig(
            env_id="InternalControl-v0",
            base_model=args.base_model,
            metacontroller=args.controllers,
            algo="eq10",
            lr=args.eq10_lr,
            batch_episodes=args.batch_episodes,
            **internal,
            **common,
        )
    else:
        raise SystemExit(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    return train(cfg)


def summarise(runs: dict[int, dict], window: int, tail: int) -> dict:
    curves = np.stack([windowed(r["successes"], window) for r in runs.values()])
    finals = [float(np.mean(r["successes"][-tail:])) for r in runs.values()]
    return {
        "final_success_per_seed": finals,
        "final_success_median": float(np.median(finals)),
        "curve_median": np.median(curves, 0).tolist(),
        "curve_q25": np.quantile(curves, 0.25, 0).tolist(),
        "curve_q75": np.quantile(curves, 0.75, 0).tolist(),
        "seconds_per_seed": [float(r["seconds"]) for r in runs.values()],
        "window": window,
        "final_window": tail,
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--tasks", nargs="+", default=["0-1-2-3-4-5", "2-3-4-5-6-7"])
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--episodes", type=int, default=6000, help="training episodes per run")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--base-model", default="pinpad-transformer")
    p.add_argument("--metacontroller", default="pinpad-metacontroller")
    p.add_argument("--controllers", default="pinpad-subgoal-controllers", help="the oracle's")
    p.add_argument("--n-envs", type=int, default=64, help="episodes run in parallel")
    p.add_argument("--batch-episodes", type=int, default=64, help="Eq. 10 batch B")
    p.add_argument("--eq10-lr", type=float, default=1e-3)
    p.add_argument("--ppo-lr", type=float, default=3e-4)
    p.add_argument("--raw-lr", type=float, default=3e-5, help="paper: 3e-5")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    p.add_argument("--window", type=int, default=250, help="episodes per curve point")
    p.add_argument("--final", type=int, default=500, help="last episodes = final success")
    p.add_argument("--runs", default="runs/internal_rl_learning")
    p.add_argument("--out", default="benchmarks/results/internal_rl_learning")
    args = p.parse_args()

    t0 = time.time()
    command = "python benchmarks/internal_rl_learning.py " + " ".join(sys.argv[1:])
    report: dict = {"command": command, "config": vars(args), "tasks": {}}
    for task in args.tasks:
        runs: dict[str, dict[int, dict]] = {m: {} for m in args.methods}
        for seed in args.seeds:
            for method in args.methods:
                r = run_one(method, task, seed, args)
                runs[method][seed] = r
                print(
                    f"{task} {method:6s} seed {seed}: last {args.final} episodes "
                    f"{np.mean(r['successes'][-args.final :]):.3f} ({r['seconds']:.0f}s)",
                    flush=True,
                )
        report["tasks"][task] = {
            "summary": {m: summarise(runs[m], args.window, args.final) for m in args.methods},
            "successes": {
                m: {str(s): r["successes"] for s, r in runs[m].items()} for m in args.methods
            },
        }
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        report["seconds"] = time.time() - t0
        atomic_write_json(out.with_suffix(".json"), report)  # after every task
        plot(report, args.methods, out.with_suffix(".png"))
    for task, r in report["tasks"].items():
        for m, s in r["summary"].items():
            print(f"{task} {METHODS[m]}: median final success {s['final_success_median']:.3f}")


def plot(report: dict, methods: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(report["tasks"])
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for m in methods:
            s = report["tasks"][task]["summary"][m]
            x = (np.arange(len(s["curve_median"])) + 1) * s["window"]
            ax.plot(x, s["curve_median"], label=METHODS[m])
            ax.fill_between(x, s["curve_q25"], s["curve_q75"], alpha=0.2)
        ax.set_xlabel("episodes")
        ax.set_ylabel("success rate")
        ax.set_ylim(-0.02, 1.02)
        n = len(report["config"]["seeds"])
        ax.set_title(f"held-out task {task}\nmedian and IQR over {n} seeds")
    axes[0][0].legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
