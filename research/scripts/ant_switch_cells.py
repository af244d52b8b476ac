"""Where does an ant metacontroller's gate switch, if not at the subgoal boundaries?

    python research/scripts/ant_switch_cells.py \
        --metacontroller runs/discover-ant-cat8-perstep/alpha_0.1/model \
        --out research/results/session30/switch_cells_cat8.json

The AntPinpad expert walks a grid-level shortest path cell by cell, steering for the next cell
of the path, so its behaviour changes at every cell crossing, not only where a subgoal is
reached. On held-out clean episodes (the last ``--holdout`` of ``--data``, as `discover`), this
counts the gate's switches (β > 0.5) that are not within ±1 step of a true subgoal boundary and
how many of them lie within ±``--slack`` steps of a cell crossing (the torso's in-cell coordinate,
observation slice 39:41, jumps), and how many crossings that are not subgoal boundaries have a
switch within that slack, split (all but each episode's last crossing) into those entering a cell
where the path turns (the next crossing's direction differs) and those entering one it goes
straight through.
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

IN_CELL = slice(39, 41)  # the torso's coordinate inside its cell, [-1, 1] per axis


def crossings(obs: np.ndarray) -> list[int]:
    """Steps t at which the torso is in another cell than at t - 1."""
    inside = obs[:, IN_CELL]
    return [t for t in range(1, len(obs)) if np.abs(inside[t] - inside[t - 1]).max() > 1.0]


def crossing_direction(obs: np.ndarray, t: int) -> tuple[int, bool]:
    """(axis, towards +) of the crossing at step t: the in-cell coordinate jumps from one edge
    to the other (+1 to -1 when the torso moves towards +)."""
    jump = obs[t, IN_CELL] - obs[t - 1, IN_CELL]
    axis = int(np.argmax(np.abs(jump)))
    return axis, bool(jump[axis] < 0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base-model", default="ant-transformer")
    p.add_argument("--metacontroller", required=True)
    p.add_argument("--data", default="data/antroutes1_pretraining_clean.npz")
    p.add_argument("--holdout", type=int, default=512, help="as `discover --holdout`")
    p.add_argument("--episodes", type=int, default=256, help="held-out episodes scored")
    p.add_argument("--slack", type=int, default=2)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(1)
    base, meta = load_frozen_models(args.base_model, args.metacontroller)
    data = Demonstrations.load(args.data)
    _, held = heldout_split(data, args.holdout)
    held = held.select(np.arange(min(args.episodes, held.n_episodes)))
    acts = cache_activations(base, held, meta.layer)
    c = dict.fromkeys(
        ["switches_off_boundary", "near_crossing", "crossings", "crossings_switched",
         "turns", "turns_switched", "straight", "straight_switched", "boundaries",
         "boundaries_switched"], 0,
    )  # fmt: skip
    for i, beta in enumerate(gate_traces(meta, acts, batch=64)):
        t = len(beta)
        obs = held.episode(int(i))["obs"][: t + 1]
        on = beta > SWITCH_THRESHOLD
        bounds = true_boundaries(acts.subgoals[i, :t])
        near_bound = {b + d for b in bounds for d in (-1, 0, 1)}
        cross = [x for x in crossings(obs) if x < t]
        c["boundaries"] += len(bounds)
        c["boundaries_switched"] += sum(bool(on[max(1, b - 1) : b + 2].any()) for b in bounds)
        for j in np.flatnonzero(on[1:]) + 1:
            if j in near_bound:
                continue
            c["switches_off_boundary"] += 1
            c["near_crossing"] += any(abs(j - x) <= args.slack for x in cross)
        # each crossing's direction (the in-cell axis that jumped, and its sign); the
        # path turns in the cell a crossing enters when the next crossing's differs
        heading = [crossing_direction(obs, x) for x in cross]
        for n, x in enumerate(cross):
            if x in near_bound:
                continue
            hit = bool(on[max(1, x - args.slack) : x + args.slack + 1].any())
            c["crossings"] += 1
            c["crossings_switched"] += hit
            if n + 1 < len(cross):
                kind = "turns" if heading[n] != heading[n + 1] else "straight"
                c[kind] += 1
                c[f"{kind}_switched"] += hit
    report = {
        "base_model": args.base_model,
        "metacontroller": args.metacontroller,
        "episodes": held.n_episodes,
        "slack": args.slack,
        "counts": c,
        "share_of_off_boundary_switches_near_a_crossing": c["near_crossing"]
        / max(1, c["switches_off_boundary"]),
        "share_of_crossings_switched": c["crossings_switched"] / max(1, c["crossings"]),
        "share_of_turns_switched": c["turns_switched"] / max(1, c["turns"]),
        "share_of_straight_crossings_switched": c["straight_switched"] / max(1, c["straight"]),
        "share_of_boundaries_switched": c["boundaries_switched"] / max(1, c["boundaries"]),
        "command": " ".join(["python", *sys.argv]),
    }
    for k, v in report.items():
        if k.startswith("share"):
            print(f"{k}: {v:.3f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, report)


if __name__ == "__main__":
    main()
