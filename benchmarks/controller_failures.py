"""Where do episodes steered by ground-truth controllers fail? One JSON per base model.

    python benchmarks/controller_failures.py --base-model runs/pinpad-ego/model \
        --controllers runs/probe/controllers_layer3.safetensors --layer 3 \
        --tasks post 0-1-4-5-0-1-4-5-0-1-4-5 --out benchmarks/results/controller_failures.json

For controllers saved by ``internal-rl probe``, runs ``--episodes`` episodes per task with the
controller of the env's current true subgoal active at every step (as the probe's evaluation
does) and counts how each episode ended: success, a wrong colour (with the task progress at
that moment and the colour entered) or the time limit. This tells a length failure (episodes
break after the pretraining tasks' three pairs) from a transition failure (they break where the
task needs an unseen +1 transition). ``--gain`` scales the controllers' push (ê = e + γ U e;
see research/scripts/controller_gain.py).
"""

from __future__ import annotations

import argparse
import collections
import sys

import gymnasium as gym
import numpy as np
import torch
from internal_rl_agents.common import atomic_write_json
from internal_rl_agents.probe import ScaledControllers, load_subgoal_controllers
from internal_rl_agents.rollout import rollout

from internal_rl_gym.hub import load_base_model


class LastStep(gym.Wrapper):
    """Keeps the last step's info and termination flag."""

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.last_info, self.terminated = info, terminated
        return obs, reward, terminated, truncated, info


def failures(
    base, ctrl, layer: int, task: str, episodes: int, seed: int, gain: float = 1.0
) -> dict:
    envs = [LastStep(gym.make("GridPinpad-v0", task=task)) for _ in range(episodes)]
    scaled = ScaledControllers(ctrl, gain)

    def control(infos):
        g = torch.as_tensor([max(0, i["subgoal"]) for i in infos], device=base.device)
        return (lambda e: scaled(e, g)), layer

    gen = torch.Generator().manual_seed(seed)
    ro = rollout(base, envs, [seed + i for i in range(episodes)], gen, control=control)
    ends: collections.Counter = collections.Counter()
    wrong: collections.Counter = collections.Counter()
    for env in envs:
        info = env.last_info
        if info["success"]:
            ends["success"] += 1
        elif env.terminated:
            ends[f"wrong colour at progress {info['progress']}"] += 1
            wrong[f"progress {info['progress']}, entered colour {info['visited']}"] += 1
        else:
            ends[f"time limit at progress {info['progress']}"] += 1
    return {
        "success": float(ro.success.mean()),
        "ends": dict(sorted(ends.items(), key=lambda kv: -kv[1])),
        "wrong_colours_top": dict(wrong.most_common(8)),
        "mean_episode_steps": float(np.mean([len(a) for a in ro.actions])),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--base-model", required=True)
    p.add_argument("--controllers", required=True, help="controllers_layer<l>.safetensors")
    p.add_argument("--layer", type=int, required=True)
    p.add_argument("--tasks", nargs="+", default=["post", "0-1-4-5-0-1-4-5-0-1-4-5"])
    p.add_argument("--episodes", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--gain", type=float, default=1.0, help="scale the controllers' push: e + gain * U e"
    )
    p.add_argument("--out", default="benchmarks/results/controller_failures.json")
    args = p.parse_args()
    torch.set_num_threads(1)
    base = load_base_model(args.base_model)
    ctrl = load_subgoal_controllers(args.controllers, base)
    result = {
        "command": "python " + " ".join(sys.argv),
        "base_model": args.base_model,
        "controllers": args.controllers,
        "layer": args.layer,
        "gain": args.gain,
        "episodes": args.episodes,
        "tasks": {
            t: failures(base, ctrl, args.layer, t, args.episodes, args.seed, args.gain)
            for t in args.tasks
        },
    }
    for t, r in result["tasks"].items():
        print(t, r)
    atomic_write_json(args.out, result)


if __name__ == "__main__":
    main()
