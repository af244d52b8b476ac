"""Is the task solvable in the metacontroller's code space at all? Best-of-K code search.

    python benchmarks/code_search.py --task 0-1-2-3 --episodes 32 --candidates 16 \
        --out benchmarks/results/code_search_0-1-2-3.json

Internal RL can only learn what some sequence of controller codes achieves. This search plays
each episode (a fixed seed: layout and primitive-action sampling) abstract step by abstract
step: at each one it tries ``--candidates`` codes z ~ N(0, I) from the same state (replaying the
codes chosen so far on identically seeded rows of the batched engine) and keeps the code that
got furthest through the task without a wrong colour. Its success rate is a lower bound on what
the best code sequence reaches, and an upper bound on what random codes reach (reported beside
it: the first candidate every time). All candidates of one episode share its seed, so the
primitive actions are sampled with the same random numbers: what differs between them is the
code alone.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from internal_rl_agents.common import atomic_write_json, progress_bar

from internal_rl_gym.internal_control import (
    ControlOptions,
    InternalControlCore,
    load_frozen_models,
    make_task_env,
)


def score(res) -> float:
    """Progress through the task; a wrong colour or the time limit is worst, success best."""
    if res.info["success"]:
        return float("inf")
    if res.terminated or res.truncated:
        return -1.0
    return float(res.info["progress"])


def search(core: InternalControlCore, seed: int, codes: np.ndarray, max_abstract: int) -> dict:
    """Best-of-K search over ``codes`` (K, depth, n_z) for one episode; row k tries codes[k]."""
    k = codes.shape[0]
    rows = list(range(k))
    chosen: list[np.ndarray] = []
    progress, replay_mismatches = 0, 0
    for depth in range(max_abstract):
        core.reset_rows(rows, seeds=[seed] * k)
        for a in chosen:  # identical rows replay the codes chosen so far
            out = core.step_rows({i: a for i in rows})
        if chosen:
            replay_mismatches += sum(int(out[i].info["progress"]) != progress for i in rows)
        out = core.step_rows({i: codes[i, depth] for i in rows})
        scores = [score(out[i]) for i in rows]
        best = int(np.argmax(scores))
        if scores[best] == float("inf"):
            return {"success": True, "abstract_steps": depth + 1, "mismatches": replay_mismatches}
        if scores[best] < 0:
            break  # every candidate ends the episode without success
        chosen.append(codes[best, depth])
        progress = int(out[best].info["progress"])
    return {"success": False, "progress": progress, "mismatches": replay_mismatches}


def first_candidate(core: InternalControlCore, seed: int, codes: np.ndarray, max_abstract: int):
    """Random codes (the first candidate at every abstract step), for reference."""
    core.reset_rows([0], seeds=[seed])
    for depth in range(max_abstract):
        res = core.step_rows({0: codes[0, depth]})[0]
        if res.terminated or res.truncated:
            return bool(res.info["success"])
    return False


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--base-model", default="pinpad-transformer")
    p.add_argument("--metacontroller", default="pinpad-metacontroller")
    p.add_argument("--task", default="0-1-2-3")
    p.add_argument("--episodes", type=int, default=32)
    p.add_argument("--candidates", type=int, default=16)
    p.add_argument("--max-abstract-steps", type=int, default=24)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--controller-gain", type=float, default=1.0, help="ê = e + gain * U(z) e")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    base, meta = load_frozen_models(args.base_model, args.metacontroller)
    envs = [make_task_env("GridPinpad-v0", args.task, None) for _ in range(args.candidates)]
    core = InternalControlCore(
        envs, base, meta, ControlOptions(controller_gain=args.controller_gain)
    )
    rng = np.random.default_rng(args.seed)
    t0, results, random_success = time.time(), [], []
    for e in progress_bar(range(args.episodes), desc=f"code search on {args.task}"):
        z = rng.standard_normal((args.candidates, args.max_abstract_steps, core.n_z))
        codes = np.clip(z / core.options.action_scale, -1.0, 1.0)
        results.append(search(core, args.seed + e, codes, args.max_abstract_steps))
        random_success.append(first_candidate(core, args.seed + e, codes, args.max_abstract_steps))
    result = {
        "base_model": args.base_model,
        "metacontroller": args.metacontroller,
        "task": args.task,
        "episodes": args.episodes,
        "candidates": args.candidates,
        "controller_gain": args.controller_gain,
        "best_of_k_success": float(np.mean([r["success"] for r in results])),
        "random_codes_success": float(np.mean(random_success)),
        "failed_search_progress": [r["progress"] for r in results if not r["success"]],
        "replay_mismatches": int(sum(r["mismatches"] for r in results)),
        "seconds": round(time.time() - t0),
        "command": "python " + " ".join(sys.argv),
    }
    print(result)
    atomic_write_json(args.out, result)


if __name__ == "__main__":
    main()
