"""Do an ant metacontroller's codes name the whole task instead of the current subgoal?

    python research/scripts/code_names_task_ant.py --metacontroller ant-metacontroller \
        --out research/results/session38/code_names_task_shipped.json

The ant's 16 pretraining tasks are three colours each, so one code per episode that names the
task (4 bits) tells the base model every subgoal in order, and needs no switch. On the held-out
clean episodes `discover` keeps, a linear probe (70% of episodes train, the rest test) reads
from the code z at the first step (or ``--at-step``) (posterior means) the episode's task, its first subgoal and
(if the code names tasks, as well as the first) its second and third; chance is the majority
class. The grid's version is ``code_names_task.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from internal_rl_agents.common import atomic_write_json
from internal_rl_agents.discover import cache_activations, heldout_split
from internal_rl_agents.discover_diagnostics import _probe_accuracy

from internal_rl_gym.data import Demonstrations
from internal_rl_gym.internal_control import load_frozen_models


def held_codes(
    base_model: str, metacontroller: str, data: str, holdout: int, step: int
) -> tuple[np.ndarray, Demonstrations]:
    """The code z held at ``step`` (posterior means) of each held-out episode `discover` keeps,
    and those episodes."""
    torch.manual_seed(0)
    base, meta = load_frozen_models(base_model, metacontroller)
    meta.eval()
    _, held_data = heldout_split(Demonstrations.load(data), holdout)
    held = cache_activations(base, held_data, meta.layer)
    z = []
    with torch.no_grad():
        for s in range(0, len(held.lengths), 64):
            e, _, mask = held.batch(np.arange(s, min(len(held.lengths), s + 64)))
            z.append(meta(e, mask, sample=False).z[:, step].numpy())
    return np.concatenate(z), held_data


def probe_report(
    z: np.ndarray, targets: dict[str, np.ndarray], key: str = "probe"
) -> dict[str, dict[str, float]]:
    """Linear-probe accuracy from z to each integer target (the first 70% of episodes train,
    the rest test) beside chance, the test split's majority class; printed as it goes."""
    n = len(z)
    train = np.arange(n) < int(0.7 * n)
    test = ~train
    report = {}
    for name, y in targets.items():
        y = np.asarray(y, dtype=np.int64)
        counts = np.bincount(y[test], minlength=int(y.max()) + 1)
        report[name] = {
            key: _probe_accuracy(z, y, train, test, int(y.max()) + 1),
            "chance": float(counts.max() / counts.sum()),
        }
        print(name, report[name])
    return report


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base-model", default="ant-transformer")
    p.add_argument("--metacontroller", required=True)
    p.add_argument("--data", default="data/antroutes1_pretraining_clean.npz")
    p.add_argument("--holdout", type=int, default=512)
    p.add_argument("--at-step", type=int, default=0, help="read the code held at this step")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    z0, held_data = held_codes(
        args.base_model, args.metacontroller, args.data, args.holdout, args.at_step
    )
    tasks = np.asarray(held_data.tasks)
    task_ids = np.unique(tasks, axis=0, return_inverse=True)[1].reshape(-1)
    targets = {"task": task_ids, **{f"subgoal_{k + 1}": tasks[:, k] for k in range(3)}}
    report = {"metacontroller": args.metacontroller, "episodes": len(z0)}
    report |= probe_report(z0, targets, key="probe_from_first_code")
    report["command"] = " ".join(["python", *sys.argv])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, report)


if __name__ == "__main__":
    main()
