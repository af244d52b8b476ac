"""Usage: python research/scripts/slow_features.py 1

Is the subgoal belief among the slow features of the layer-1 residual stream? (label-free SFA)"""

import sys
from pathlib import Path  # noqa: E402

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from code_content import probe  # noqa: E402

from internal_rl_gym.envs.grid_expert import collect_grid_demonstrations  # noqa: E402
from internal_rl_gym.hub import load_base_model, load_subgoal_controllers  # noqa: E402

torch.manual_seed(0)
layer = int(sys.argv[1]) if len(sys.argv) > 1 else 1
base = load_base_model("pinpad-transformer")
data = collect_grid_demonstrations(600, "pretraining", seed=7)
E, D, SG, Q, EP = [], [], [], [], []
for i in range(data.n_episodes):
    ep = data.episode(i)
    n = len(ep["actions"])
    obs = torch.as_tensor(ep["obs"][:n], dtype=torch.float32)[None]
    with torch.no_grad():
        e = base.run_layers(base.embed(obs), 0, layer)[0].numpy()
    E.append(e)
    D.append(e[1:] - e[:-1])
    SG.append(ep["subgoals"][:n])
    EP.append(np.full(n, i))
    grid = ep["obs"][:n].reshape(n, 7, 7, -1)
    tg = ep["targets"]
    q = []
    for t in range(n):
        a = np.argwhere(grid[t, :, :, -1])[0]
        dr, dc = np.argwhere(grid[t, :, :, 4 + tg[t]])[0] - a
        q.append(int(dr > 0) * 2 + int(dc > 0))
    Q.append(np.array(q))
E = np.concatenate(E)
Dd = np.concatenate(D)
SG = np.concatenate(SG)
Q = np.concatenate(Q)
EP = np.concatenate(EP)
mu = E.mean(0)
C = np.cov((E - mu).T)
Cd = np.cov(Dd.T)
w, V = np.linalg.eigh(C)
keep = w > 1e-4 * w.max()
W = V[:, keep] / np.sqrt(w[keep])
ld, Vd = np.linalg.eigh(W.T @ Cd @ W)  # ascending: slowest first
S = W @ Vd  # columns: slow features (whitened space -> directions in e-space as projections)
print("n kept", keep.sum(), "slowness first 12", np.round(ld[:12], 3), "last", np.round(ld[-3:], 2))
train = EP < 420
for k in (4, 8, 16, 32):
    for name, cols in (("slow", S[:, :k]), ("fast", S[:, -k:])):
        x = (E - mu) @ cols
        a1, c1 = probe(x, SG, train)
        a2, c2 = probe(x, Q, train)
        print(
            f"k={k:2d} {name}: subgoal {a1:.3f} (chance {c1:.3f})  quadrant {a2:.3f} (chance {c2:.3f})"
        )
a1, c1 = probe(E, SG, train)
a2, c2 = probe(E, Q, train)
print(f"full: subgoal {a1:.3f} ({c1:.3f}) quadrant {a2:.3f} ({c2:.3f})")
if layer == 1:
    ctl = load_subgoal_controllers("pinpad-subgoal-controllers", base_model=base)
    et = torch.as_tensor(E[:5000])
    g = torch.as_tensor(SG[:5000])
    with torch.no_grad():
        push = (ctl(et, g) - et).numpy()
    # energy of push in span of slow directions: use the Mahalanobis-dual basis: project with P = C S_k (S_k^T C S_k)^-1 S_k^T
    for k in (4, 8, 16, 32):
        Sk = S[:, :k]
        B, _ = np.linalg.qr(C @ Sk)  # directions in e-space that move the slow features
        frac = (np.linalg.norm(push @ B, axis=1) ** 2).sum() / (
            np.linalg.norm(push, axis=1) ** 2
        ).sum()
        print(f"GT push energy in top-{k} slow span: {frac:.3f} (random {k / 128:.3f})")
np.savez(ROOT / f"runs/sfa_layer{layer}.npz", S=S, mu=mu, C=C, slowness=ld)
