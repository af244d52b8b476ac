"""Where does ant imitation fail? Behaviour cloning with privileged inputs, judged in closed loop.

The ant expert is a trot gait (its own clock ``phase``) steered by a grid planner (a world-frame
``direction`` towards the next cell on a shortest path to the task's ``target`` colour). A base
model must infer the clock and the target from the history. Each variant below gives a small MLP
the current observation plus some of the expert's latents, trains it on stochastic-expert steps,
and lets it act alone (a shadow mean expert supplies the latents in closed loop):

* ``phase+direction``: the gait alone (can the action be imitated when where-to-go is given?)
* ``phase+target``: the planner from the observation (can the route be read off the layout?)
* ``phase+targetvec``: the same with the target colour's relative vector (obs slice) picked out
* ``phase+pathvec``: the vector to the next cell on the target's shortest path (a path hint)
* ``phase+hints+target``: those vectors for all four colours, and the target (what a base model
  with path hints in its observation must do, minus inferring the target from the history)
* ``hints+target``: the same without the clock
* ``target``: no clock (can the gait's phase be read off the joints?)
* ``phase``: no target (the base model's situation without history: expected to fail)
* ``obs``: the observation alone

Success = the episode's task (a pretraining task, drawn at reset) completed.

    python research/scripts/ant_bc_diagnostics.py --episodes 2000 --eval-episodes 100
"""

from __future__ import annotations

import argparse
import json
import time

import gymnasium as gym
import numpy as np
import torch
from torch import nn

import internal_rl_gym  # noqa: F401
from internal_rl_gym.envs import grid_core
from internal_rl_gym.envs.ant_expert import AntPinpadExpert

VARIANTS = (
    "phase+direction",
    "phase+target",
    "phase+targetvec",
    "phase+pathvec",
    "phase+hints+target",
    "hints+target",
    "target",
    "phase",
    "obs",
)


def path_hints(e) -> np.ndarray:
    """(4, 2): for each colour, (centre of the next cell on a shortest grid path to it - torso xy)
    / cell_size, in the env's ``relative_frame`` (obstacles: the wall and the other colours)."""
    key = (tuple(e.walls), tuple(e.colours))
    if getattr(e, "_hint_key", None) != key:
        targets = np.arange(4)[None]
        e._hint_dist = grid_core.distance_maps(e.walls[None], e.colours[None], targets, e.size)[0]
        e._hint_key = key
    move = grid_core.move_table(e.size)
    cell, xy = e.cell, e.data.qpos[:2]
    out = np.zeros((4, 2))
    if cell < 0:
        return out
    for c in range(4):
        dist = e._hint_dist[c]
        options = [(int(dist[move[k, cell]]), k) for k in range(4) if move[k, cell] != cell]
        best = min(options)
        nxt = (
            cell
            if int(e.colours[c]) == cell or best[0] >= grid_core.UNREACHABLE
            else move[best[1], cell]
        )
        out[c] = (e._centres[nxt] - xy) / e.cell_size
    if e.relative_frame == "heading":  # as the env's relative vectors
        c, s = np.cos(e.yaw()), np.sin(e.yaw())
        out = out @ np.array([[c, -s], [s, c]])
    return out


def latents(env, expert: AntPinpadExpert):
    """The expert's clock (sin, cos), direction in the torso frame, target colour, path hints."""
    e = env.unwrapped
    d = expert.direction(e)
    w, qx, qy, qz = e.data.qpos[3:7]
    yaw = np.arctan2(2.0 * (w * qz + qx * qy), 1.0 - 2.0 * (qy * qy + qz * qz))
    c, s = np.cos(yaw), np.sin(yaw)
    d_torso = np.array([c * d[0] + s * d[1], -s * d[0] + c * d[1]])
    phase = np.array([np.sin(expert.phase), np.cos(expert.phase)])
    return phase, d_torso, int(e.task[e.progress]), path_hints(e)


def features(variant: str, obs, phase, d_torso, target, hints) -> np.ndarray:
    parts = [obs]
    if "phase" in variant:
        parts.append(phase)
    if "direction" in variant:
        parts.append(d_torso)
    if "pathvec" in variant:
        parts.append(hints[target])
    if "hints" in variant:
        parts.append(hints.ravel())
    if variant.endswith("target") or variant == "target":
        parts.append(np.eye(4)[target])
    if "targetvec" in variant:
        parts.append(obs[29 + 2 * target : 31 + 2 * target])
    return np.concatenate(parts).astype(np.float32)


def collect(n_episodes: int, seed: int, env_kwargs: dict) -> dict[str, np.ndarray]:
    env = gym.make("AntPinpad-v0", task="pretraining", **env_kwargs)
    expert = AntPinpadExpert(seed=seed, stochastic=True)
    rec = {k: [] for k in ("obs", "phase", "dir", "target", "hints", "action")}
    done_eps = 0
    i = 0
    while done_eps < n_episodes:
        obs, _ = env.reset(seed=seed + i)
        expert.reset()
        i += 1
        ep = {k: [] for k in rec}
        done = False
        while not done:
            phase, d, tgt, hints = latents(env, expert)
            a = expert.act(env)  # recomputes the same direction (the plan is cached per cell)
            for k, v in zip(rec, (obs, phase, d, tgt, hints, a)):
                ep[k].append(v)
            obs, _, term, trunc, info = env.step(a)
            done = term or trunc
        if info["success"]:
            done_eps += 1
            for k in rec:
                rec[k].extend(ep[k])
    env.close()
    return {k: np.asarray(v) for k, v in rec.items()}


def train(x: np.ndarray, y: np.ndarray, steps: int, seed: int, width: int, depth: int) -> nn.Module:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(x.shape[1] if i == 0 else width, width), nn.GELU()]
    net = nn.Sequential(*layers, nn.Linear(width, 8))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(len(xt), (512,), generator=g)
        loss = ((net(xt[idx]) - yt[idx]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return net.eval()


def evaluate(
    variant: str, net: nn.Module, n_episodes: int, seed: int, env_kwargs: dict
) -> dict[str, float]:
    env = gym.make("AntPinpad-v0", task="pretraining", **env_kwargs)
    shadow = AntPinpadExpert(seed=seed, stochastic=False)
    ends: dict[str, int] = {}
    success = 0
    for i in range(n_episodes):
        obs, _ = env.reset(seed=10_000 + seed + i)
        shadow.reset()
        done = False
        while not done:
            phase, d, tgt, hints = latents(env, shadow)
            shadow.act(env)  # advances the shadow's clock; its torques are not applied
            with torch.no_grad():
                a = net(torch.from_numpy(features(variant, obs, phase, d, tgt, hints)))
            obs, _, term, trunc, info = env.step(a.numpy())
            done = term or trunc
        success += bool(info["success"])
        end = info["termination"] or "truncated"
        ends[end] = ends.get(end, 0) + 1
    env.close()
    return {
        "success": success / n_episodes,
        **{f"ended_{k}": v / n_episodes for k, v in ends.items()},
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--episodes", type=int, default=2000, help="successful stochastic-expert episodes"
    )
    p.add_argument("--eval-episodes", type=int, default=100)
    p.add_argument("--steps", type=int, default=6000, help="MLP training steps (batch 512)")
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--relative-frame", default="world", choices=("world", "heading"))
    p.add_argument("--out", default="")
    args = p.parse_args()
    torch.set_num_threads(1)
    t0 = time.time()
    env_kwargs = {"relative_frame": args.relative_frame}
    data = collect(args.episodes, args.seed, env_kwargs)
    print(f"collected {len(data['obs'])} steps in {time.time() - t0:.0f} s", flush=True)
    results = {}
    for v in args.variants:
        t = time.time()
        x = np.stack(
            [
                features(v, *row)
                for row in zip(*(data[k] for k in ("obs", "phase", "dir", "target", "hints")))
            ]
        )
        net = train(
            x, data["action"].astype(np.float32), args.steps, args.seed, args.width, args.depth
        )
        with torch.no_grad():
            mse = float(((net(torch.from_numpy(x)) - torch.from_numpy(data["action"])) ** 2).mean())
        results[v] = {
            "train_mse": mse,
            **evaluate(v, net, args.eval_episodes, args.seed, env_kwargs),
        }
        print(v, json.dumps(results[v]), f"({time.time() - t:.0f} s)", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
