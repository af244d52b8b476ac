"""Learning benchmark: internal RL (stock SB3 PPO on InternalControl) vs raw-action RL.

    python benchmarks/internal_rl_learning.py --episodes 20000 --seeds 0 1 2 \
        [--base-model pinpad-transformer --metacontroller pinpad-metacontroller] [--task post]

For each seed, runs ``internal-rl train`` (PPO MlpPolicy on the batched InternalControl VecEnv)
and ``internal-rl baseline`` (the paper's Eq. 10 on primitive actions, starting from the same
pretrained base model) on the same task with the same episode budget. Writes the success of every
episode, the median over seeds of the success rate in windows of episodes, wall times, and a PNG
plot of success against episodes (median and range over seeds).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from agents.baseline import BaselineConfig, train_raw  # noqa: E402
from agents.common import atomic_write_json  # noqa: E402
from agents.train import TrainConfig, train  # noqa: E402


def windowed(successes: list[int], window: int) -> np.ndarray:
    s = np.asarray(successes, dtype=float)
    n = len(s) // window
    return s[: n * window].reshape(n, window).mean(1)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--episodes", type=int, default=20_000)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--base-model", default="pinpad-transformer")
    p.add_argument("--metacontroller", default="pinpad-metacontroller")
    p.add_argument("--task", default="post")
    p.add_argument("--window", type=int, default=500)
    p.add_argument("--skip-baseline", action="store_true")
    p.add_argument("--runs", default="runs/learning")
    p.add_argument("--out", default="benchmarks/results/internal_rl_learning")
    args = p.parse_args()

    results: dict[str, dict] = {"internal_rl": {}, "raw_action_rl": {}}
    for seed in args.seeds:
        cfg = TrainConfig(
            env_id="InternalControl-v0",
            base_model=args.base_model,
            metacontroller=args.metacontroller,
            task=args.task,
            episodes=args.episodes,
            eval_every=max(args.episodes // 4, 1),
            seed=seed,
            out=f"{args.runs}/internal/seed{seed}",
        )
        r = train(cfg)
        results["internal_rl"][seed] = {
            "successes": r["successes"],
            "seconds": r["seconds"],
            "evaluations": r["evaluations"],
        }
        if not args.skip_baseline:
            b = train_raw(
                BaselineConfig(
                    base_model=args.base_model,
                    task=args.task,
                    episodes=args.episodes,
                    seed=seed,
                    out=f"{args.runs}/raw/seed{seed}",
                )
            )
            results["raw_action_rl"][seed] = {"successes": b["successes"], "seconds": b["seconds"]}

    summary = {
        "task": args.task,
        "episodes": args.episodes,
        "seeds": args.seeds,
        "base_model": args.base_model,
        "metacontroller": args.metacontroller,
    }
    for method, runs in results.items():
        if not runs:
            continue
        curves = np.stack([windowed(r["successes"], args.window) for r in runs.values()])
        finals = [float(np.mean(r["successes"][-args.window :])) for r in runs.values()]
        summary[method] = {
            "final_success_per_seed": finals,
            "final_success_median": float(np.median(finals)),
            "curve_median": np.median(curves, 0).tolist(),
            "curve_min": curves.min(0).tolist(),
            "curve_max": curves.max(0).tolist(),
            "seconds_per_seed": [r["seconds"] for r in runs.values()],
            "window": args.window,
        }
    out = Path(args.out)
    atomic_write_json(out.with_suffix(".json"), {"summary": summary, "runs": results})
    plot(summary, out.with_suffix(".png"))
    print(json.dumps({k: v for k, v in summary.items() if not isinstance(v, dict)}, indent=1))
    for method in ("internal_rl", "raw_action_rl"):
        if method in summary:
            print(method, "final success per seed:", summary[method]["final_success_per_seed"])


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for method, label in (
        ("internal_rl", "internal RL (SB3 PPO on z)"),
        ("raw_action_rl", "raw-action RL (Eq. 10)"),
    ):
        if method not in summary:
            continue
        s = summary[method]
        x = (np.arange(len(s["curve_median"])) + 1) * s["window"]
        ax.plot(x, s["curve_median"], label=label)
        ax.fill_between(x, s["curve_min"], s["curve_max"], alpha=0.2)
    ax.set_xlabel("episodes")
    ax.set_ylabel("success rate")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"task {summary['task']}: median and range over seeds {summary['seeds']}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
