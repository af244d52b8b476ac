"""Hindsight codes from the true subgoal segments: is the gate or the objective what keeps
the ant's codes from naming subgoals? (A diagnostic: it reads the labels.)

    python research/scripts/hindsight_true_segments.py -- --base-model ant-transformer \
        --data data/antroutes1_pretraining_clean.npz --posterior hindsight \
        --segments-from ant-metacontroller --code categorical --n-z 8 --alpha 0 --lr 3e-3 \
        --steps 1500 --eval-every 500 --batch-size 32 --rank 16 --layer 3 --threads 1 \
        --out runs/hs-ant/true

Runs ``internal-rl discover`` with everything after ``--`` as its arguments, except that each
episode's segments are where its ground-truth subgoal changes (``Demonstrations.subgoals``)
instead of where ``--segments-from``'s gate opens (that metacontroller is still loaded, and
ignored). If the codes name the subgoal here and not with the learned gate, the gate's
precision is what is missing; if they do not here either, the action-NLL objective gives the
subgoal too little weight on this base model.
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from internal_rl_agents import cli
from internal_rl_agents import discover as discover_module

from internal_rl_gym.data import Demonstrations

_original = discover_module.add_hindsight


def true_segment_starts(subgoals: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, T) bool: where each episode's ground-truth subgoal changes (and its first step)."""
    starts = torch.zeros_like(mask, dtype=torch.bool)
    starts[:, 0] = True
    starts[:, 1:] = subgoals[:, 1:] != subgoals[:, :-1]
    return starts & mask.bool()


def add_true_hindsight(cache, base, data: Demonstrations, segmenter, hindsight_layer, chunk=256):
    cache = _original(cache, base, data, segmenter, hindsight_layer, chunk)
    starts = torch.zeros_like(cache.switches)
    for i in range(data.n_episodes):
        sub = torch.as_tensor(np.asarray(data.episode(i)["subgoals"]))[None]
        starts[i, : sub.shape[1]] = true_segment_starts(sub, torch.ones_like(sub))[0]
    cache.switches = starts
    return cache


def main() -> None:
    args = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else sys.argv[1:]
    if "--data" not in args:
        raise SystemExit("pass a dataset file (--data): online data has no cache to relabel")
    discover_module.add_hindsight = add_true_hindsight
    raise SystemExit(cli.main(["discover", *args]))


if __name__ == "__main__":
    main()
