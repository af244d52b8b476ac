"""How much is the right subgoal worth to the action likelihood, and where in a segment?

    python research/scripts/subgoal_nll_by_step.py --base-model ant-transformer \
        --controllers ant-subgoal-controllers --data data/antroutes1_pretraining_clean.npz \
        --out research/results/session32/subgoal_nll_by_step.json

Teacher-forced on the held-out clean episodes (the last fifth of ``--data``, as ``internal-rl
probe`` splits it), the action NLL per step with the ground-truth controller of each step's true
subgoal, with the controller of a wrong subgoal (each other subgoal in turn, averaged), and with
no controller, by steps since the segment began. The gap between wrong and right is what a code
that names the subgoal can earn in discovery's objective; if it sits in the first steps of
each segment, the objective pays little for naming subgoals.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch
from internal_rl_agents.common import atomic_write_json
from internal_rl_agents.probe import _controlled_forward, action_log_prob

from internal_rl_gym.data import Demonstrations
from internal_rl_gym.hub import load_base_model, load_subgoal_controllers

BINS = [(0, 5), (5, 10), (10, 20), (20, 40), (40, 10_000)]


@torch.no_grad()
def step_log_probs(base, ctrl, layer, b, subgoals) -> np.ndarray:
    """(B, T) teacher-forced log p(a_t), steered by the controller of ``subgoals`` (probe's pass)."""
    out = _controlled_forward(base, ctrl, layer, {**b, "subgoals": subgoals})
    return action_log_prob(base, out, torch.as_tensor(b["actions"])).numpy()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base-model", default="ant-transformer")
    p.add_argument("--controllers", default="ant-subgoal-controllers")
    p.add_argument("--data", required=True)
    p.add_argument("--episodes", type=int, default=256)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(1)
    base = load_base_model(args.base_model).eval()
    ctrl = load_subgoal_controllers(args.controllers, base_model=base)
    layer = ctrl.layer
    data = Demonstrations.load(args.data)
    _, held = data.split(max(1, data.n_episodes // 5))
    b = held.batch(np.arange(min(args.episodes, held.n_episodes)))
    mask = b["mask"].astype(bool)
    sub = b["subgoals"]
    n_sub = int(sub.max()) + 1
    since = np.zeros_like(sub)
    for t in range(1, sub.shape[1]):
        since[:, t] = np.where(sub[:, t] == sub[:, t - 1], since[:, t - 1] + 1, 0)
    right = step_log_probs(base, ctrl, layer, b, sub)
    none = step_log_probs(base, None, layer, b, sub)
    wrong = np.mean(
        [step_log_probs(base, ctrl, layer, b, (sub + k) % n_sub) for k in range(1, n_sub)], axis=0
    )
    rows = []
    for lo, hi in [(0, 10_000), *BINS]:
        m = mask & (since >= lo) & (since < hi)
        rows.append(
            {
                "steps_since_segment_start": f"{lo}-{hi - 1}" if hi < 10_000 else f"{lo}+",
                "fraction_of_steps": float(m.sum() / mask.sum()),
                "nll_right_subgoal": float(-right[m].mean()),
                "nll_wrong_subgoal": float(-wrong[m].mean()),
                "nll_no_controller": float(-none[m].mean()),
                "gap_wrong_minus_right": float((right[m] - wrong[m]).mean()),
                "share_of_total_gap": float(
                    (right[m] - wrong[m]).sum() / (right - wrong)[mask].sum()
                ),
            }
        )
        r = rows[-1]
        print(
            f"{r['steps_since_segment_start']:>7}: {r['fraction_of_steps']:.2f} of steps, NLL right "
            f"{r['nll_right_subgoal']:.3f} wrong {r['nll_wrong_subgoal']:.3f} none "
            f"{r['nll_no_controller']:.3f}; gap {r['gap_wrong_minus_right']:.3f} nats/step, "
            f"{r['share_of_total_gap']:.2f} of the total gap"
        )
    report = {
        "base_model": args.base_model,
        "controllers": args.controllers,
        "layer": layer,
        "episodes": int(mask.shape[0]),
        "rows": rows,
        "command": " ".join(["python", *sys.argv]),
    }
    atomic_write_json(args.out, report)


if __name__ == "__main__":
    main()
