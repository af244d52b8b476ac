"""From three pairs to the post task: internal RL carried over task length (paper §C.5, issue 8).

    python benchmarks/post_task_curriculum.py --seeds 0 1 2

The post-training task 0-1-2-3-4-5-6-7-0-1-2-3 needs six abstract decisions; a uniform policy
over four subgoals picks the right six in 1 of 4096 episodes, so learning from scratch on its
sparse reward is hopeless within a CPU budget. Like the paper's curriculum suggestion, the
policy is carried over task length: stage 1 learns the held-out three-pair task 0-1-2-3-4-5
(reusing the run of ``benchmarks/internal_rl_learning.py`` when it exists), stage 2 continues on
0-1-2-3-4-5-6-7, stage 3 on the post task, each stage starting from the previous policy
(`internal-rl train --algo eq10 --init-policy`), with an entropy bonus in the later stages
(``--ent-coef``; without it the carried policy never tries the new decisions: 0 of 2,000
episodes of 0-1-2-3-4-5-6-7 in our first run). Run for the oracle (ground-truth subgoal
controllers at the control layer) and, from its own start, raw-action RL on the post task with
the same total episode budget.

Writes ``benchmarks/results/post_task_curriculum.json`` and ``.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from internal_rl_agents.baseline import BaselineConfig, train_raw
from internal_rl_agents.common import atomic_write_bytes, atomic_write_json
from internal_rl_agents.compare import CompareConfig, finished_run, run_dir, weights_tag, windowed
from internal_rl_agents.train import TrainConfig, train

STAGES = ("0-1-2-3-4-5", "0-1-2-3-4-5-6-7", "post")


def acting_kind(args: argparse.Namespace) -> str:
    """What ``--controllers`` names: the oracle's controllers or a metacontroller."""
    return "subgoal_controllers" if args.name == "oracle" else "metacontroller"


def oracle_curriculum(args: argparse.Namespace, seed: int) -> list[dict]:
    runs, init = [], ""
    for stage, task in enumerate(STAGES):
        # the settings that change a run are in its folder's name, so a rerun with others
        # never reuses it (finished_run only checks the episode count)
        ent = args.ent_coef if stage > 0 else 0.0
        tag = f"lr{args.lr:g}_ent{ent:g}{weights_tag(args.controllers, acting_kind(args))}"
        out = Path(args.runs) / f"{args.name}_stage{stage + 1}_{task}_{tag}" / f"seed{seed}"
        if stage == 0 and args.stage1_runs and args.name == "oracle":  # the comparison's run
            cmp = CompareConfig(
                runs=args.stage1_runs, base_model=args.base_model, controllers=args.controllers
            )
            out = run_dir(cmp, "oracle", task, seed)
        r = finished_run(out, args.episodes[stage])
        if r is None:
            r = train(
                TrainConfig(
                    env_id="InternalControl-v0",
                    base_model=args.base_model,
                    metacontroller=args.controllers,
                    task=task,
                    algo="eq10",
                    lr=args.lr,
                    episodes=args.episodes[stage],
                    n_envs=64,
                    batch_episodes=64,
                    eval_every=args.episodes[stage],
                    init_policy=init,
                    ent_coef=args.ent_coef if stage > 0 else 0.0,
                    seed=seed,
                    out=str(out),
                    progress=False,
                )
            )
        runs.append({"task": task, **{k: r[k] for k in ("successes", "seconds", "policy")}})
        init = r["policy"]
        print(f"seed {seed} stage {stage + 1} ({task}): last 500 episodes "
              f"{np.mean(r['successes'][-500:]):.3f}", flush=True)  # fmt: skip
    return runs


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--episodes", type=int, nargs=3, default=[6000, 3000, 3000],
                   help="episodes per stage")  # fmt: skip
    p.add_argument("--base-model", default="pinpad-transformer")
    p.add_argument(
        "--controllers",
        default="pinpad-subgoal-controllers",
        help="what internal RL acts with: the oracle's ground-truth controllers, or a "
        "metacontroller (e.g. pinpad-metacontroller, with --name internal_rl)",
    )
    p.add_argument("--name", default="oracle", help="the curriculum's name in the report")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument(
        "--ent-coef",
        type=float,
        default=0.05,
        help="entropy bonus in stages 2-3 (not in the paper): the stage-1 policy is nearly "
        "deterministic, also at the decisions a longer task adds, which it never saw",
    )
    p.add_argument("--window", type=int, default=250)
    p.add_argument(
        "--raw-seeds", type=int, nargs="*", default=None,
        help="seeds of the raw-action baseline (default: --seeds)",
    )  # fmt: skip
    p.add_argument("--runs", default="runs/post_task_curriculum")
    p.add_argument(
        "--stage1-runs",
        default="runs/internal_rl_learning",
        help="the oracle only: reuse the stage-1 runs of `internal-rl compare --runs DIR` "
        "(benchmarks/internal_rl_learning.py) when present; empty = train stage 1 here",
    )
    p.add_argument("--out", default="benchmarks/results/post_task_curriculum")
    args = p.parse_args()
    t0 = time.time()
    report: dict = {
        "command": "python benchmarks/post_task_curriculum.py " + " ".join(sys.argv[1:]),
        "config": vars(args),
        args.name: {},
        "raw": {},
    }
    for seed in args.seeds:
        report[args.name][str(seed)] = oracle_curriculum(args, seed)
    for seed in args.seeds if args.raw_seeds is None else args.raw_seeds:
        out = Path(args.runs) / "raw_post" / f"seed{seed}"
        total = sum(args.episodes)
        r = finished_run(out, total) or train_raw(
            BaselineConfig(
                base_model=args.base_model, task="post", episodes=total, seed=seed, out=str(out)
            )  # fmt: skip
        )
        report["raw"][str(seed)] = {"successes": r["successes"], "seconds": r["seconds"]}
    post = [runs[-1]["successes"] for runs in report[args.name].values()]
    finals = [float(np.mean(s[-500:])) for s in post]
    raw_finals = [float(np.mean(r["successes"][-500:])) for r in report["raw"].values()]
    report["summary"] = {
        f"{args.name}_post_final_per_seed": finals,
        f"{args.name}_post_final_median": float(np.median(finals)),
        "raw_post_final_per_seed": raw_finals,
        "raw_post_final_median": float(np.median(raw_finals)) if raw_finals else None,
        "seconds": time.time() - t0,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    plot(report, args, out.with_suffix(".png"))
    for runs in [*report[args.name].values(), *report["raw"].values()]:  # 0/1 strings: compact
        for run in runs if isinstance(runs, list) else [runs]:
            run["successes"] = "".join(str(int(x)) for x in run["successes"])
    atomic_write_json(out.with_suffix(".json"), report)
    print(json.dumps(report["summary"], indent=1))


def plot(report: dict, args: argparse.Namespace, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4))
    w = args.window
    curves = np.stack([np.concatenate([windowed(s["successes"], w) for s in runs])
                       for runs in report[args.name].values()])  # fmt: skip
    x = (np.arange(curves.shape[1]) + 1) * w
    ax.plot(x, np.median(curves, 0), label=f"{args.name}, Eq. 10, curriculum over task length")
    ax.fill_between(x, *np.quantile(curves, [0.25, 0.75], 0), alpha=0.2)
    if report["raw"]:  # `--raw-seeds` with no seed skips the baseline
        raw = np.stack([windowed(r["successes"], w) for r in report["raw"].values()])
        xr = (np.arange(raw.shape[1]) + 1) * w
        ax.plot(xr, np.median(raw, 0), label="raw-action RL, Eq. 10, post task throughout")
    edge = 0
    for stage, task in enumerate(STAGES):
        edge += args.episodes[stage]
        ax.axvline(edge, color="grey", lw=0.5)
        ax.text(edge - args.episodes[stage] / 2, 0.97, task, ha="center", va="top", fontsize=7)
    ax.set_xlabel("episodes")
    ax.set_ylabel("success rate (on the stage's task)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"to the post task: median and IQR over {len(report[args.name])} seeds")
    ax.legend(fontsize=8, loc="center right")
    fig.tight_layout()
    atomic_write_bytes(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)


if __name__ == "__main__":
    main()
