"""Probe a frozen base model: is the subgoal linearly decodable, and linearly controllable?

    internal-rl probe --base-model pinpad-transformer --out runs/probe

(a) Linear probes (paper Fig. 3, §C.2): softmax regression from the residual stream e_{t,l} of
    every layer l to the ground-truth abstract subgoal, on held-out expert episodes.
(b) Ground-truth linear controllers (paper Fig. 4, §C.3): for each layer l, one low-rank
    controller U^(g) per abstract subgoal g, trained with the base model frozen to predict the
    expert's actions when e_{t,l} <- e_{t,l} + U^(g_t) e_{t,l} with the true label g_t (clean
    data, λ = 0). Evaluation: activate the controllers in the correct order on the held-out
    post-training task 0-1-2-3-4-5-6-7-0-1-2-3 in the real env (the env's own ground-truth
    subgoal selects U) and count successes.

Writes ``<out>/probe.json`` and two plots: probe accuracy vs layer, controller success vs layer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from agents import diagnostics
from agents.common import atomic_write_json, pick_device, seed_everything
from agents.discover import cache_activations
from agents.rollout import rollout
from internal_rl_gym.envs.grid_expert import collect_grid_demonstrations
from internal_rl_gym.hub import load_base_model
from internal_rl_gym.models import SubgoalControllers
from internal_rl_gym.tasks import N_ABSTRACT_SUBGOALS


@dataclass
class ProbeConfig:
    base_model: str = field(
        default="pinpad-transformer",
        metadata={"help": "base model: embedded default name, local directory or Hub repo id"},
    )
    out: str = field(default="runs/probe", metadata={"help": "output directory"})
    layers: list[int] = field(
        default_factory=list, metadata={"help": "layers for controllers (default: all 0..L)"}
    )
    probe_episodes: int = field(default=1500, metadata={"help": "held-out episodes for probes"})
    controller_episodes: int = field(default=4096, metadata={"help": "clean training episodes"})
    controller_steps: int = field(default=800, metadata={"help": "optimiser steps per layer"})
    batch_size: int = field(default=64, metadata={"help": "episodes per batch"})
    lr: float = field(default=1e-3, metadata={"help": "AdamW learning rate (paper 1e-3)"})
    weight_decay: float = field(default=0.03, metadata={"help": "AdamW weight decay"})
    rank: int = field(default=16, metadata={"help": "controller rank (0 = full)"})
    eval_episodes: int = field(default=256, metadata={"help": "env episodes per layer"})
    task: str = field(default="post", metadata={"help": "evaluation task"})
    seed: int = field(default=0, metadata={"help": "random seed"})
    device: str = field(default="auto", metadata={"help": "cpu, cuda or auto"})


def train_subgoal_controllers(
    base,
    data,
    layer: int,
    steps: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    rank: int,
    seed: int,
) -> tuple[SubgoalControllers, float]:
    """Ground-truth controllers at ``layer`` (base frozen); returns them and the final NLL.

    The frozen layers below ``layer`` are unaffected by the controller, so their output is
    computed once for all episodes; each optimiser step runs only the blocks above it.
    """
    torch.manual_seed(seed)
    ctrl = SubgoalControllers(base.d_model, N_ABSTRACT_SUBGOALS, rank).to(base.device)
    opt = torch.optim.AdamW(ctrl.parameters(), lr=lr, weight_decay=weight_decay)
    cache = cache_activations(base, data, layer)
    rng = np.random.default_rng(seed)
    order = np.argsort(cache.lengths)
    buckets = np.array_split(order, max(1, len(order) // batch_size))
    nll = float("nan")
    for _ in range(steps):
        idx = buckets[rng.integers(len(buckets))]
        e, act, mask = (x.to(base.device) for x in cache.batch(idx))
        t = e.shape[1]
        g = torch.as_tensor(cache.subgoals[idx, :t], device=base.device)
        e_top = base.run_layers(ctrl(e, g).to(base.dtype), layer, base.n_layers)
        logp = torch.log_softmax(base.heads(e_top, predict_obs=False).action_logits.float(), -1)
        nll_t = -logp.gather(-1, act[..., None])[..., 0]
        loss = (nll_t * mask).sum() / mask.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        nll = loss.item()
    return ctrl.eval(), nll


def evaluate_controllers(
    base,
    ctrl: SubgoalControllers | None,
    layer: int,
    task: str,
    n_episodes: int,
    seed: int,
    greedy: bool = False,
) -> float:
    """Success rate on ``task`` when the controller of the env's current true subgoal is active
    at every step (``ctrl=None``: the base model alone). One batched forward per step."""
    envs = [gym.make("GridPinpad-v0", task=task) for _ in range(n_episodes)]

    def control(infos):
        if ctrl is None:
            return None
        g = torch.as_tensor([max(0, i["subgoal"]) for i in infos], device=base.device)
        return (lambda e: ctrl(e, g)), layer

    gen = torch.Generator().manual_seed(seed)
    seeds = [seed + i for i in range(n_episodes)]
    return float(rollout(base, envs, seeds, gen, control=control, greedy=greedy).success.mean())


def probe(cfg: ProbeConfig) -> dict:
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    base = load_base_model(cfg.base_model).to(device)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    held = collect_grid_demonstrations(cfg.probe_episodes, "pretraining", seed=cfg.seed + 7)
    probe_acc = diagnostics.probe_accuracy_by_layer(base, held, n_episodes=cfg.probe_episodes)
    print("probe accuracy by layer:", " ".join(f"{a:.3f}" for a in probe_acc))
    clean = collect_grid_demonstrations(cfg.controller_episodes, "pretraining", seed=cfg.seed + 11)
    layers = cfg.layers or list(range(base.n_layers + 1))
    no_control = evaluate_controllers(base, None, 0, cfg.task, cfg.eval_episodes, cfg.seed)
    results = []
    for layer in layers:
        ctrl, nll = train_subgoal_controllers(
            base,
            clean,
            layer,
            cfg.controller_steps,
            cfg.batch_size,
            cfg.lr,
            cfg.weight_decay,
            cfg.rank,
            cfg.seed,
        )
        sampled = evaluate_controllers(base, ctrl, layer, cfg.task, cfg.eval_episodes, cfg.seed)
        greedy = evaluate_controllers(
            base, ctrl, layer, cfg.task, cfg.eval_episodes, cfg.seed, greedy=True
        )
        results.append(
            {"layer": layer, "train_nll": nll, "success": sampled, "success_greedy": greedy}
        )
        print(
            f"layer {layer}: controller NLL {nll:.3f}, success on {cfg.task} {sampled:.3f} (greedy {greedy:.3f})"
        )
    report = {
        "base_model": cfg.base_model,
        "n_layers": base.n_layers,
        "probe_accuracy_by_layer": probe_acc,
        "probe_majority_baseline": diagnostics.majority_baseline(held, cfg.probe_episodes),
        "probe_episodes": cfg.probe_episodes,
        "controllers": results,
        "task": cfg.task,
        "eval_episodes": cfg.eval_episodes,
        "success_without_control": no_control,
        "config": cfg.__dict__,
        "seconds": time.time() - t0,
    }
    atomic_write_json(out / "probe.json", report)
    plot(report, out)
    return report


def plot(report: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    acc = report["probe_accuracy_by_layer"]
    axes[0].plot(range(len(acc)), acc, marker="o")
    axes[0].axhline(
        report["probe_majority_baseline"], color="grey", linestyle=":", label="majority class"
    )
    axes[0].set_xlabel("layer (0 = embedding)")
    axes[0].set_ylabel("held-out probe accuracy")
    axes[0].set_title("subgoal decodability (Fig. 3)")
    axes[0].legend()
    ctrl = report["controllers"]
    axes[1].plot(
        [c["layer"] for c in ctrl], [c["success"] for c in ctrl], marker="o", label="sampled"
    )
    axes[1].plot(
        [c["layer"] for c in ctrl], [c["success_greedy"] for c in ctrl], marker="s", label="greedy"
    )
    axes[1].axhline(
        report["success_without_control"], color="grey", linestyle=":", label="no control"
    )
    axes[1].set_xlabel("controlled layer")
    axes[1].set_ylabel(f"success on task {report['task']}")
    axes[1].set_title("ground-truth linear controllers (Fig. 4)")
    axes[1].set_ylim(-0.02, 1.02)
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(out / "probe.png", dpi=120)
    plt.close(fig)


def run(cfg: ProbeConfig) -> None:
    probe(cfg)
