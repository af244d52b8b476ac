"""Do ground-truth controllers grip the pair choice better when training stresses segment starts?

    python research/scripts/weighted_controllers.py \
        --base-model research/training_state/pinpad-linear-anneal108k --layer 3 --start-weight 5 \
        --out research/results/weighted_controllers_pinpad-linear-anneal108k_layer3_w5.json

Hypothesis (from research/scripts/segment_grip.py): a controller's work is the first
steps of a segment, where the next pair is still open, but those are ~20% of the steps, so the
mean NLL the paper's controllers minimise is mostly about steps where the history already gives
the target away. Weighting the first two steps of every segment by ``--start-weight`` (1 = the
paper's objective; everything else as ``internal-rl probe``: rank 16, fresh clean expert
episodes, AdamW lr 3e-3, weight decay 0.03) tests whether that dilution limits the grip. Not the
paper's method: a diagnostic. Evaluation is the probe's (256 episodes per task, the true
subgoal's controller active at every step, sampled actions).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from agents.common import atomic_write_json  # noqa: E402
from agents.data_sources import fresh_activation_batches  # noqa: E402
from agents.probe import (  # noqa: E402
    controlled_nll,
    evaluate_controllers,
    train_subgoal_controllers,
)
from internal_rl_gym.envs.grid_expert import collect_grid_demonstrations  # noqa: E402
from internal_rl_gym.hub import load_base_model  # noqa: E402

TASKS = ["0-1-2-3", "0-1-4-5", "pretraining", "post"]


def start_weights(subgoals: torch.Tensor, mask: torch.Tensor, weight: float) -> torch.Tensor:
    """(B, T) loss weights: ``weight`` on the first two steps of every segment, 1 elsewhere."""
    start = torch.zeros_like(mask)
    start[:, 0] = True
    start[:, 1:] = subgoals[:, 1:] != subgoals[:, :-1]
    early = start.clone()
    early[:, 1:] |= start[:, :-1]
    return torch.where(early & mask, weight, 1.0) * mask


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--base-model", required=True)
    p.add_argument("--layer", type=int, required=True)
    p.add_argument("--start-weight", type=float, default=5.0)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--episodes", type=int, default=256, help="env episodes per task")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.time()
    base = load_base_model(args.base_model).requires_grad_(False)
    batches = fresh_activation_batches(  # as internal-rl probe draws them
        base, args.layer, "pretraining", 16 * args.batch_size, args.batch_size, args.seed + 11
    )
    ctrl, _ = train_subgoal_controllers(  # the probe's recipe, but for the loss weights
        base,
        batches,
        args.layer,
        args.steps,
        lr=3e-3,
        weight_decay=0.03,
        rank=16,
        seed=args.seed,
        step_weights=lambda b: start_weights(b["subgoals"], b["mask"], args.start_weight),
    )
    held = collect_grid_demonstrations(512, "pretraining", seed=13)  # the probe's held-out set
    result = {
        "base_model": args.base_model,
        "layer": args.layer,
        "start_weight": args.start_weight,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "heldout_nll_without_control": controlled_nll(base, None, 0, held),
        "heldout_nll_with_control": controlled_nll(base, ctrl, args.layer, held),
        "success": {
            t: evaluate_controllers(base, ctrl, args.layer, t, args.episodes, args.seed)
            for t in TASKS
        },
    }
    result["seconds"] = time.time() - t0
    print(result)
    atomic_write_json(args.out, result)


if __name__ == "__main__":
    main()
