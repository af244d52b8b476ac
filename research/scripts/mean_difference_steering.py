"""Usage: python research/scripts/mean_difference_steering.py --gains 1 2 4 8

Do mean-difference steering vectors (ActAdd / contrastive activation addition) steer
`pinpad-transformer` through held-out tasks? For each abstract subgoal k, v_k = mean of the
residual stream at the control layer over the steps whose next entered colour (read from the
observations) belongs to pair k, minus the mean over all steps. Then e + γ v_{g_t} with the true
subgoal g_t at every step, as the ground-truth controllers are evaluated."""

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from controller_failures import failures  # noqa: E402

from agents.discover import cache_activations  # noqa: E402
from internal_rl_gym.envs import grid_core  # noqa: E402
from internal_rl_gym.envs.grid_expert import collect_grid_demonstrations  # noqa: E402
from internal_rl_gym.hub import load_base_model  # noqa: E402


class Steering(torch.nn.Module):
    def __init__(self, v: torch.Tensor, gain: float) -> None:
        super().__init__()
        self.v, self.gain = v, gain

    def forward(self, e: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return e + self.gain * self.v[g.clamp(min=0).long()]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--layer", type=int, default=1)
    p.add_argument("--gains", type=float, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--episodes", type=int, default=128)
    p.add_argument("--out", default=str(ROOT / "research/results/session22/mean_difference.json"))
    args = p.parse_args()
    torch.set_num_threads(1)
    base = load_base_model("pinpad-transformer")
    data = collect_grid_demonstrations(1000, "pretraining", seed=4242)
    cache = cache_activations(base, data, args.layer)
    pair = torch.full(cache.subgoals.shape, -1)
    for i in range(data.n_episodes):
        ep = data.episode(i)
        n = len(ep["actions"])
        nxt = torch.as_tensor(grid_core.next_colours_entered(ep["obs"], 4, 8))
        pair[i, :n] = torch.where(nxt >= 0, nxt // 2, -1)
    m = cache.mask & (pair >= 0)
    e, y = cache.e[m], pair[m]
    mean = e.mean(0)
    v = torch.stack([e[y == k].mean(0) - mean for k in range(4)])
    print("|v_k| / |e| :", (v.norm(dim=1) / e.norm(dim=1).mean()).tolist())
    res = {"layer": args.layer, "episodes": args.episodes, "by_gain": {}}
    for gain in args.gains:
        ctl = Steering(v, gain)
        row = {}
        for task in ("0-1-2-3-4-5", "2-3-4-5-6-7"):
            with torch.no_grad():
                row[task] = failures(base, ctl, args.layer, task, args.episodes, 0)["success"]
        res["by_gain"][str(gain)] = row
        print(gain, row, flush=True)
    Path(args.out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
