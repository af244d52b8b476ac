"""Where does each code of an ant metacontroller with categorical codes steer the ant?

    python research/scripts/ant_code_steering.py --metacontroller runs/hs-ant/s1/alpha_0/model \
        --episodes 24 --out research/results/session32/steer_s1.json

Two measurements on ``InternalControl-Ant-v3`` (mean primitive action, the post task 0-1-2-3):

* ``first_colour``: holding code k at every abstract step, the first colour the ant enters (or
  how the episode ends without one: wall, left the grid, fell, time). A code that names a subgoal
  sends the ant to one colour; internal RL can only compose codes that do.
* ``composed``: the post task steered by an oracle made of the discovered codes: at every abstract
  step the code that most often entered the current target colour first (the target read from
  ``info``). The best internal RL could do with these codes and this gate, if each code's effect
  did not depend on where the ant stands.

Works for ground-truth subgoal controllers too (``--metacontroller ant-subgoal-controllers``,
where code k is subgoal k and an abstract step ends when the subgoal changes).
"""

from __future__ import annotations

import argparse
import collections
import sys

import gymnasium as gym
import numpy as np
from internal_rl_agents.common import atomic_write_json

import internal_rl_gym  # noqa: F401  (registers the envs)


def first_colour(env, code: int, seed: int) -> str:
    _, info = env.reset(seed=seed)
    while True:
        _, _, terminated, truncated, info = env.step(code)
        if len(info.get("visited_colours", [])):
            return f"colour {int(info['visited_colours'][0])}"
        if terminated or truncated:
            return info.get("termination") or "time"


def composed(env, code_for: dict[int, int], seed: int) -> tuple[bool, int]:
    _, info = env.reset(seed=seed)
    steps = 0
    while True:
        _, _, terminated, truncated, info = env.step(code_for.get(int(info["target"]), 0))
        steps += 1
        if terminated or truncated:
            return bool(info["success"]), steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--metacontroller", required=True)
    p.add_argument("--base-model", default="ant-transformer")
    p.add_argument("--episodes", type=int, default=24, help="per code, and for the composed task")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    env = gym.make(
        "InternalControl-Ant-v3",
        base_model=args.base_model,
        metacontroller=args.metacontroller,
        primitive_sampling="mean",
    )
    n_codes = env.action_space.n
    table = {}
    for k in range(n_codes):
        ends = collections.Counter(first_colour(env, k, seed) for seed in range(args.episodes))
        table[k] = dict(ends)
        print(f"code {k}: {dict(ends.most_common())}", flush=True)
    code_for = {}
    for c in range(4):
        hits = [table[k].get(f"colour {c}", 0) for k in range(n_codes)]
        if max(hits) > 0:
            code_for[c] = int(np.argmax(hits))
    results = [composed(env, code_for, 10_000 + s) for s in range(args.episodes)]
    success = float(np.mean([r[0] for r in results]))
    print(f"composed (colour -> code {code_for}): success {success:.3f}")
    report = {
        "metacontroller": args.metacontroller,
        "base_model": args.base_model,
        "episodes": args.episodes,
        "first_colour": table,
        "code_for_colour": code_for,
        "composed_success": success,
        "composed_abstract_steps": float(np.mean([r[1] for r in results])),
        "command": " ".join(["python", *sys.argv]),
    }
    atomic_write_json(args.out, report)


if __name__ == "__main__":
    main()
