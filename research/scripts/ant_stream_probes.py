"""Does an ant base model's residual stream know where the expert is going?

Runs the model over mean-expert episodes of the pretraining tasks and fits, at every layer, a
ridge regression from the stream to the expert's walking direction (unit vector in the torso
frame, what the gait consumes) and a softmax probe of the target colour, both judged on held-out
episodes (R^2 of the direction; accuracy against the majority class), and a softmax probe of the
last colour visited (none yet = a fifth class: the task state a model needs to follow the
pretraining tasks' rule). ``--late`` keeps only steps
at least that many steps into their segment (after the target could be read off the motion).

    python research/scripts/ant_stream_probes.py --model ant-hawk --env AntPinpad-v0
    python research/scripts/ant_stream_probes.py --model runs/ant-routes/model --env AntPinpadRoutes-v0
"""

from __future__ import annotations

import argparse
import json

import gymnasium as gym
import numpy as np
import torch
from internal_rl_agents.diagnostics import train_linear_probe

import internal_rl_gym  # noqa: F401
from internal_rl_gym.envs.ant_expert import AntPinpadExpert
from internal_rl_gym.hub import load_base_model


def collect(env_id: str, n_episodes: int, seed: int):
    """Mean-expert episodes: observations, torso-frame directions, targets, steps into segment."""
    env = gym.make(env_id, task="pretraining")
    e = env.unwrapped
    expert = AntPinpadExpert(seed=seed, stochastic=False)
    episodes = []
    i = 0
    while len(episodes) < n_episodes:
        obs, _ = env.reset(seed=seed + i)
        expert.reset()
        i += 1
        rows = {"obs": [], "dir": [], "target": [], "last": [], "since": []}
        since, progress, done = 0, 0, False
        while not done:
            d = expert.direction(e)
            c, s = np.cos(e.yaw()), np.sin(e.yaw())
            rows["obs"].append(obs)
            rows["dir"].append((c * d[0] + s * d[1], -s * d[0] + c * d[1]))
            rows["target"].append(int(e.task[e.progress]))
            rows["last"].append(int(e.task[e.progress - 1]) if e.progress else 4)
            rows["since"].append(since)
            obs, _, term, trunc, info = env.step(expert.act(env))
            since = 0 if e.progress != progress else since + 1
            progress, done = e.progress, term or trunc
        if info["success"]:
            episodes.append({k: np.asarray(v) for k, v in rows.items()})
    env.close()
    return episodes


@torch.no_grad()
def streams(model, episodes) -> list[torch.Tensor]:
    out = []
    for ep in episodes:
        obs = torch.as_tensor(ep["obs"][None], dtype=torch.float32)
        res = model(obs, return_residuals=True).residuals  # L+1 x (1, T, d)
        out.append(torch.stack(res)[:, 0].float())  # (L+1, T, d)
    return out


def ridge_r2(x_tr, y_tr, x_te, y_te, lam: float = 1.0) -> float:
    mean, std = x_tr.mean(0), x_tr.std(0) + 1e-5
    a, b = (x_tr - mean) / std, (x_te - mean) / std
    a = np.hstack([a, np.ones((len(a), 1))])
    b = np.hstack([b, np.ones((len(b), 1))])
    w = np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ y_tr)
    resid = ((b @ w - y_te) ** 2).sum()
    return float(1.0 - resid / ((y_te - y_te.mean(0)) ** 2).sum())


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--model", required=True, help="a base model (ant-hawk, session 24, is no longer embedded)"
    )
    p.add_argument("--env", default="AntPinpad-v0")
    p.add_argument("--episodes", type=int, default=300)
    p.add_argument("--late", type=int, default=15, help="also report steps this far into a segment")
    p.add_argument("--seed", type=int, default=50_000)
    p.add_argument("--out", default="")
    args = p.parse_args()
    torch.set_num_threads(1)
    model = load_base_model(args.model).eval()
    episodes = collect(args.env, args.episodes, args.seed)
    res = streams(model, episodes)
    n_train = int(0.7 * len(episodes))
    cat = lambda key, sl: np.concatenate([ep[key] for ep in episodes[sl]])  # noqa: E731
    tr, te = slice(0, n_train), slice(n_train, None)
    late_tr, late_te = cat("since", tr) >= args.late, cat("since", te) >= args.late
    y_tr, y_te = cat("dir", tr), cat("dir", te)
    t_tr, t_te = cat("target", tr), cat("target", te)
    v_tr, v_te = cat("last", tr), cat("last", te)
    report = {"model": args.model, "env": args.env, "episodes": len(episodes), "layers": []}
    for layer in range(res[0].shape[0]):
        x_tr = torch.cat([r[layer] for r in res[:n_train]]).numpy()
        x_te = torch.cat([r[layer] for r in res[n_train:]]).numpy()
        probe = train_linear_probe(torch.from_numpy(x_tr), t_tr, 4)
        last_probe = train_linear_probe(torch.from_numpy(x_tr), v_tr, 5)
        with torch.no_grad():
            pred = probe((torch.from_numpy(x_te) - probe.mean) / probe.std).argmax(-1).numpy()
            z = (torch.from_numpy(x_te) - last_probe.mean) / last_probe.std
            last_pred = last_probe(z).argmax(-1).numpy()
        row = {
            "layer": layer,
            "direction_r2": ridge_r2(x_tr, y_tr, x_te, y_te),
            "direction_r2_late": ridge_r2(
                x_tr[late_tr], y_tr[late_tr], x_te[late_te], y_te[late_te]
            ),
            "target_acc": float((pred == t_te).mean()),
            "target_acc_late": float((pred[late_te] == t_te[late_te]).mean()),
            "last_visited_acc": float((last_pred == v_te).mean()),
        }
        report["layers"].append(row)
        print(json.dumps(row))
    report["target_majority"] = float(np.bincount(t_te).max() / len(t_te))
    report["last_visited_majority"] = float(np.bincount(v_te).max() / len(v_te))
    print("target majority", report["target_majority"])
    print("last visited majority", report["last_visited_majority"])
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
