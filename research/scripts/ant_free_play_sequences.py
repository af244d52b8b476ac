"""Which colour sequences does an ant base model visit in free play, and where does it leave
the pretraining tasks?

Free play as `internal-rl diagnose` runs it (the pretraining tasks, episodes end when the colours
visited stop being a prefix of one), then each episode's visited colours are classified: every
transition c -> c' is "+2" or "-1" (the two the pretraining tasks use), "same" (the ant left the
colour's cell and re-entered it) or "+1" (the held-out transition).

    python research/scripts/ant_free_play_sequences.py --model runs/ant-routes-mog4/model
"""

from __future__ import annotations

import argparse
import collections
import json

import gymnasium as gym
import torch
from internal_rl_agents.common import atomic_write_json, env_of
from internal_rl_agents.diagnostics import ANT_PRETRAINING_TASKS, _AnyTaskJudge
from internal_rl_agents.rollout import rollout

import internal_rl_gym  # noqa: F401
from internal_rl_gym.hub import load_base_model

NAMES = {0: "same", 1: "+1", 2: "+2", 3: "-1"}


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", required=True)
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--greedy", action="store_true")
    p.add_argument("--out", default="")
    args = p.parse_args()
    torch.set_num_threads(1)
    model = load_base_model(args.model).eval()
    env_id = env_of(model, "ant_free_play_sequences", "--model")
    envs = [
        _AnyTaskJudge(
            gym.make(env_id, task="pretraining", terminate_on_wrong_colour=False),
            ANT_PRETRAINING_TASKS,
        )
        for _ in range(args.episodes)
    ]
    gen = torch.Generator().manual_seed(args.seed)
    seeds = [args.seed + i for i in range(args.episodes)]
    out = rollout(model, envs, seeds, gen, act="greedy" if args.greedy else "sample")
    transitions: collections.Counter = collections.Counter()
    first_bad: collections.Counter = collections.Counter()
    for env in envs:
        seq = env.visited
        bad = None
        for a, b in zip(seq, seq[1:]):
            kind = NAMES[(b - a) % 4]
            transitions[kind] += 1
            if bad is None and kind in ("same", "+1"):
                bad = kind
        if bad:
            first_bad[bad] += 1
    n_visits = collections.Counter(len(env.visited) for env in envs)
    report = {
        "model": args.model,
        "env_id": env_id,
        "greedy": args.greedy,
        "episodes": args.episodes,
        "task_done": float(out.success.mean()),
        "endings": dict(collections.Counter(env.ending for env in envs)),
        "colours_visited": {str(k): v for k, v in sorted(n_visits.items())},
        "transitions": dict(transitions),
        "episodes_leaving_the_tasks_by": dict(first_bad),
        "mean_length": float(out.lengths.mean()),
    }
    print(json.dumps(report, indent=1))
    if args.out:
        atomic_write_json(args.out, report)


if __name__ == "__main__":
    main()
