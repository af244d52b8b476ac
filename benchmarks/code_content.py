"""What do a metacontroller's codes carry? The subgoal, or where the next target lies?

    python benchmarks/code_content.py --metacontroller runs/discover/alpha_0.1/model \
        --out benchmarks/results/code_content.json

On held-out clean expert episodes of the pretraining tasks, takes the integrated code z_t
(posterior means; for categorical codes the one-hot code) at the first step and at every switch
(β_t > 0.5), and probes it linearly (trained on 70% of the episodes, tested on the rest) for:

* ``subgoal``: the true abstract subgoal (colour pair) pursued from there: what internal RL
  needs a code to name (context-agnostic "go to pair k");
* ``quadrant`` / ``direction``: where the current target colour lies relative to the agent (4
  quadrants; the major direction): an egocentric, layout-dependent instruction;
* ``first_move``: the expert's next action;
* ``transition``: the subgoal relative to the previous one (+1, +2, -1; the first segment apart).

Each with its chance level (the majority class on the test split). For categorical codes it
also reports the mutual information (nats) between the code and each label, the table of codes
against true subgoals and, with ``--steer-tasks``, the success of those tasks steered by the code
most often inferred for each true subgoal (an oracle made of discovered controllers). A
``posterior="hindsight"`` metacontroller reads its segments from ``--segments-from``
(default ``pinpad-segmenter``).
"""

from __future__ import annotations

import argparse
import collections
import sys

import gymnasium as gym
import numpy as np
import torch
from internal_rl_agents.common import atomic_write_json
from internal_rl_agents.data_sources import stream_layers
from internal_rl_agents.diagnostics import train_linear_probe
from internal_rl_agents.discover import segment_starts as discover_segment_starts
from internal_rl_agents.rollout import rollout

from internal_rl_gym.envs.grid_expert import collect_grid_demonstrations
from internal_rl_gym.hub import load_base_model, load_metacontroller
from internal_rl_gym.tasks import N_ABSTRACT_SUBGOALS

LABELS = ("subgoal", "quadrant", "direction", "first_move", "transition")


@torch.no_grad()
def codes_and_gate(meta, base, ep: dict, segmenter=None) -> tuple[np.ndarray, np.ndarray]:
    """(z, β) of one episode, posterior means. A hindsight metacontroller's codes are those of
    the segments ``segmenter`` marks, and β is that segmentation."""
    n = len(ep["actions"])
    if meta.posterior != "hindsight":
        obs = torch.as_tensor(ep["obs"][:n], dtype=torch.float32)[None]
        out = meta(base.run_layers(base.embed(obs), 0, meta.layer), sample=False)
        return out.z[0].numpy(), out.beta[0].numpy()
    obs = torch.as_tensor(ep["obs"][: n + 1], dtype=torch.float32)[None]
    layers = sorted({meta.layer, meta.hindsight_layer, segmenter.layer})
    streams = stream_layers(base, obs, layers)
    mask = torch.ones(1, n, dtype=torch.bool)
    starts = discover_segment_starts(segmenter, streams[segmenter.layer][:, :-1], mask)
    e = streams[meta.layer][:, :-1]
    out = meta.hindsight_forward(e, streams[meta.hindsight_layer], starts, mask, sample=False)
    return out.z[0].numpy(), starts[0].float().numpy()


def segment_starts(
    meta, base, data, segmenter=None
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Codes at segment starts, their labels, and the episode of each."""
    codes, labels, episodes = [], collections.defaultdict(list), []
    for i in range(data.n_episodes):
        ep = data.episode(i)
        n = len(ep["actions"])
        z, beta = codes_and_gate(meta, base, ep, segmenter)
        grid = ep["obs"][:n].reshape(n, 7, 7, -1)
        sg, target = ep["subgoals"], ep["targets"]
        for t in [0] + [t for t in range(1, n) if beta[t] > 0.5]:
            agent = np.argwhere(grid[t, :, :, -1])[0]
            dr, dc = np.argwhere(grid[t, :, :, 4 + target[t]])[0] - agent
            labels["subgoal"].append(int(sg[t]))
            labels["quadrant"].append(int(dr > 0) * 2 + int(dc > 0))
            vertical = abs(dr) >= abs(dc)
            labels["direction"].append((0 if dr < 0 else 2) if vertical else (3 if dc < 0 else 1))
            labels["first_move"].append(int(ep["actions"][t]))
            labels["transition"].append(int((sg[t] - sg[t - 1]) % 4) if t > 0 else 0)
            codes.append(z[t])
            episodes.append(i)
    return np.stack(codes), {k: np.asarray(v) for k, v in labels.items()}, np.asarray(episodes)


def steered_success(base, meta, code_of: np.ndarray, task: str, n: int, seed: int) -> float:
    """Success on ``task`` when, at every step, the controller of the code most often inferred
    for the env's current true subgoal steers the base model (actions sampled), ``n``
    episodes."""
    envs = [gym.make("GridPinpad-v0", task=task) for _ in range(n)]
    u_all = meta.decode(torch.eye(meta.n_z))  # every code's controller, decoded once

    def control(infos):
        k = torch.as_tensor([code_of[max(0, i["subgoal"])] for i in infos])
        u = tuple(x[k] for x in u_all) if isinstance(u_all, tuple) else u_all[k]
        return (lambda e: meta.apply_controller(e, u)), meta.layer

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        result = rollout(base, envs, [seed + i for i in range(n)], gen, control=control)
    for env in envs:
        env.close()
    return float(result.success.mean())


def probe(x: np.ndarray, y: np.ndarray, train: np.ndarray) -> tuple[float, float]:
    n_classes = int(y.max()) + 1
    xt = torch.as_tensor(x, dtype=torch.float32)
    mean, std = xt[train].mean(0), xt[train].std(0) + 1e-6
    xt = (xt - mean) / std
    with torch.enable_grad():
        p = train_linear_probe(xt[train], y[train], n_classes, steps=500)
    with torch.no_grad():
        acc = float((p(xt[~train]).argmax(-1).numpy() == y[~train]).mean())
    chance = float(np.bincount(y[~train], minlength=n_classes).max() / (~train).sum())
    return acc, chance


def mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    n = len(a)
    ca, cb = collections.Counter(a.tolist()), collections.Counter(b.tolist())
    cab = collections.Counter(zip(a.tolist(), b.tolist()))
    return float(sum(c / n * np.log(c * n / (ca[x] * cb[y])) for (x, y), c in cab.items()))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base-model", default="pinpad-transformer")
    p.add_argument("--metacontroller", required=True)
    p.add_argument("--episodes", type=int, default=500)
    p.add_argument("--seed", type=int, default=123)
    p.add_argument(
        "--segments-from",
        default="pinpad-segmenter",
        help="hindsight metacontrollers: the metacontroller whose gate marks the segments "
        "(as in `internal-rl discover --segments-from`)",
    )
    p.add_argument(
        "--steer-tasks",
        nargs="*",
        default=[],
        help="categorical codes: also steer these tasks with, for each true subgoal, the code "
        "most often inferred for it (an oracle made of discovered controllers)",
    )
    p.add_argument("--steer-episodes", type=int, default=256)
    p.add_argument("--out", default="")
    args = p.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    base = load_base_model(args.base_model)
    meta = load_metacontroller(args.metacontroller, base_model=base)
    segmenter = None
    if meta.posterior == "hindsight":
        segmenter = load_metacontroller(args.segments_from, base_model=base)
    data = collect_grid_demonstrations(args.episodes, "pretraining", seed=args.seed)
    codes, labels, episodes = segment_starts(meta, base, data, segmenter)
    train = episodes < int(0.7 * args.episodes)
    report: dict = {
        "command": "python benchmarks/code_content.py " + " ".join(sys.argv[1:]),
        "metacontroller": args.metacontroller,
        "layer": int(meta.layer),
        "code": getattr(meta, "code", "gaussian"),
        "segments": len(codes),
        "segments_per_episode": len(codes) / args.episodes,
        "probe": {},
    }
    for name in LABELS:
        acc, chance = probe(codes, labels[name], train)
        report["probe"][name] = {"accuracy": acc, "chance": chance}
        print(f"{name:11s} probe {acc:.3f} (chance {chance:.3f})")
    if report["code"] == "categorical":
        index = codes.argmax(-1)
        report["mutual_information_nats"] = {
            name: mutual_information(index, labels[name]) for name in LABELS
        }
        report["code_entropy_nats"] = mutual_information(index, index)
        print("mutual information (nats):", report["mutual_information_nats"])
        table = np.zeros((meta.n_z, N_ABSTRACT_SUBGOALS), dtype=np.int64)
        np.add.at(table, (index, labels["subgoal"]), 1)
        report["code_by_subgoal"] = table.tolist()  # rows: codes, columns: true subgoals
        code_of = table.argmax(0)
        report["code_of_subgoal"] = code_of.tolist()
        report["steered_success"] = {
            task: steered_success(base, meta, code_of, task, args.steer_episodes, args.seed)
            for task in args.steer_tasks
        }
        for task, rate in report["steered_success"].items():
            print(f"{task}: success {rate:.3f} steered by the code of each true subgoal")
    if args.out:
        atomic_write_json(args.out, report)


if __name__ == "__main__":
    main()
