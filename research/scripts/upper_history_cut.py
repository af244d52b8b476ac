"""Do the blocks above the controlled layer re-derive the subgoal from the history?

    python research/scripts/upper_history_cut.py --controllers
        research/results/controllers_pinpad-transformer_layer3_paper_recipe.safetensors
        --layer 3 --out research/results/upper_history_cut_layer3.json

Hypothesis: ground-truth controllers at L/2 fail at a +1 transition (never seen in pretraining)
because the blocks above L/2 attend to the episode's history and infer the next pair from it
(+2 or -1 after the last one), overriding the subgoal written at L/2. Test: make every block
above ``--layer`` attend to the current timestep only (a -inf bias on every earlier key) and
evaluate, as ``internal-rl probe`` does (256 episodes per task, the true subgoal's controller
active at every step), (a) the base model alone in free play and (b) the controllers, with the
blocks intact and cut. If the hypothesis holds, the cut raises the +1 transition's success
(0-1-2-3) while the controlled seen transition (0-1-4-5) stays; the model alone, which needs
the history to know its task, should get worse.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from agents import diagnostics  # noqa: E402
from agents.common import atomic_write_json  # noqa: E402
from agents.probe import (  # noqa: E402
    ScaledControllers,
    evaluate_controllers,
    load_subgoal_controllers,
)
from internal_rl_gym.hub import load_base_model  # noqa: E402


class CurrentStepOnly(nn.Module):
    """Wraps a block's relative-position bias: keys at distance > 0 (earlier steps) get -inf,
    so the block's attention reads the current timestep only."""

    def __init__(self, bias: nn.Module) -> None:
        super().__init__()
        self.bias = bias

    def forward(self, distance: torch.Tensor, top: int | None = None) -> torch.Tensor:
        return self.bias(distance, top).masked_fill((distance > 0)[..., None], float("-inf"))


def cut_history_above(base, layer: int) -> None:
    for block in base.blocks[layer:]:  # blocks layer+1..L (0-based indices layer..L-1)
        block.attn.rel_bias = CurrentStepOnly(block.attn.rel_bias)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--controllers", required=True, help="controllers_layer<l>.safetensors")
    p.add_argument("--layer", type=int, required=True)
    p.add_argument(
        "--cut-from",
        type=int,
        default=None,
        help="cut the history of blocks cut_from+1..L (default: --layer, the blocks above it); "
        "lower values cut blocks below the controlled layer too",
    )
    p.add_argument("--gain", type=float, default=1.0, help="scale the controllers' push")
    p.add_argument("--base-model", default="pinpad-transformer")
    p.add_argument("--tasks", nargs="+", default=["0-1-2-3", "0-1-4-5", "post"])
    p.add_argument("--episodes", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(1)
    t0 = time.time()
    cut_from = args.layer if args.cut_from is None else args.cut_from
    result: dict = {
        "command": " ".join(sys.argv),
        "layer": args.layer,
        "cut_from": cut_from,
        "gain": args.gain,
    }
    for condition in ("intact", "upper_history_cut"):
        base = load_base_model(args.base_model)
        if condition == "upper_history_cut":
            cut_history_above(base, cut_from)
        ctrl = load_subgoal_controllers(args.controllers, base)
        if args.gain != 1.0:
            ctrl = ScaledControllers(ctrl, args.gain)
        free = diagnostics.grid_free_play(base, n_episodes=args.episodes, seed=args.seed)
        row = {
            "free_play_task_consistent": free["task_consistent"],
            "controlled_success": {
                task: evaluate_controllers(base, ctrl, args.layer, task, args.episodes, args.seed)
                for task in args.tasks
            },
        }
        print(condition, row)
        result[condition] = row
    result["seconds"] = round(time.time() - t0, 1)
    atomic_write_json(args.out, result)


if __name__ == "__main__":
    main()
