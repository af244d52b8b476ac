"""Do segment end states cluster by subgoal without learning? k-means of the residual stream.

    python research/scripts/end_state_kmeans.py > research/results/session23/end_state_kmeans.txt
    python research/scripts/end_state_kmeans.py --base-model ant-transformer \
        --data data/antroutes1_pretraining_clean.npz --episodes 1000 \
        > research/results/session33/end_state_kmeans_ant.txt

On 1,500 clean expert episodes of the pretraining tasks (or the first ``--episodes`` of
``--data``), takes the base model's stream at every layer at each true segment's end state (the
observation after its last action), runs k-means (K = 4 and 8, 10 restarts; raw and
standardised features) and prints the purity of the clusters against the true subgoal (chance
about 0.25).
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from agents.data_sources import observations_to_device  # noqa: E402
from internal_rl_gym.data import Demonstrations  # noqa: E402
from internal_rl_gym.envs.grid_expert import collect_grid_demonstrations  # noqa: E402
from internal_rl_gym.hub import load_base_model  # noqa: E402


def kmeans(x: torch.Tensor, k: int, iters: int = 100, restarts: int = 10) -> np.ndarray:
    g = torch.Generator().manual_seed(0)
    best = None
    for _ in range(restarts):
        c = x[torch.randperm(len(x), generator=g)[:k]].clone()
        for _ in range(iters):
            a = torch.cdist(x, c).argmin(1)
            for j in range(k):
                if (a == j).any():
                    c[j] = x[a == j].mean(0)
        inertia = (x - c[a]).pow(2).sum()
        if best is None or inertia < best[0]:
            best = (inertia, a)
    return best[1].numpy()


def purity(a: np.ndarray, y: np.ndarray, k: int) -> float:
    table = np.zeros((k, y.max() + 1), int)
    np.add.at(table, (a, y), 1)
    return table.max(1).sum() / len(y)


p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("--base-model", default="pinpad-transformer")
p.add_argument("--data", default="", help="clean demonstrations (.npz); default: 1,500 grid ones")
p.add_argument("--episodes", type=int, default=1500)
p.add_argument(
    "--pool",
    default="end",
    choices=["end", "mean", "diff"],
    help="end: the end state's stream; mean: the stream averaged over the segment's steps; "
    "diff: the end state's minus the step before's",
)
args = p.parse_args()
torch.manual_seed(0)
torch.set_num_threads(1)
base = load_base_model(args.base_model).eval()
if args.data:
    data = Demonstrations.load(args.data)
    data = data.episode_range(0, min(args.episodes, data.n_episodes))
else:
    data = collect_grid_demonstrations(args.episodes, "pretraining", seed=1)
b = data.batch(np.arange(data.n_episodes))
obs = observations_to_device(b["obs"], base.obs_dim, base.device)
sub, lengths = b["subgoals"], b["mask"].sum(1).astype(int)
ends, labels, starts = [], [], []
for i in range(sub.shape[0]):
    s = sub[i, : lengths[i]]
    start = 0
    for t in range(1, lengths[i] + 1):
        if t == lengths[i] or s[t] != s[t - 1]:
            ends.append((i, t))
            labels.append(s[t - 1])
            starts.append(start)
            start = t
ends, labels, starts = np.array(ends), np.array(labels), np.array(starts)
print("segments", len(labels), "per subgoal", np.bincount(labels).tolist())
with torch.no_grad():
    h = base.embed(obs)
    for layer in range(base.n_layers + 1):
        if layer > 0:
            h = base.run_layers(h, layer - 1, layer)
        if args.pool == "end":
            x = h[ends[:, 0], ends[:, 1]].float()
        elif args.pool == "diff":
            x = (h[ends[:, 0], ends[:, 1]] - h[ends[:, 0], ends[:, 1] - 1]).float()
        else:
            x = torch.stack([h[i, a:t].float().mean(0) for (i, t), a in zip(ends, starts)])
        xs = (x - x.mean(0)) / (x.std(0) + 1e-6)
        for k in (4, 8):
            for name, feat in (("raw", x), ("standardised", xs)):
                print(
                    f"layer {layer} K={k} {name}: purity {purity(kmeans(feat, k), labels, k):.3f}"
                )
