"""Does a metacontroller that never switches name the whole task with its first code?

    python research/scripts/code_names_task.py --base-model runs/pinpad-paper/model \
        --metacontroller runs/discover_paper_l2/alpha_0.1/model \
        --out research/results/code_names_task_pinpad-paper_layer2_alpha0.1.json

Hypothesis (session 13): at a layer where a code steers the base model, discovery can explain
the actions with one code per episode that names the task (the non-causal sequence embedder
sees the whole episode), and the model then sequences the subgoals itself, so β never learns to
switch. Test: on fresh held-out clean episodes of the pretraining tasks, fit linear probes from
the first step's code z_1 (posterior mean) to (a) the episode's task and (b) its first subgoal,
trained on 70% of the episodes and scored on the rest, against the majority class; also a
15-nearest-neighbour classifier, since a code of one or two active dimensions can hold 16 tasks
in a layout that no linear probe separates. If z_1 names the task, (a) is far above chance.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from agents.common import atomic_write_json  # noqa: E402
from agents.discover import _probe_accuracy, cache_activations  # noqa: E402
from internal_rl_gym.envs.grid_expert import collect_grid_demonstrations  # noqa: E402
from internal_rl_gym.hub import load_base_model, load_metacontroller  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--base-model", required=True)
    p.add_argument("--metacontroller", required=True)
    p.add_argument("--episodes", type=int, default=2048)
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.manual_seed(args.seed)
    base = load_base_model(args.base_model)
    meta = load_metacontroller(args.metacontroller, base_model=base)
    data = collect_grid_demonstrations(args.episodes, "pretraining", seed=args.seed)
    held = cache_activations(base, data, layer=meta.layer)

    task_names = ["-".join(map(str, t[t >= 0])) for t in data.tasks]
    names = sorted(set(task_names))
    task = np.array([names.index(n) for n in task_names])
    first_subgoal = held.subgoals[:, 0]
    with torch.no_grad():
        z1 = np.concatenate(
            [
                meta(held.e[s : s + 256], held.mask[s : s + 256], sample=False).z[:, 0].numpy()
                for s in range(0, len(task), 256)
            ]
        )
    n_train = int(0.7 * len(task))
    train = np.arange(len(task)) < n_train
    test = ~train

    def knn(y: np.ndarray, k: int = 15) -> float:
        d = ((z1[test][:, None] - z1[train][None]) ** 2).sum(-1)
        near = y[train][np.argsort(d, 1)[:, :k]]
        votes = np.stack([np.bincount(r, minlength=y.max() + 1) for r in near])
        return float(np.mean(votes.argmax(1) == y[test]))

    def probe(y: np.ndarray) -> dict[str, float]:
        k = int(y.max()) + 1
        counts = np.bincount(y[test], minlength=k)
        return {
            "probe_accuracy": _probe_accuracy(z1, y, train, test, k),
            "knn15_accuracy": knn(y),
            "chance_majority": float(counts.max() / counts.sum()),
            "classes": k,
        }

    result = {
        "command": " ".join(sys.argv),
        "episodes": args.episodes,
        "z1_active_dims": int((z1.var(0) > 0.01).sum()),
        "task_from_z1": probe(task),
        "first_subgoal_from_z1": probe(first_subgoal),
    }
    print(result)
    atomic_write_json(args.out, result)


if __name__ == "__main__":
    main()
