"""Action NLL and switching gate β by time step: where in an episode a metacontroller helps.

    python benchmarks/metacontroller_by_step.py --metacontrollers pinpad-metacontroller DIR ... \
        [--base-model pinpad-transformer] [--episodes 256]

On held-out clean expert episodes of the pretraining tasks, for each time step t (0-based) of the
first ``--steps``: the frozen base model's own action NLL, the NLL when each metacontroller
steers it (posterior means, no sampling), and each metacontroller's mean β_t. The expert breaks
ties between shortest-path actions uniformly, so an NLL far below the expert's tie-breaking
entropy means the code z carries per-step action choices, not just the subgoal.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from internal_rl_agents.common import atomic_write_json

from internal_rl_gym.envs.grid_expert import collect_grid_demonstrations
from internal_rl_gym.hub import load_base_model, load_metacontroller


def per_step_mean(x: torch.Tensor, mask: torch.Tensor, steps: int) -> list[float]:
    m = mask[:, :steps].float()
    return [round(float(v), 3) for v in (x[:, :steps] * m).sum(0) / m.sum(0).clamp(min=1)]


@torch.no_grad()
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base-model", default="pinpad-transformer")
    p.add_argument("--metacontrollers", nargs="+", default=["pinpad-metacontroller"])
    p.add_argument("--episodes", type=int, default=256)
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--out", default="benchmarks/results/metacontroller_by_step.json")
    args = p.parse_args()
    torch.set_num_threads(1)
    base = load_base_model(args.base_model)
    data = collect_grid_demonstrations(args.episodes, "pretraining", seed=args.seed)
    b = data.batch(np.arange(args.episodes))
    obs = torch.as_tensor(b["obs"][:, :-1])
    actions, mask = torch.as_tensor(b["actions"]), torch.as_tensor(b["mask"])

    def nll_from(layer: int, e: torch.Tensor) -> torch.Tensor:
        logits = base.heads(base.run_layers(e, layer, base.n_layers))
        return -base.action_distribution(logits).log_prob(actions)

    result: dict = {"base_model": args.base_model, "episodes": args.episodes, "runs": {}}
    for name in args.metacontrollers:
        meta = load_metacontroller(name, base_model=base)
        e = base.run_layers(base.embed(obs), 0, meta.layer)
        if "base_nll_by_step" not in result:
            result["base_nll_by_step"] = per_step_mean(nll_from(meta.layer, e), mask, args.steps)
        out = meta(e, mask, sample=False)
        result["runs"][name] = {
            "nll_by_step": per_step_mean(nll_from(meta.layer, out.e_hat), mask, args.steps),
            "beta_mean_by_step": per_step_mean(out.beta, mask, args.steps),
        }
    print(result)
    atomic_write_json(args.out, result)


if __name__ == "__main__":
    main()
