"""When in an episode does an ant metacontroller's gate switch, and how far from a boundary?

    python research/scripts/ant_switch_times.py --metacontroller runs/s39/scratch-r0/alpha_0.1/model \
        --out research/results/session39/switch_times_scratch_r0.json

On held-out clean episodes (the last ``--holdout`` of ``--data``, as `discover`), every switch
after the first step (β > 0.5): the step it happens at and its signed distance to the nearest
true subgoal boundary (negative: before it). A gate that re-chooses its first code after a few
steps and then holds it switches early and far before every boundary.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from internal_rl_agents.common import atomic_write_json
from internal_rl_agents.discover import cache_activations, heldout_split
from internal_rl_agents.discover_diagnostics import SWITCH_THRESHOLD, gate_traces, true_boundaries

from internal_rl_gym.data import Demonstrations
from internal_rl_gym.internal_control import load_frozen_models


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base-model", default="ant-transformer")
    p.add_argument("--metacontroller", required=True)
    p.add_argument("--data", default="data/antroutes1_pretraining_clean.npz")
    p.add_argument("--holdout", type=int, default=512, help="as `discover --holdout`")
    p.add_argument("--episodes", type=int, default=256, help="held-out episodes scored")
    p.add_argument(
        "--hard-gate",
        action="store_true",
        help="binarise β in the forward pass, as hard_gate_discover.py trained it",
    )
    p.add_argument("--out", required=True)
    args = p.parse_args()
    if args.hard_gate:
        sys.path.insert(0, str(Path(__file__).parent))
        from hard_gate_discover import hard_integrate

        from internal_rl_gym.models.metacontroller import Metacontroller

        Metacontroller._integrate = hard_integrate
    torch.set_num_threads(1)
    base, meta = load_frozen_models(args.base_model, args.metacontroller)
    _, held = heldout_split(Demonstrations.load(args.data), args.holdout)
    held = held.select(np.arange(min(args.episodes, held.n_episodes)))
    acts = cache_activations(base, held, meta.layer)
    steps, offsets, lengths = [], [], []
    for i, beta in enumerate(gate_traces(meta, acts, batch=64)):
        lengths.append(len(beta))
        bounds = true_boundaries(acts.subgoals[i, : len(beta)])
        for j in np.flatnonzero(beta[1:] > SWITCH_THRESHOLD) + 1:
            steps.append(int(j))
            if len(bounds):
                offsets.append(int(min((j - b for b in bounds), key=abs)))
    q = [0, 10, 25, 50, 75, 90, 100]
    report = {
        "base_model": args.base_model,
        "metacontroller": args.metacontroller,
        "hard_gate": args.hard_gate,
        "episodes": held.n_episodes,
        "mean_episode_length": float(np.mean(lengths)),
        "switches_after_step_1_per_episode": len(steps) / held.n_episodes,
        "switch_step_percentiles": dict(zip(map(str, q), np.percentile(steps, q).tolist()))
        if steps
        else None,
        "offset_to_nearest_boundary_percentiles": dict(
            zip(map(str, q), np.percentile(offsets, q).tolist())
        )
        if offsets
        else None,
        "share_within_1_step_of_a_boundary": float(np.mean(np.abs(offsets) <= 1))
        if offsets
        else None,
        "command": " ".join(["python", *sys.argv]),
    }
    for k, v in report.items():
        print(f"{k}: {v}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, report)


if __name__ == "__main__":
    main()
