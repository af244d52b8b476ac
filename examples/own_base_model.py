"""Bring your own base model: build, train briefly, save, and control it.

    python examples/own_base_model.py [--steps 200] [--out runs/example-base]

Builds a small transformer from a preset, trains it a little on fresh GridPinpad expert
episodes (the loss of paper Eq. 5), saves it as a checkpoint folder, and wraps a task env with
InternalControlWrapper around it and an (untrained) metacontroller at layer L/2. Real base models
need hours of training on a CPU: use `internal-rl pretrain` for that.
"""

import argparse

import gymnasium as gym
import numpy as np
import torch

import internal_rl_gym  # noqa: F401
from internal_rl_gym.envs.grid_expert import collect_grid_demonstrations
from internal_rl_gym.hub import model_fingerprint, save_checkpoint
from internal_rl_gym.internal_control import InternalControlWrapper
from internal_rl_gym.models import GRID_CPU_PRESET, BaseModel, Metacontroller

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--out", default="runs/example-base")
    args = p.parse_args()
    torch.manual_seed(0)

    base = BaseModel.from_config(
        GRID_CPU_PRESET.replace(d_model=args.d_model, n_layers=4, name="example-base")
    )
    data = collect_grid_demonstrations(2048, "pretraining", seed=0)
    opt = torch.optim.AdamW(base.parameters(), lr=1e-3, weight_decay=0.03)
    rng = np.random.default_rng(0)
    for step in range(args.steps):
        batch = data.batch(rng.choice(data.n_episodes, 32, replace=False))
        out = base.loss(
            torch.as_tensor(batch["obs"]),
            torch.as_tensor(batch["actions"]),
            mask=torch.as_tensor(batch["mask"]),
        )
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        if step % 50 == 0:
            print(
                f"step {step}: loss {out.loss.item():.3f} accuracy {out.action_accuracy.item():.3f}"
            )
    save_checkpoint(base.eval(), args.out)
    print(f"saved to {args.out}")

    meta = Metacontroller(
        d_model=base.d_model,
        layer=base.n_layers // 2,
        base_model_name=args.out,
        base_model_fingerprint=model_fingerprint(base),
    )
    env = InternalControlWrapper(gym.make("GridPinpad-v0", task="post"), base, meta)
    obs, _ = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    print(f"one abstract action: {info['primitive_steps']} primitive steps, β trace {info['beta']}")
