"""How much does knowing the target colour help a sequence model predict the ant expert's torques?

Trains two small Hawk base models on the same stochastic-expert episodes with the action loss only
(``obs_coef=0``): one reads the observations, the other the observations plus a one-hot of the
target colour the expert is heading for. The gap in held-out action NLL is what the target is
worth to imitation: if small, a model trained to imitate has little reason to represent it.
``--components K ...`` repeats both with a K-component Gaussian mixture action head: how much of
the gap a head that can keep several directions open closes without the target.

    python research/scripts/ant_target_value.py --data data/antroutes_pretraining.npz
    python research/scripts/ant_target_value.py --components 1 4
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from internal_rl_gym.data import Demonstrations
from internal_rl_gym.models import BaseModel


def batch(data: Demonstrations, ids: np.ndarray, with_target: bool, max_len: int = 256):
    b = data.batch(ids, max_len=max_len)
    obs = torch.as_tensor(b["obs"], dtype=torch.float32)
    if with_target:
        onehot = np.eye(4, dtype=np.float32)[np.maximum(b["targets"], 0)]  # (B, T, 4)
        onehot = np.concatenate([onehot, onehot[:, -1:]], axis=1)  # o_{T+1} is never read
        obs = torch.cat([obs, torch.as_tensor(onehot)], -1)
    act = torch.as_tensor(b["actions"], dtype=torch.float32)
    return obs, act, torch.as_tensor(b["mask"])


def run(
    data, train_ids, test_ids, with_target: bool, steps: int, seed: int, components: int = 1
) -> dict:
    torch.manual_seed(seed)
    model = BaseModel(
        arch="hawk",
        obs_dim=data.obs_dim + 4 * with_target,
        action_dim=8,
        action_type="continuous",
        action_components=components,
        d_model=64,
        n_layers=3,
        n_heads=2,
        d_mlp=256,
        max_len=256,
    )
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.03)
    rng = np.random.default_rng(seed)
    t0 = time.time()
    for _ in range(steps):
        obs, act, mask = batch(data, rng.choice(train_ids, 32, replace=False), with_target)
        loss = model.loss(obs, act, mask=mask, obs_coef=0.0).action_nll
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for s in range(0, len(test_ids), 64):
            obs, act, mask = batch(data, test_ids[s : s + 64], with_target)
            nll = model.loss(obs, act, mask=mask, obs_coef=0.0).action_nll.item()
            total, n = total + nll * int(mask.sum()), n + int(mask.sum())
    return {
        "components": components,
        "with_target": with_target,
        "heldout_action_nll": total / n,
        "seconds": time.time() - t0,
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", default="data/antroutes_pretraining.npz")
    p.add_argument("--train-episodes", type=int, default=2000)
    p.add_argument("--test-episodes", type=int, default=256)
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--components", type=int, nargs="+", default=[1])
    p.add_argument("--out", default="")
    args = p.parse_args()
    torch.set_num_threads(1)
    data = Demonstrations.load(args.data)
    train_ids = np.arange(args.train_episodes)
    test_ids = np.arange(data.n_episodes - args.test_episodes, data.n_episodes)
    rows, gains = [], {}
    for k in args.components:
        for with_target in (False, True):
            rows.append(run(data, train_ids, test_ids, with_target, args.steps, args.seed, k))
            print(json.dumps(rows[-1]), flush=True)
        gains[k] = rows[-2]["heldout_action_nll"] - rows[-1]["heldout_action_nll"]
        print(f"{k} component(s): held-out action NLL gain from the target:", round(gains[k], 4))
    report = {"args": vars(args), "runs": rows, "gain": gains[args.components[0]]}
    report["gain_by_components"] = gains
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
