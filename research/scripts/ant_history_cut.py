"""Does conditioning on the history cost the ant base model its closed-loop walking?

Session 26 found a base model told the target and the gait clock completing 0.17 of its
pretraining tasks with the whole episode as context, where a memoryless MLP with the same
inputs completed 0.66. This script cuts the history: ``data --chunk N`` cuts every episode of a
dataset into pieces of N steps (each a new episode, so ``internal-rl pretrain`` trains a model
that never sees more than N steps), and ``free-play`` lets such a model act alone with its state
restarted every N steps (:class:`ResetEvery`, staggered copies keep N - N/copies to N steps of
context) and, for a mixture head, with the mixture's mean action (``--act mean``).
``ant_target_conditioned.py eval`` takes the same options for models told the target.
``data`` takes several datasets (session 28: new episodes first, so that ``pretrain``'s
held-out pieces, the last ones, stay those of the first run).

    python research/scripts/ant_history_cut.py data --data data/antroutes1_pretraining.npz \
        --chunk 64 --out data/antroutes1_chunk64.npz
    internal-rl pretrain --data data/antroutes1_chunk64.npz --out runs/ant-routes1-chunk64 \
        --preset ant-cpu --action-components 4 --obs-coef 10 --steps 2000 --decay-steps 700 \
        --batch-size 256 --eval-every 1000 --holdout 512 --checkpoint-every 250 --threads 1 \
        --precision bf16 --seed 0
    python research/scripts/ant_history_cut.py free-play --model runs/ant-routes1-chunk64/model \
        --reset-every 64 --copies 4 --act mean --episodes 200 --seeds 0 1000 2000 \
        --out research/results/session27/free_play_ant-routes1-chunk64.json
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from internal_rl_agents.common import atomic_write_json
from internal_rl_agents.diagnostics import env_free_play

import internal_rl_gym  # noqa: F401
from internal_rl_gym.data import Demonstrations
from internal_rl_gym.hub import load_base_model

ACTS = ("sample", "greedy", "mean")  # rollout's act: "mean" is the mixture's mean action


def chunked(data: Demonstrations, chunk: int) -> Demonstrations:
    """Every episode cut into consecutive pieces of ``chunk`` steps (the last one shorter), each a
    new episode: a model trained on them never sees more than ``chunk`` steps of history."""
    obs_rows, act_rows, lengths, tasks = [], [], [], []
    for i in range(data.n_episodes):
        a0, o0, n = data.act_offsets[i], data.obs_offsets[i], int(data.lengths[i])
        for s in range(0, n, chunk):
            e = min(s + chunk, n)
            act_rows.append(np.arange(a0 + s, a0 + e))
            obs_rows.append(np.arange(o0 + s, o0 + e + 1))  # o_s .. o_e: T+1 rows
            lengths.append(e - s)
            tasks.append(data.tasks[i])
    act, obs = np.concatenate(act_rows), np.concatenate(obs_rows)
    return Demonstrations(
        data.observations[obs],
        data.actions[act],
        data.targets[act],
        data.subgoals[act],
        np.array(lengths, np.int64),
        np.stack(tasks),
        data.obs_dim,
        data.packed,
        dict(data.metadata, history_chunk=chunk),
    )


class ResetEvery:
    """A base model whose history is cut every ``n`` steps: in closed loop it sees at most the
    last ``n`` steps, as a model trained on :func:`chunked` data. With ``copies`` > 1 it keeps
    that many states, restarted at staggered steps, and acts from the one with the longest
    history (between ``n - n // copies`` and ``n`` steps once past the start; ``copies`` times the
    compute). ``rollout`` steps all rows together from step 0, so one counter serves them all."""

    def __init__(self, model, n: int, copies: int = 1):
        if not 1 <= copies <= n:
            raise ValueError(f"copies must be in 1..{n}, got {copies}")
        self.model, self.n, self.t = model, n, 0
        self.offsets = [k * n // copies for k in range(copies)]
        self.states: list | None = None

    def __getattr__(self, name):
        return getattr(self.model, name)

    def step(self, obs, state, **kw):
        del state  # one state per copy instead
        rows = torch.ones(len(obs), dtype=torch.bool)
        if self.states is None:
            self.states = [self.model.init_state(len(obs)) for _ in self.offsets]
        ages, heads = [], []
        for off, st in zip(self.offsets, self.states):
            if self.t >= off and (self.t - off) % self.n == 0:
                self.model.reset_state(st, rows)
            ages.append(self.t if self.t < off else (self.t - off) % self.n)
            heads.append(self.model.step(obs, st, **kw))
        self.t += 1
        return heads[int(np.argmax(ages))]


@torch.no_grad()
def held_out_nll(model, data: Demonstrations, chunk: int) -> dict[str, float]:
    """Action NLL and obs loss per step on ``data``, each episode cut into pieces of ``chunk``
    steps first (0: whole episodes), so that every model is scored on the history it acts on."""
    pieces = chunked(data, chunk) if chunk else data
    nll = obs = steps = 0.0
    for start in range(0, pieces.n_episodes, 256):
        b = pieces.batch(np.arange(start, min(start + 256, pieces.n_episodes)))
        mask = torch.as_tensor(b["mask"])
        out = model.loss(torch.as_tensor(b["obs"]), torch.as_tensor(b["actions"]), mask)
        n = float(mask.sum())
        nll, obs, steps = nll + float(out.action_nll) * n, obs + float(out.obs_loss) * n, steps + n
    return {"action_nll": nll / steps, "obs_loss": obs / steps, "steps": int(steps)}


def acting(model, reset_every: int, copies: int):
    """The model as it acts in one rollout: with its history cut if ``reset_every``."""
    return ResetEvery(model, reset_every, copies) if reset_every else model


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("data")
    d.add_argument("--data", nargs="+", required=True, help="datasets, concatenated in this order")
    d.add_argument("--chunk", type=int, required=True, help="steps per piece")
    d.add_argument("--out", required=True)
    n = sub.add_parser("nll", help="held-out NLL of models, each on its own history length")
    n.add_argument("--data", required=True, help="episodes none of the models was trained on")
    n.add_argument("--models", nargs="+", required=True)
    n.add_argument("--chunks", type=int, nargs="+", required=True, help="one per model; 0 = all")
    n.add_argument("--out", default="")
    f = sub.add_parser("free-play")
    f.add_argument("--model", required=True)
    f.add_argument("--env", default="AntPinpadRoutes-v1")
    f.add_argument("--episodes", type=int, default=200)
    f.add_argument("--seeds", type=int, nargs="+", default=[0], help="one evaluation per seed")
    f.add_argument("--act", choices=ACTS, default="sample")
    f.add_argument("--reset-every", type=int, default=0, help="forget the history every N steps")
    f.add_argument("--copies", type=int, default=1, help="staggered states (see ResetEvery)")
    f.add_argument("--out", default="")
    args = p.parse_args()
    if args.cmd == "data":
        parts = [Demonstrations.load(path) for path in args.data]
        data = parts[0] if len(parts) == 1 else Demonstrations.concatenate(parts)
        print(chunked(data, args.chunk).save(args.out))
        return
    torch.set_num_threads(1)
    if args.cmd == "nll":
        if len(args.chunks) != len(args.models):
            p.error("give one --chunks value per model")
        data = Demonstrations.load(args.data)
        rows = [
            {"model": m, "chunk": c, **held_out_nll(load_base_model(m).eval(), data, c)}
            for m, c in zip(args.models, args.chunks)
        ]
        print(json.dumps(rows, indent=1))
        if args.out:
            atomic_write_json(args.out, {"data": args.data, "models": rows})
        return
    model = load_base_model(args.model).eval()
    runs = []
    for seed in args.seeds:
        base = acting(model, args.reset_every, args.copies)
        r = env_free_play(base, args.env, n_episodes=args.episodes, seed=seed, act=args.act)
        runs.append({"seed": seed, **r})
    report = {
        "model": args.model,
        "env_id": args.env,
        "act": args.act,
        "reset_every": args.reset_every,
        "copies": args.copies,
        "episodes_per_seed": args.episodes,
        "task_consistent_mean": float(np.mean([r["task_consistent"] for r in runs])),
        "runs": runs,
    }
    print(json.dumps(report, indent=1))
    if args.out:
        atomic_write_json(args.out, report)


if __name__ == "__main__":
    main()
