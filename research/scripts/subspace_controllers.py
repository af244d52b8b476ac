"""Usage: python research/scripts/subspace_controllers.py next_colour additive|linear 600

Supervised feasibility: can pushes confined to the next-colour read-out subspace steer the
base model through held-out tasks, given the true subgoal?"""

import json
import sys
from pathlib import Path  # noqa: E402

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from controller_failures import failures  # noqa: E402

from agents.data_sources import fresh_activation_batches  # noqa: E402
from agents.discover import cache_activations  # noqa: E402
from agents.probe import action_log_prob  # noqa: E402
from internal_rl_gym.envs import grid_core  # noqa: E402
from internal_rl_gym.hub import load_base_model  # noqa: E402


@torch.no_grad()
def push_directions(base, layer: int, kind: str, dims: int, seed: int, episodes: int = 1024):
    """(d, k) directions of the residual stream at ``layer`` that a linear read-out of ``kind``
    (``next_colour`` or ``subgoal``) uses, from fresh expert episodes of the pretraining tasks:
    the top ``k`` singular directions of the probe's class-centred weights (a softmax ignores the
    common part), in the units of e. ``k = 0`` takes all of them (classes - 1)."""
    from agents.diagnostics import train_linear_probe
    from internal_rl_gym.envs.grid_expert import collect_grid_demonstrations

    data = collect_grid_demonstrations(episodes, "pretraining", seed=seed)
    cache = cache_activations(base, data, layer)
    meta = data.metadata
    if kind == "next_colour":
        labels = np.full(cache.subgoals.shape, -1, dtype=np.int64)
        for i in range(data.n_episodes):
            ep = data.episode(i)
            n = len(ep["actions"])
            kw = meta["env_kwargs"]
            labels[i, :n] = grid_core.next_colours_entered(
                ep["obs"], kw["n_walls"], kw["n_colours"]
            )
    else:
        labels = cache.subgoals
    keep = cache.mask.numpy() & (labels >= 0)
    x, y = cache.e[torch.as_tensor(keep)], labels[keep]
    n_classes = int(y.max()) + 1
    with torch.enable_grad():
        probe = train_linear_probe(x, y, n_classes, steps=500, seed=seed)
    w = probe.weight / probe.std  # logits = w e + const: the weights in the units of e
    w = w - w.mean(0, keepdim=True)
    k = dims or n_classes - 1
    if not 0 < k <= n_classes - 1:
        raise ValueError(f"--push-dims must be in 1..{n_classes - 1} for {kind}, got {dims}.")
    u, _, _ = torch.linalg.svd(w.T, full_matrices=False)
    return u[:, :k]


torch.set_num_threads(1)
kind, mode, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
base = load_base_model("pinpad-transformer")
P = push_directions(base, 1, kind, 0, 30011)
k = P.shape[1]


class Ctl(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("P", P)
        if mode == "additive":
            self.w = torch.nn.Parameter(torch.zeros(4, k))
        else:
            self.a = torch.nn.Parameter(torch.randn(4, k, 16) * 0.01)
            self.b = torch.nn.Parameter(torch.randn(4, 128, 16) / 128**0.5)

    def forward(self, e, g):
        g = g.clamp(min=0).long()
        if mode == "additive":
            return e + self.w[g] @ self.P.T
        r = torch.einsum("...d,...dr->...r", e, self.b[g])
        return e + torch.einsum("...r,...kr->...k", r, self.a[g]) @ self.P.T


torch.manual_seed(0)
ctl = Ctl()
opt = torch.optim.AdamW(ctl.parameters(), lr=1e-2 if mode == "additive" else 1e-3, weight_decay=0.0)
batches = fresh_activation_batches(base, 1, "pretraining", 4096, 64, 5)
for step in range(steps):
    b = next(batches)
    e_top = base.run_layers(ctl(b["e"], b["subgoals"]), 1, base.n_layers)
    nll = -action_log_prob(base, base.heads(e_top, predict_obs=False), b["actions"])
    m = b["mask"].float()
    loss = (nll * m).sum() / m.sum()
    opt.zero_grad()
    loss.backward()
    opt.step()
    if step % 100 == 0:
        print(step, round(loss.item(), 4), flush=True)
ctl.eval()
res = {}
for task in ("0-1-2-3-4-5", "2-3-4-5-6-7"):
    with torch.no_grad():
        f = failures(base, ctl, 1, task, 256, 0)
    res[task] = f.get("success", f)
    print(task, f.get("success"), flush=True)
(ROOT / f"research/results/session22/subspace_gt_{kind}_{mode}.json").write_text(json.dumps(res))
