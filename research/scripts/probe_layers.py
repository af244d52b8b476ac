"""The subgoal probe at every layer of a base model, alone (``internal-rl probe`` also trains
controllers and plays episodes, an hour on the ant).

    python research/scripts/probe_layers.py --model ant-transformer \
        --data data/antroutes1_pretraining_clean.npz --out research/results/session33/probe_shipped.json

The same held-out split (the last fifth of ``--data``) and probe as ``internal-rl probe``.
"""

from __future__ import annotations

import argparse

import torch
from internal_rl_agents import diagnostics
from internal_rl_agents.common import atomic_write_json

from internal_rl_gym.data import Demonstrations
from internal_rl_gym.hub import load_base_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--episodes", type=int, default=1500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    base = load_base_model(args.model).eval()
    data = Demonstrations.load(args.data)
    _, held = data.split(max(1, data.n_episodes // 5))
    acc = diagnostics.probe_accuracy_by_layer(base, held, n_episodes=args.episodes)
    print("probe accuracy by layer:", " ".join(f"{a:.3f}" for a in acc))
    atomic_write_json(args.out, {"args": vars(args), "probe_accuracy_by_layer": acc})


if __name__ == "__main__":
    main()
