"""Are trained ground-truth controllers too weak to override the base model's transition prior?

    python research/scripts/controller_gain.py \
        --controllers research/results/controllers_pinpad-transformer_layer3.safetensors \
        --layer 3 --gains 1 1.5 2 3 4 6 --out research/results/controller_gain_layer3.json

Hypothesis: ground-truth controllers are trained on the pretraining tasks, where every
transition is +2 or -1 pairs, so the base model's own belief already puts the next subgoal on
one of two pairs and a controller only has to tip that choice. Nothing in training asks it to
push against a belief that gives the target no mass (a +1 transition, a pair due a third time).
If so, scaling the trained push, ê = e + γ U e with γ > 1, should recover the +1 transitions
without hurting the seen ones. Evaluation is the probe's (`internal-rl probe`): 256 episodes per
task, the true subgoal's controller active at every step, actions sampled from the action head
(``--greedy``: its argmax).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from agents.common import atomic_write_json  # noqa: E402
from agents.probe import (  # noqa: E402
    ScaledControllers,
    evaluate_controllers,
    load_subgoal_controllers,
)
from internal_rl_gym.hub import load_base_model  # noqa: E402

TASKS = ["0-1-2-3", "0-1-4-5", "0-1-4-5-0-1-4-5-0-1-4-5", "post"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--controllers", required=True, help="controllers_layer<l>.safetensors")
    p.add_argument("--layer", type=int, required=True)
    p.add_argument("--base-model", default="pinpad-transformer")
    p.add_argument("--gains", type=float, nargs="+", default=[1.0, 1.5, 2.0, 3.0, 4.0])
    p.add_argument("--tasks", nargs="+", default=TASKS)
    p.add_argument("--episodes", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--greedy", action="store_true", help="argmax primitive actions")
    p.add_argument(
        "--act",
        choices=["sample", "greedy", "mean"],
        default="",
        help="how primitive actions are read from the head (mean: continuous heads)",
    )
    p.add_argument("--env", default="GridPinpad-v0", help="env id the base model acts in")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(1)
    act = args.act or ("greedy" if args.greedy else "sample")
    base = load_base_model(args.base_model)
    ctrl = load_subgoal_controllers(args.controllers, base)
    t0 = time.time()
    success: dict[str, dict[str, float]] = {}
    for gain in args.gains:
        scaled = ScaledControllers(ctrl, gain)
        success[f"{gain:g}"] = {
            task: evaluate_controllers(
                base,
                scaled,
                args.layer,
                task,
                args.episodes,
                args.seed,
                act=act,
                env_id=args.env,
            )
            for task in args.tasks
        }
        print(
            f"gain {gain:g}: " + ", ".join(f"{t} {s:.3f}" for t, s in success[f"{gain:g}"].items())
        )
    atomic_write_json(
        Path(args.out),
        {
            "command": "python " + " ".join(sys.argv),
            "base_model": args.base_model,
            "controllers": args.controllers,
            "layer": args.layer,
            "episodes_per_task": args.episodes,
            "env_id": args.env,
            "primitive_actions": act,
            "success_by_gain": success,
            "seconds": round(time.time() - t0, 1),
        },
    )


if __name__ == "__main__":
    main()
