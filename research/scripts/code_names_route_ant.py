"""Does an ant metacontroller's per-episode code carry the episode's route instead of its task?

    python research/scripts/code_names_route_ant.py --metacontroller runs/s39/scratch-r0/alpha_0.1/model \
        --at-step 20 --out research/results/session39/code_names_route_scratch_r0.json

Session 39's full-rank metacontrollers hold one code per episode that names neither the task nor
a subgoal, yet explains the clean actions better than the true subgoals. On the held-out clean
episodes `discover` keeps, a linear probe (70% of episodes train, the rest test) reads from the
code held at ``--at-step`` properties of the episode that the layout and the start fix: the start
cell, the initial heading (yaw quadrant), the direction of the first cell crossing, and terciles
of the episode's length and of its number of turns (crossings whose direction differs from the
previous one). Chance is the majority class.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from internal_rl_agents.common import atomic_write_json

sys.path.insert(0, str(Path(__file__).parent))
from ant_switch_cells import crossing_direction, crossings  # noqa: E402
from code_names_task_ant import held_codes, probe_report  # noqa: E402

XY, QUAT = slice(27, 29), slice(1, 5)  # torso xy / (L/2); symlog of the orientation quaternion


def tercile(x: np.ndarray) -> np.ndarray:
    return np.digitize(x, np.quantile(x, [1 / 3, 2 / 3]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base-model", default="ant-transformer")
    p.add_argument("--metacontroller", required=True)
    p.add_argument("--data", default="data/antroutes1_pretraining_clean.npz")
    p.add_argument("--holdout", type=int, default=512)
    p.add_argument("--at-step", type=int, default=20, help="read the code held at this step")
    p.add_argument("--grid-size", type=int, default=4, help="cells per side of the grid")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    z, held_data = held_codes(
        args.base_model, args.metacontroller, args.data, args.holdout, args.at_step
    )
    feats = {k: [] for k in ("start_cell", "yaw_quadrant", "first_crossing", "length", "turns")}
    for i in range(held_data.n_episodes):
        obs = held_data.episode(i)["obs"]
        cell = np.clip(((obs[0, XY] + 1) / 2 * args.grid_size).astype(int), 0, args.grid_size - 1)
        feats["start_cell"].append(int(cell[0] * args.grid_size + cell[1]))
        w, x, y, zq = np.sign(obs[0, QUAT]) * np.expm1(np.abs(obs[0, QUAT]))  # undo symlog
        yaw = np.arctan2(2 * (w * zq + x * y), 1 - 2 * (y * y + zq * zq))
        feats["yaw_quadrant"].append(int(((yaw + np.pi) // (np.pi / 2)) % 4))
        cross = crossings(obs)
        dirs = [crossing_direction(obs, t) for t in cross]
        feats["first_crossing"].append(2 * dirs[0][0] + int(dirs[0][1]) if dirs else 4)
        feats["length"].append(len(obs) - 1)
        feats["turns"].append(sum(a != b for a, b in zip(dirs, dirs[1:])))
    feats["length"] = tercile(np.asarray(feats["length"], float))
    feats["turns"] = tercile(np.asarray(feats["turns"], float))
    targets = {
        k: np.unique(np.asarray(v), return_inverse=True)[1].reshape(-1) for k, v in feats.items()
    }
    report = {"metacontroller": args.metacontroller, "at_step": args.at_step, "episodes": len(z)}
    report |= probe_report(z, targets)
    report["command"] = " ".join(["python", *sys.argv])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, report)


if __name__ == "__main__":
    main()
