"""Is the length failure of controlled episodes caused by untrained relative-position buckets?

    python research/scripts/rel_distance_clamp.py --base-model runs/eps01_snap20k \
        --controllers runs/probe_eps01_20k/controllers_layer0.safetensors --layer 0 \
        --clamps 0 20 30 --out research/results/rel_distance_clamp_layer0.json

Pretraining episodes last about 25 steps, so the attention biases of distances beyond ~40
(T5 buckets 23 and up) are barely trained, and the post task's episodes run to ~50 steps.
Evaluates saved ground-truth controllers with every attention distance clamped to at most
``c`` (0 = no clamp), on tasks that need length (six pairs of seen transitions) or +1
transitions.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from agents.common import atomic_write_json  # noqa: E402
from agents.probe import evaluate_controllers, load_subgoal_controllers  # noqa: E402
from internal_rl_gym.hub import load_base_model  # noqa: E402
from internal_rl_gym.models.layers import RelativePositionBias  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--base-model", required=True)
    p.add_argument("--controllers", required=True)
    p.add_argument("--layer", type=int, required=True)
    p.add_argument("--clamps", type=int, nargs="+", default=[0, 20, 30])
    p.add_argument("--tasks", nargs="+", default=["0-1-4-5-0-1-4-5-0-1-4-5", "0-1-2-3", "post"])
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(1)
    base = load_base_model(args.base_model)
    ctrl = load_subgoal_controllers(args.controllers, base)
    original = RelativePositionBias.buckets
    result = {"base_model": args.base_model, "controllers": args.controllers, "success": {}}
    try:
        for c in args.clamps:

            def buckets(self, distance, c=c):
                return original(self, distance.clamp(max=c) if c > 0 else distance)

            RelativePositionBias.buckets = buckets
            for t in args.tasks:
                s = evaluate_controllers(base, ctrl, args.layer, t, 256, seed=0)
                result["success"][f"clamp {c}: {t}"] = s
                print(c, t, s, flush=True)
    finally:
        RelativePositionBias.buckets = original
    atomic_write_json(args.out, result)


if __name__ == "__main__":
    main()
