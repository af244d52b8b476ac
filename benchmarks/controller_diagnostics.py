"""Why do ground-truth controllers fail on the post task? Diagnostics for one base model.

    python benchmarks/controller_diagnostics.py --base-model runs/pinpad-ego/model \
        --controllers runs/probe/controllers_layer3.safetensors --layer 3

For controllers saved by ``internal-rl probe``, measures in one run:
  * the floor of the teacher-forced action NLL: the clean expert's own entropy (it picks
    uniformly among shortest-path actions), on held-out episodes;
  * their success on tasks that split the post task's difficulties (``DIAGNOSTIC_TASKS``: one
    pair, one seen or unseen transition, six pairs of seen transitions) and on the post task;
  * the memorisation check behind training on fresh episodes: controllers trained on a *fixed*
    set of 512 episodes, with their training NLL and held-out NLL against no control.
Writes a JSON (default ``benchmarks/results/controller_diagnostics.json``).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from internal_rl_agents.common import atomic_write_json
from internal_rl_agents.data_sources import EpisodePool, residual_stream_batches
from internal_rl_agents.probe import (
    DIAGNOSTIC_TASKS,
    controlled_nll,
    evaluate_controllers,
    load_subgoal_controllers,
    train_subgoal_controllers,
)

from internal_rl_gym.envs.grid_expert import (
    collect_grid_demonstrations,
    optimal_action_mask,
)
from internal_rl_gym.hub import load_base_model


def expert_nll_floor(data) -> float:
    """Mean log(number of shortest-path actions): the NLL of the expert's own policy."""
    b = data.batch(np.arange(data.n_episodes))
    k = optimal_action_mask(b).sum(-1)
    return float(np.log(np.maximum(k, 1))[b["mask"]].mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--base-model", required=True)
    p.add_argument("--controllers", required=True, help="controllers_layer<l>.safetensors")
    p.add_argument("--layer", type=int, required=True)
    p.add_argument("--episodes", type=int, default=256, help="env episodes per task")
    p.add_argument("--out", default="benchmarks/results/controller_diagnostics.json")
    args = p.parse_args()
    torch.set_num_threads(1)
    base = load_base_model(args.base_model)
    ctrl = load_subgoal_controllers(args.controllers, base)
    held = collect_grid_demonstrations(512, "pretraining", seed=13)  # probe's held-out set
    result: dict = {
        "base_model": args.base_model,
        "controllers": args.controllers,
        "layer": args.layer,
        "heldout_nll_floor": expert_nll_floor(held),
        "heldout_nll_without_control": controlled_nll(base, None, 0, held),
        "heldout_nll_with_control": controlled_nll(base, ctrl, args.layer, held),
    }
    tasks = [*DIAGNOSTIC_TASKS, "pretraining", "post"]
    result["success_by_task"] = {
        t: evaluate_controllers(base, ctrl, args.layer, t, args.episodes, seed=0) for t in tasks
    }
    print(result)
    fixed = collect_grid_demonstrations(512, "pretraining", seed=11)
    batches = residual_stream_batches(
        base, args.layer, iter(EpisodePool(fixed, 64, seed=0).next_batch, None)
    )
    memorised, train_nll = train_subgoal_controllers(
        base, batches, args.layer, 200, 3e-3, 0.03, ctrl.rank, seed=0
    )
    result["fixed_set_check"] = {
        "train_episodes": 512,
        "steps": 200,
        "train_nll": train_nll,
        "heldout_nll": controlled_nll(base, memorised, args.layer, held),
    }
    print(result["fixed_set_check"])
    atomic_write_json(args.out, result)


if __name__ == "__main__":
    main()
