"""Do controller codes name subgoals? Which colour pair the agent enters first under each code.

    python benchmarks/code_first_pairs.py --metacontroller runs/discover/alpha_0.1/model \
        --out benchmarks/results/code_first_pairs.json

For each code (every index of a categorical metacontroller or of the oracle's subgoal
controllers; ``--codes`` random draws z ~ N(0, I) of a Gaussian one), the code is held for a
whole episode on ``--episodes`` fresh layouts (task 0-1-2-3-4-5-6-7, free play off) and the first
colour pair the agent enters is counted. A code that names a subgoal sends the agent to the same
pair on every layout ("purity" near 1); chance is the share of the most common pair without
control. This is what a policy acting in code space can rely on.
"""

from __future__ import annotations

import argparse
import collections
import sys

import numpy as np
from internal_rl_agents.common import atomic_write_json

from internal_rl_gym.internal_control import make_internal_control_vec_env


def first_pairs(vec, action: np.ndarray, max_abstract_steps: int = 20) -> list[int]:
    """The first pair entered in each row's episode under a code held throughout (-1: none)."""
    vec.reset()
    n = vec.num_envs
    first: list[int | None] = [None] * n
    done = np.zeros(n, dtype=bool)
    for _ in range(max_abstract_steps):
        _, _, dones, infos = vec.step(np.stack([action] * n))
        for i, info in enumerate(infos):
            if not done[i] and first[i] is None and info["visited_colours"]:
                first[i] = info["visited_colours"][0] // 2
            done[i] |= dones[i]
        if done.all():
            break
    return [-1 if f is None else int(f) for f in first]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base-model", default="pinpad-transformer")
    p.add_argument("--metacontroller", required=True)
    p.add_argument("--episodes", type=int, default=64, help="layouts per code")
    p.add_argument("--codes", type=int, default=8, help="Gaussian codes: how many to draw")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="")
    args = p.parse_args()
    vec = make_internal_control_vec_env(
        args.episodes,
        base_model=args.base_model,
        metacontroller=args.metacontroller,
        task="0-1-2-3-4-5-6-7",
        seed=args.seed,
        monitor=False,
        max_primitive_steps=100,
    )
    core = vec.core
    if core.index_actions:
        codes = [np.array(k) for k in range(core.n_actions)]
    else:
        rng = np.random.default_rng(args.seed)
        scale = core.options.action_scale
        codes = [
            rng.standard_normal(core.n_z).astype(np.float32) / scale for _ in range(args.codes)
        ]
    rows = []
    for k, code in enumerate(codes):
        counts = collections.Counter(first_pairs(vec, code))
        entered = {p: c for p, c in counts.items() if p >= 0}
        purity = max(entered.values()) / args.episodes if entered else 0.0
        rows.append({"code": k, "first_pair_counts": dict(sorted(counts.items())),
                     "purity": purity})  # fmt: skip
        print(f"code {k}: first pair entered {dict(sorted(counts.items()))} purity {purity:.2f}")
    report = {
        "command": "python benchmarks/code_first_pairs.py " + " ".join(sys.argv[1:]),
        "metacontroller": args.metacontroller,
        "episodes_per_code": args.episodes,
        "codes": rows,
        "mean_purity": float(np.mean([r["purity"] for r in rows])),
        "distinct_top_pairs": len(
            {max(r["first_pair_counts"], key=r["first_pair_counts"].get) for r in rows}
        ),  # fmt: skip
    }
    print(
        f"mean purity {report['mean_purity']:.2f}; distinct top pairs {report['distinct_top_pairs']}"
    )
    if args.out:
        atomic_write_json(args.out, report)


if __name__ == "__main__":
    main()
