"""How near the true subgoal boundaries does an ant metacontroller's gate switch?

    python benchmarks/ant_switch_alignment.py --base-model ant-transformer \
        --metacontroller ant-metacontroller --data data/antroutes1_pretraining_clean.npz \
        --out benchmarks/results/ant-transformer/ant-metacontroller_switch_alignment.json

`internal-rl discover` scores switches within ±1 step, the grid's slack, where a subgoal lasts
~10 steps. An ant subgoal lasts ~65 steps and its boundary (the step the ant enters a colour cell)
is not marked in its gait, so this scores the gate of a saved metacontroller on the same held-out
clean episodes as `discover` (the last ``--holdout`` of ``--data``) at several tolerances, next to
chance: the same number of switches per episode placed uniformly at random (``--chance-draws``
draws). A gate whose F1 is near chance at every tolerance carries no boundary information.
``--thresholds`` scores the switches above other β thresholds as well (a gate that switches at
every boundary and in between may still separate the two by β).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from internal_rl_agents.common import atomic_write_json
from internal_rl_agents.discover import cache_activations, heldout_split
from internal_rl_agents.discover_diagnostics import (
    SWITCH_THRESHOLD,
    gate_traces,
    match_switches,
    true_boundaries,
)

from internal_rl_gym.data import Demonstrations
from internal_rl_gym.internal_control import load_frozen_models


def f1(tp: int, n_pred: int, n_true: int) -> dict[str, float]:
    p, r = tp / max(1, n_pred), tp / max(1, n_true)
    return {"f1": 2 * p * r / max(1e-9, p + r), "precision": p, "recall": r}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base-model", required=True)
    p.add_argument("--metacontroller", required=True)
    p.add_argument("--data", required=True, help="clean demonstrations, as given to discover")
    p.add_argument("--holdout", type=int, default=512, help="as `discover --holdout`")
    p.add_argument("--tolerances", type=int, nargs="+", default=[1, 2, 5, 10, 20])
    p.add_argument("--chance-draws", type=int, default=20)
    p.add_argument(
        "--thresholds",
        type=float,
        nargs="*",
        default=[0.7, 0.9],
        help=f"also score switches at these β thresholds (the gate's own: {SWITCH_THRESHOLD})",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(1)
    base, meta = load_frozen_models(args.base_model, args.metacontroller)
    data = Demonstrations.load(args.data)
    _, held_demo = heldout_split(data, args.holdout)
    held = cache_activations(base, held_demo, meta.layer)
    betas = gate_traces(meta, held)
    trues = [true_boundaries(held.subgoals[i, : len(b)]) for i, b in enumerate(betas)]
    lengths = [int(t) for t in held.lengths]
    rng = np.random.default_rng(args.seed)

    def switches(threshold: float) -> list[list[int]]:
        return [[j for j in range(1, len(b)) if b[j] > threshold] for b in betas]

    def scored(preds: list[list[int]]) -> list[dict]:
        rows = []
        for tol in args.tolerances:
            counts = np.sum([match_switches(pr, tr, tol) for pr, tr in zip(preds, trues)], 0)
            chance = []
            for _ in range(args.chance_draws):
                c = np.zeros(3, dtype=int)
                for pr, tr, t in zip(preds, trues, lengths):
                    k = min(len(pr), t - 1)
                    drawn = sorted(rng.choice(np.arange(1, t), size=k, replace=False).tolist())
                    c += match_switches(drawn, tr, tol)
                chance.append(f1(*c)["f1"])
            rows.append({"tolerance": tol, **f1(*counts), "chance_f1": float(np.mean(chance))})
        return rows

    preds = switches(SWITCH_THRESHOLD)
    rows = scored(preds)
    for row in rows:
        print(f"±{row['tolerance']:>2}: F1 {row['f1']:.3f} (P {row['precision']:.2f} "
              f"R {row['recall']:.2f}) | chance {row['chance_f1']:.3f}")  # fmt: skip
    # a gate that switches at every boundary and also in between may separate the two by β
    by_threshold = []
    for threshold in args.thresholds:
        found = switches(threshold)
        by_threshold.append(
            {
                "threshold": threshold,
                "segments_per_episode": float(np.mean([1 + len(x) for x in found])),
                "by_tolerance": scored(found),
            }
        )
        first = by_threshold[-1]["by_tolerance"][0]
        print(f"β > {threshold}: {by_threshold[-1]['segments_per_episode']:.2f} segments per "
              f"episode, ±{first['tolerance']} F1 {first['f1']:.3f} (P {first['precision']:.2f} "
              f"R {first['recall']:.2f}) | chance {first['chance_f1']:.3f}")  # fmt: skip
    report = {
        "base_model": args.base_model,
        "metacontroller": args.metacontroller,
        "episodes": len(lengths),
        "switches_per_episode": float(np.mean([1 + len(x) for x in preds])),
        "true_segments_per_episode": float(np.mean([1 + len(x) for x in trues])),
        "mean_episode_length": float(np.mean(lengths)),
        "by_tolerance": rows,
        "by_threshold": by_threshold,
        "command": " ".join(["python", *sys.argv]),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, report)


if __name__ == "__main__":
    main()
