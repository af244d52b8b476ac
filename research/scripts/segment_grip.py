"""Where in a segment do ground-truth controllers steer? Teacher-forced, on held-out clean episodes.

    python research/scripts/segment_grip.py \
        --base-model research/training_state/pinpad-linear-anneal108k \
        --controllers research/results/controllers_pinpad-linear-anneal108k_layer3.safetensors \
        --layer 3 --out research/results/segment_grip_pinpad-linear-anneal108k_layer3.json

Hypothesis: once the agent has moved a step or two towards a pair, the history tells the base
model where it is going, so a controller's job is mostly the first step of a segment, where the
next pair is still open (4 first pairs at t = 0, 2 allowed successors later). If the
controllers are weak exactly there, they lose the choice of pair in closed loop while the
teacher-forced NLL, averaged over all steps, looks fine. For each step class (the episode's
first step, the first step of a later segment, the second step of a segment, the rest) this
reports, with and without the controllers: the action NLL, the expert's floor (log of the
number of shortest-path actions) and the probability mass on shortest-path actions towards the
true target (the chance that a sampled action is an expert move).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from agents.common import atomic_write_json  # noqa: E402
from agents.probe import controlled_log_probs, load_subgoal_controllers  # noqa: E402
from internal_rl_gym.envs.grid_expert import (
    collect_grid_demonstrations,  # noqa: E402
    optimal_action_mask,  # noqa: E402
)
from internal_rl_gym.hub import load_base_model  # noqa: E402


def step_classes(subgoals: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    """(B, T) bool masks: episode start, later segment starts, second steps, the rest."""
    start = np.zeros_like(mask)
    start[:, 1:] = subgoals[:, 1:] != subgoals[:, :-1]
    start &= mask
    second = np.zeros_like(mask)
    second[:, 2:] = start[:, 1:-1]
    second[:, 1] |= True  # the step after the episode's first
    second &= mask
    first = np.zeros_like(mask)
    first[:, 0] = mask[:, 0]
    rest = mask & ~start & ~second & ~first
    return {"episode_start": first, "segment_start": start, "second_step": second, "rest": rest}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--base-model", required=True)
    p.add_argument("--controllers", required=True, help="controllers_layer<l>.safetensors")
    p.add_argument("--layer", type=int, required=True)
    p.add_argument("--episodes", type=int, default=512)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(1)
    base = load_base_model(args.base_model)
    ctrl = load_subgoal_controllers(args.controllers, base)
    held = collect_grid_demonstrations(args.episodes, "pretraining", seed=13)  # probe's held-out
    b = held.batch(np.arange(held.n_episodes))
    optimal = optimal_action_mask(b)
    floor = np.log(np.maximum(optimal.sum(-1), 1))
    logp = {
        "none": controlled_log_probs(base, None, 0, b).cpu().numpy(),
        "controlled": controlled_log_probs(base, ctrl, args.layer, b).cpu().numpy(),
    }
    act = b["actions"]
    result: dict = {
        "base_model": args.base_model,
        "controllers": args.controllers,
        "layer": args.layer,
        "episodes": args.episodes,
        "by_step_class": {},
    }
    for name, m in step_classes(b["subgoals"], b["mask"]).items():
        row: dict = {"steps": int(m.sum()), "nll_floor": float(floor[m].mean())}
        for key, lp in logp.items():
            nll = -np.take_along_axis(lp, act[..., None], -1)[..., 0]
            row[f"nll_{key}"] = float(nll[m].mean())
            row[f"optimal_mass_{key}"] = float((np.exp(lp) * optimal).sum(-1)[m].mean())
        result["by_step_class"][name] = row
        print(name, {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()})
    atomic_write_json(args.out, result)


if __name__ == "__main__":
    main()
