"""Do ground-truth controllers with an additive bias steer through unseen +1 transitions?

    python research/scripts/affine_controllers.py --variant affine --layer 3 --steps 1500 \
        --out research/results/affine_controllers_layer3.json

The paper's controllers are linear, ê = e + U e, so their push depends on e; on the post task
they meet contexts (a +1 transition) they were never trained in. Variants trained here like
``internal-rl probe`` trains its controllers (rank 16, fresh clean expert episodes of the
pretraining tasks, AdamW lr 3e-3, weight decay 0.03, batch 64), then evaluated as the probe
evaluates (256 episodes per task, the true subgoal's controller active at every step):
``linear`` (the paper's), ``affine`` (ê = e + U e + b_g) and ``bias`` (ê = e + b_g).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from agents.common import atomic_write_json, progress_bar  # noqa: E402
from agents.data_sources import fresh_activation_batches  # noqa: E402
from agents.probe import evaluate_controllers  # noqa: E402
from internal_rl_gym.hub import load_base_model  # noqa: E402
from internal_rl_gym.models import SubgoalControllers  # noqa: E402
from internal_rl_gym.tasks import N_ABSTRACT_SUBGOALS  # noqa: E402

TASKS = ["0-1-2-3", "0-1-4-5", "0-1-4-5-0-1-4-5-0-1-4-5", "post"]


class Controllers(nn.Module):
    """One controller per subgoal: linear (e + U e), affine (+ b_g) or bias only (e + b_g)."""

    def __init__(self, d_model: int, n_subgoals: int, variant: str, rank: int = 16) -> None:
        super().__init__()
        linear = variant in ("linear", "affine")
        self.linear = SubgoalControllers(d_model, n_subgoals, rank) if linear else None
        self.bias = nn.Parameter(torch.zeros(n_subgoals, d_model)) if variant != "linear" else None

    def forward(self, e: torch.Tensor, subgoal: torch.Tensor) -> torch.Tensor:
        out = self.linear(e, subgoal) if self.linear is not None else e
        if self.bias is not None:
            out = out + self.bias[subgoal.clamp(min=0).long()]
        return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--variant", choices=["linear", "affine", "bias"], default="affine")
    p.add_argument("--layer", type=int, default=3)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--base-model", default="pinpad-transformer")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(1)
    base = load_base_model(args.base_model)
    base.requires_grad_(False)
    torch.manual_seed(0)
    ctrl = Controllers(base.d_model, N_ABSTRACT_SUBGOALS, args.variant)
    opt = torch.optim.AdamW(ctrl.parameters(), lr=3e-3, weight_decay=0.03)
    batches = fresh_activation_batches(base, args.layer, "pretraining", 4096, 64, seed=0)
    t0, tail = time.time(), []
    for step in progress_bar(range(args.steps), desc=f"{args.variant} at layer {args.layer}"):
        b = next(batches)
        e_top = base.run_layers(ctrl(b["e"], b["subgoals"]), args.layer, base.n_layers)
        logits = base.heads(e_top, predict_obs=False).action_logits.float()
        nll = -torch.log_softmax(logits, -1).gather(-1, b["actions"][..., None])[..., 0]
        loss = (nll * b["mask"]).sum() / b["mask"].sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step >= args.steps * 0.9:
            tail.append(loss.item())
    ctrl.eval()
    result = {
        "variant": args.variant,
        "layer": args.layer,
        "steps": args.steps,
        "base_model": args.base_model,
        "train_nll": float(np.mean(tail)),
        "success_by_task": {
            t: evaluate_controllers(base, ctrl, args.layer, t, 256, seed=0) for t in TASKS
        },
        "seconds": round(time.time() - t0),
    }
    print(result)
    atomic_write_json(args.out, result)


if __name__ == "__main__":
    main()
