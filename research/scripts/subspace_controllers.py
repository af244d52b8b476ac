"""Usage: python research/scripts/subspace_controllers.py next_colour additive|linear 600

Supervised feasibility: can pushes confined to the next-colour read-out subspace steer the
base model through held-out tasks, given the true subgoal?"""

import json
import sys
from pathlib import Path  # noqa: E402

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from controller_failures import failures  # noqa: E402

from agents.data_sources import fresh_activation_batches  # noqa: E402
from agents.discover import push_directions  # noqa: E402
from agents.probe import action_log_prob  # noqa: E402
from internal_rl_gym.hub import load_base_model  # noqa: E402

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
