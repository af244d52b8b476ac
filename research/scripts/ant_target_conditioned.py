"""Is target inference the ant base model's only bottleneck? A base model told the target.

Every ant base model so far fails free play, and ground-truth controllers do not rescue it. This
splits the two things a base model must do: infer where the expert is going (from the history),
and walk the route there in closed loop. The same recipe is trained on the same demonstrations
with a one-hot of the expert's target colour appended to every observation (``data``), then acts
in closed loop with the env's current target appended the same way (``eval``). If this model
navigates, the target is the bottleneck; if it does not, the walking itself is.

``--clock`` also gives the model the expert's gait clock, ``(sin, cos)`` of its phase (the latent
an MLP needs to walk, session 24). The stored datasets do not hold it, so ``data --clock``
collects new stochastic-expert episodes that record it; in closed loop a clock with a random start
phase advances at the gait's mean frequency, as a shadow expert's would.

    python research/scripts/ant_target_conditioned.py data --data data/antroutes1_pretraining.npz \
        --out data/antroutes1_target.npz
    internal-rl pretrain --data data/antroutes1_target.npz --out runs/ant-target --preset ant-cpu \
        --action-components 4 --obs-coef 10 --steps 3000 --decay-steps 1000 --eval-every 1000 \
        --holdout 512 --checkpoint-every 250 --threads 1 --precision bf16 --seed 0
    python research/scripts/ant_target_conditioned.py eval --model runs/ant-target/model \
        --episodes 200 --seeds 0 1000 2000 \
        --out research/results/session26/ant_target_conditioned.json
    python research/scripts/ant_target_conditioned.py data --clock --episodes 10000 \
        --out data/antroutes1_target_clock.npz     # then pretrain and eval it with --clock
"""

from __future__ import annotations

import argparse
import collections
import json

import gymnasium as gym
import numpy as np
import torch
from ant_history_cut import acting, chunked
from internal_rl_agents.common import atomic_write_json
from internal_rl_agents.rollout import rollout

import internal_rl_gym  # noqa: F401
from internal_rl_gym.data import Demonstrations
from internal_rl_gym.envs.ant_expert import AntPinpadExpert, run_episode
from internal_rl_gym.envs.ant_gait import GaitParams
from internal_rl_gym.hub import load_base_model

N_COLOURS = 4


def one_hot(targets: np.ndarray) -> np.ndarray:
    """(n, 4) float32; -1 (no target: the task is done) is all zeros."""
    out = np.zeros((len(targets), N_COLOURS), np.float32)
    ok = targets >= 0
    out[np.flatnonzero(ok), targets[ok]] = 1.0
    return out


def with_targets(data: Demonstrations) -> Demonstrations:
    """The dataset with one_hot(target at step t) appended to o_t (o_{T+1}: the last target)."""
    rows = []
    for i in range(data.n_episodes):
        ep = data.episode(i)
        t = np.append(ep["targets"], ep["targets"][-1])
        rows.append(np.concatenate([ep["obs"], one_hot(t)], axis=1))
    meta = dict(data.metadata, obs_dim=data.obs_dim + N_COLOURS, target_input=True)
    return Demonstrations(
        np.concatenate(rows),
        data.actions,
        data.targets,
        data.subgoals,
        data.lengths,
        data.tasks,
        data.obs_dim + N_COLOURS,
        False,
        meta,
    )


class ClockRecorder(AntPinpadExpert):
    """The expert, recording the gait phase each action was computed at."""

    def reset(self) -> None:
        super().reset()
        self.phases: list[float] = []

    def act(self, env) -> np.ndarray:
        self.phases.append(self.phase)  # run_episode resets the expert, so no restart inside
        return super().act(env)


def clock(phases: np.ndarray) -> np.ndarray:
    return np.stack([np.sin(phases), np.cos(phases)], axis=1).astype(np.float32)


def collect_with_clock(env_id: str, n: int, seed: int) -> Demonstrations:
    """``n`` successful stochastic-expert episodes of the pretraining tasks, each observation
    followed by one_hot(target) and the gait clock (o_{T+1}: the last target, the next phase)."""
    env = gym.make(env_id, task="pretraining").unwrapped
    expert = ClockRecorder(seed=seed, stochastic=True)
    rng = np.random.default_rng(seed)
    eps = []
    while len(eps) < n:
        ep = run_episode(env, expert, seed=int(rng.integers(2**63 - 1)), record=True)
        if not ep["success"]:
            continue
        phases = np.append(expert.phases, expert.phase)
        t = np.append(ep["targets"], ep["targets"][-1])
        ep["obs"] = np.concatenate([ep["obs"], one_hot(t), clock(phases)], axis=1)
        eps.append(ep)
    tasks = np.full((n, 4), -1, np.int64)
    for i, ep in enumerate(eps):
        tasks[i, : len(ep["task"])] = ep["task"]
    targets = np.concatenate([ep["targets"] for ep in eps])
    obs = np.concatenate([ep["obs"] for ep in eps])
    meta = {"env_id": env_id, "task": "pretraining", "seed": seed, "target_input": True}
    meta.update(clock_input=True, action_dim=8, expert_params=expert.params())
    return Demonstrations(
        obs,
        np.concatenate([ep["actions"] for ep in eps]),
        targets,
        targets.copy(),
        np.array([ep["length"] for ep in eps], np.int64),
        tasks,
        obs.shape[1],
        False,
        meta,
    )


class TargetInput(gym.ObservationWrapper):
    """Appends one_hot(the task's next colour) to the observation."""

    def __init__(self, env: gym.Env, with_clock: bool = False):
        super().__init__(env)
        n = env.observation_space.shape[0] + N_COLOURS + 2 * with_clock
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (n,), np.float32)
        self.with_clock = with_clock
        self.dphase = 2.0 * np.pi * GaitParams().freq * env.unwrapped.dt
        self.phase = 0.0
        self.target = -1
        self.ending = ""
        self.visits: list[tuple[int, int]] = []  # (colour entered, the target at that moment)

    def reset(self, **kw):
        obs, info = self.env.reset(**kw)
        self.target, self.visits = int(info["target"]), []
        self.phase = float(self.np_random.uniform(0.0, 2.0 * np.pi))
        return self.observation(obs), info

    def step(self, action):
        obs, r, term, trunc, info = self.env.step(action)
        self.phase = (self.phase + self.dphase) % (2.0 * np.pi)
        if info["visited"] >= 0:
            self.visits.append((int(info["visited"]), self.target))
        self.target = int(info["target"])
        self.ending = info["termination"] or ("truncated" if trunc else "")
        return self.observation(obs), r, term, trunc, info

    def observation(self, obs):
        parts = [obs, one_hot(np.array([self.target]))[0]]
        if self.with_clock:
            parts.append(clock(np.array([self.phase]))[0])
        return np.concatenate(parts).astype(np.float32)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("data")
    d.add_argument("--data", help="a stored dataset to append the target to")
    d.add_argument("--out", required=True)
    d.add_argument("--clock", action="store_true", help="collect new episodes with the clock")
    d.add_argument("--env", default="AntPinpadRoutes-v1")
    d.add_argument("--episodes", type=int, default=10000)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument(
        "--chunk",
        type=int,
        default=0,
        help="cut the episodes of --data, as they are, into pieces of this many steps",
    )
    e = sub.add_parser("eval")
    e.add_argument("--model", required=True)
    e.add_argument("--env", default="AntPinpadRoutes-v1")
    e.add_argument("--episodes", type=int, default=200)
    e.add_argument("--seeds", type=int, nargs="+", default=[0], help="one evaluation per seed")
    e.add_argument("--greedy", action="store_true", help="act with the top component's mean")
    e.add_argument("--mixture-mean", action="store_true", help="act with the mixture's mean")
    e.add_argument("--clock", action="store_true", help="the model reads the gait clock too")
    e.add_argument("--reset-every", type=int, default=0, help="forget the history every N steps")
    e.add_argument("--copies", type=int, default=1, help="staggered states (see ResetEvery)")
    e.add_argument("--out", default="")
    args = p.parse_args()
    if args.cmd == "data":
        if args.clock:
            data = collect_with_clock(args.env, args.episodes, args.seed)
        elif args.data and args.chunk:  # a dataset made here already holds the target
            data = chunked(Demonstrations.load(args.data), args.chunk)
        elif args.data:
            data = with_targets(Demonstrations.load(args.data))
        else:
            p.error("data needs --data (append the target) or --clock (collect with the clock)")
        print(data.save(args.out))
        return
    torch.set_num_threads(1)
    model = load_base_model(args.model).eval()
    runs = []
    for seed in args.seeds:
        envs = [
            TargetInput(gym.make(args.env, task="pretraining"), args.clock)
            for _ in range(args.episodes)
        ]
        seeds = [seed + i for i in range(args.episodes)]
        gen = torch.Generator().manual_seed(seed)
        act = "mean" if args.mixture_mean else "greedy" if args.greedy else "sample"
        out = rollout(acting(model, args.reset_every, args.copies), envs, seeds, gen, act=act)
        runs.append(
            {
                "seed": seed,
                "task_done": float(out.success.mean()),
                "endings": dict(collections.Counter(env.ending for env in envs)),
                # of the colours entered, how many were the target the model was told
                "visits": sum(len(env.visits) for env in envs),
                "visits_to_the_target": sum(c == t for env in envs for c, t in env.visits),
                "mean_length": float(out.lengths.mean()),
            }
        )
    report = {
        "model": args.model,
        "env_id": args.env,
        "greedy": args.greedy,
        "mixture_mean": args.mixture_mean,
        "clock": args.clock,
        "reset_every": args.reset_every,
        "copies": args.copies,
        "episodes_per_seed": args.episodes,
        "task_done_mean": float(np.mean([r["task_done"] for r in runs])),
        "runs": runs,
    }
    print(json.dumps(report, indent=1))
    if args.out:
        atomic_write_json(args.out, report)


if __name__ == "__main__":
    main()
