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

Writes ``<out>/probe.json``, the trained controllers (``controllers_layer<l>.safetensors``, a
:class:`SubgoalControllers` state dict) and two plots: probe accuracy vs layer, controller
success vs layer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from safetensors.torch import load_file, save_file

from internal_rl_gym.data import Demonstrations
from internal_rl_gym.envs.grid_expert import collect_grid_demonstrations
from internal_rl_gym.hub import load_base_model, model_fingerprint
from internal_rl_gym.hub import load_subgoal_controllers as hub_load_subgoal_controllers
from internal_rl_gym.models import SubgoalControllers
from internal_rl_gym.tasks import ANT_PRETRAINING_TASKS, N_ABSTRACT_SUBGOALS

from . import diagnostics
from .common import (
    atomic_save_pretrained,
    atomic_write_bytes,
    atomic_write_json,
    autocast,
    check_precision,
    pick_device,
    progress_bar,
    seed_everything,
    set_threads,
)
from .data_sources import EpisodePool, fresh_activation_batches, residual_stream_batches
from .rollout import check_act, rollout

#: Tasks that separate the post task's two difficulties: one pair; one seen (+2 / -1) or unseen
#: (+1) transition; six pairs made only of seen transitions.
DIAGNOSTIC_TASKS = (
    "0-1",
    "0-1-4-5",
    "0-1-6-7",
    "0-1-2-3",
    "0-1-4-5-0-1-4-5-0-1-4-5",
    "0-1-6-7-4-5-2-3-0-1-6-7",
)
#: The ant's (a subgoal is one colour): one held-out +1 transition, one seen +2 transition.
ANT_DIAGNOSTIC_TASKS = ("0-1", "0-2")


@dataclass
class ProbeConfig:
    base_model: str = field(
        default="pinpad-transformer",
        metadata={"help": "base model: embedded default name, local directory or Hub repo id"},
    )
    out: str = field(default="runs/probe", metadata={"help": "output directory"})
    data: str = field(
        default="",
        metadata={
            "help": "clean demonstrations (.npz from `internal-rl collect --expert-mode mean`) "
            "for models of envs other than the grid (the ant); empty = fresh GridPinpad "
            "expert episodes"
        },
    )
    layers: list[int] = field(
        default_factory=list, metadata={"help": "layers for controllers (default: all 0..L)"}
    )
    probe_episodes: int = field(default=1500, metadata={"help": "held-out episodes for probes"})
    controller_steps: int = field(default=3000, metadata={"help": "optimiser steps per layer"})
    batch_size: int = field(
        default=64, metadata={"help": "fresh clean expert episodes per step (paper: 512)"}
    )
    lr: float = field(default=3e-3, metadata={"help": "AdamW learning rate (paper 1e-3)"})
    weight_decay: float = field(default=0.03, metadata={"help": "AdamW weight decay"})
    rank: int = field(default=16, metadata={"help": "controller rank (0 = full)"})
    eval_episodes: int = field(default=256, metadata={"help": "env episodes per layer"})
    task: str = field(default="post", metadata={"help": "evaluation task"})
    diagnostic_tasks: list[str] = field(
        default_factory=list,
        metadata={
            "help": "more tasks to evaluate the controllers on (split transitions/length; "
            "default: a per-env set)"
        },
    )
    act: str = field(
        default="sample",
        metadata={
            "help": "how the base model reads primitive actions from its head in free play, "
            "without control, on the pretraining tasks and the diagnostic tasks: sample "
            "(the paper), greedy, or mean (continuous heads); the main task is reported "
            "in every mode"
        },
    )
    seed: int = field(default=0, metadata={"help": "random seed"})
    device: str = field(default="auto", metadata={"help": "cpu, cuda or auto"})
    threads: int = field(default=0, metadata={"help": "torch CPU threads (0 = torch default)"})
    precision: str = field(
        default="fp32",
        metadata={"help": "fp32, or bf16: bfloat16 autocast while training the controllers"},
    )
    data_workers: int = field(
        default=0,
        metadata={
            "help": "processes generating the controllers' fresh episodes (0 = in this "
            "process); for large batches on a GPU"
        },
    )


def new_subgoal_controllers(base, rank: int, layer: int) -> SubgoalControllers:
    """Untrained controllers for ``base`` at ``layer``, recording the base model they steer."""
    return SubgoalControllers(
        base.d_model,
        N_ABSTRACT_SUBGOALS,
        rank,
        layer=layer,
        base_model_name=base.config.name,
        base_model_fingerprint=model_fingerprint(base),
    )


def train_subgoal_controllers(
    base,
    batches: Iterator[dict[str, torch.Tensor]],
    layer: int,
    steps: int,
    lr: float,
    weight_decay: float,
    rank: int,
    seed: int,
    precision: str = "fp32",
    step_weights: Callable[[dict[str, torch.Tensor]], torch.Tensor] | None = None,
) -> tuple[SubgoalControllers, float]:
    """Ground-truth controllers at ``layer`` (base frozen); returns them and the mean NLL of the
    last 10% of steps.

    ``step_weights(batch)`` gives (B, T) loss weights, zero at padding (default: the mask, the
    paper's mean NLL; research/scripts/weighted_controllers.py stresses segment starts).

    ``batches`` yields the residual stream at ``layer`` with actions, mask and subgoals (see
    :func:`fresh_activation_batches`). Use fresh episodes: on a fixed set of 512 the controllers
    reached training NLL 0.14 (below the expert floor) and held-out NLL 0.43, worse than no
    control (benchmarks/controller_diagnostics.py).
    """
    torch.manual_seed(seed)
    ctrl = new_subgoal_controllers(base, rank, layer).to(base.device)
    opt = torch.optim.AdamW(ctrl.parameters(), lr=lr, weight_decay=weight_decay)
    tail: list[float] = []

    for step in progress_bar(range(steps), desc=f"controllers at layer {layer}"):
        b = next(batches)
        e, g, act, mask = b["e"], b["subgoals"], b["actions"], b["mask"]
        with autocast(base.device, precision):
            e_top = base.run_layers(ctrl(e, g), layer, base.n_layers)
            head = base.heads(e_top, predict_obs=False)
        nll_t = -action_log_prob(base, head, act)
        w = mask.float() if step_weights is None else step_weights(b)
        loss = (nll_t * w).sum() / w.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step >= steps - max(1, steps // 10):
            tail.append(loss.item())
    return ctrl.eval(), float(np.mean(tail)) if tail else float("nan")


class ScaledControllers(torch.nn.Module):
    """``ê = e + γ U^(g) e``: trained controllers with their push scaled by ``gain`` (γ = 1: as
    trained). A diagnostic, not the paper's method (research/scripts/controller_gain.py)."""

    def __init__(self, ctrl: SubgoalControllers, gain: float) -> None:
        super().__init__()
        self.ctrl, self.gain = ctrl, gain

    def forward(self, e: torch.Tensor, subgoal: torch.Tensor) -> torch.Tensor:
        return e + self.gain * (self.ctrl(e, subgoal) - e)


def load_subgoal_controllers(path: str | Path, base, layer: int = -1) -> SubgoalControllers:
    """Controllers saved by :func:`probe` for ``base``: a checkpoint directory
    (``controllers_layer<l>/``, loaded and checked by ``internal_rl_gym.hub``) or a bare
    ``controllers_layer<l>.safetensors`` state dict (rank read from the file, ``layer`` given)."""
    path = Path(path)
    if path.is_dir():
        return hub_load_subgoal_controllers(path, base_model=base).to(base.device)
    if not path.is_file():
        raise FileNotFoundError(
            f"No controllers at {path}: `internal-rl probe` writes them as "
            "<out>/controllers_layer<l>.safetensors."
        )
    state = load_file(str(path))
    rank = int(state["a"].shape[-1]) if "a" in state else 0
    ctrl = new_subgoal_controllers(base, rank, layer)
    try:
        ctrl.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(
            f"The controllers in {path} do not fit this base model (d_model={base.d_model}): "
            "load the base model they were trained on."
        ) from err
    return ctrl.to(base.device).eval()


def action_log_prob(base, head, actions: torch.Tensor) -> torch.Tensor:
    """log p(a_t) under the base model's action head (categorical or Gaussian), in float32."""
    head = type(head)(**{k: v if v is None else v.float() for k, v in vars(head).items()})
    return base.action_distribution(head, validate_args=False).log_prob(actions)


@torch.no_grad()
def _controlled_forward(base, ctrl: SubgoalControllers | None, layer: int, b: dict):
    """The base model teacher-forced on a padded episode batch, with the controller of each
    step's true subgoal at ``layer`` (``ctrl=None``: the base model alone)."""
    obs = torch.as_tensor(b["obs"][:, :-1], device=base.device)
    g = torch.as_tensor(b["subgoals"], device=base.device).clamp(min=0)  # -1 = padding
    intervention = (lambda e: ctrl(e, g)) if ctrl is not None else None
    return base(obs, intervention=intervention, layer=layer if ctrl is not None else None)


def controlled_log_probs(
    base, ctrl: SubgoalControllers | None, layer: int, b: dict[str, np.ndarray]
) -> torch.Tensor:
    """(B, T, n_actions) teacher-forced action log-probabilities on a padded episode batch, with
    the controller of each step's true subgoal at ``layer`` (``ctrl=None``: the base model alone).
    Discrete actions only."""
    return torch.log_softmax(_controlled_forward(base, ctrl, layer, b).action_logits.float(), -1)


@torch.no_grad()
def controlled_nll(
    base, ctrl: SubgoalControllers | None, layer: int, data, chunk: int = 256
) -> float:
    """Teacher-forced action NLL on held-out episodes, with or without the controllers."""
    total, steps = 0.0, 0.0
    for s in range(0, data.n_episodes, chunk):
        b = data.batch(np.arange(s, min(data.n_episodes, s + chunk)))
        out = _controlled_forward(base, ctrl, layer, b)
        act = torch.as_tensor(b["actions"], device=base.device)
        mask = torch.as_tensor(b["mask"], device=base.device)
        total -= float((action_log_prob(base, out, act) * mask).sum())
        steps += float(mask.sum())
    return total / max(1.0, steps)


def evaluate_controllers(
    base,
    ctrl: SubgoalControllers | None,
    layer: int,
    task: str,
    n_episodes: int,
    seed: int,
    act: str = "sample",
    env_id: str = "GridPinpad-v0",
) -> float:
    """Success rate on ``task`` when the controller of the env's current true subgoal is active
    at every step (``ctrl=None``: the base model alone). One batched forward per step."""
    envs = [gym.make(env_id, task=task) for _ in range(n_episodes)]

    def control(infos):
        if ctrl is None:
            return None
        g = torch.as_tensor([max(0, i["subgoal"]) for i in infos], device=base.device)
        return (lambda e: ctrl(e, g)), layer

    gen = torch.Generator().manual_seed(seed)
    seeds = [seed + i for i in range(n_episodes)]
    success = rollout(base, envs, seeds, gen, control=control, act=act).success
    for env in envs:
        env.close()
    return float(success.mean())


def probe(cfg: ProbeConfig) -> dict:
    check_precision(cfg.precision)
    set_threads(cfg.threads)
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    base = load_base_model(cfg.base_model).to(device)
    check_act(cfg.act, base)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    if cfg.data:
        dataset = Demonstrations.load(cfg.data)
        env_id = dataset.metadata.get("env_id", "GridPinpad-v0")
        train, held = dataset.split(max(1, dataset.n_episodes // 5))
        held_clean = held
    else:
        env_id, train = "GridPinpad-v0", None
        held = collect_grid_demonstrations(cfg.probe_episodes, "pretraining", seed=cfg.seed + 7)
        held_clean = collect_grid_demonstrations(512, "pretraining", seed=cfg.seed + 13)
    grid = env_id == "GridPinpad-v0"
    diagnostic_tasks = cfg.diagnostic_tasks or list(
        DIAGNOSTIC_TASKS if grid else ANT_DIAGNOSTIC_TASKS
    )
    probe_acc = diagnostics.probe_accuracy_by_layer(base, held, n_episodes=cfg.probe_episodes)
    print("probe accuracy by layer:", " ".join(f"{a:.3f}" for a in probe_acc))
    nll_without = controlled_nll(base, None, 0, held_clean)
    layers = cfg.layers or list(range(base.n_layers + 1))
    no_control = evaluate_controllers(
        base, None, 0, cfg.task, cfg.eval_episodes, cfg.seed, act=cfg.act, env_id=env_id
    )
    # Behaviour cloning: the base model acting from its own action head, no controller. The
    # task is not in the observation, so the measure is completing *some* pretraining task.
    if grid:
        free_play = diagnostics.grid_free_play(
            base, n_episodes=cfg.eval_episodes, seed=cfg.seed, greedy=cfg.act == "greedy"
        )
    else:
        free_play = diagnostics.env_free_play(
            base,
            env_id,
            ANT_PRETRAINING_TASKS,
            n_episodes=cfg.eval_episodes,
            seed=cfg.seed,
            act=cfg.act,
        )
    bc_pretraining = free_play["task_consistent"]
    print(f"base model alone: completes a pretraining task in {bc_pretraining:.3f} of episodes")
    results: list[dict] = []

    def write_report() -> dict:
        """probe.json with the layers done so far (rewritten after each, so a run stopped
        early keeps them)."""
        report = {
            "base_model": cfg.base_model,
            "env_id": env_id,
            "n_layers": base.n_layers,
            "probe_accuracy_by_layer": probe_acc,
            "probe_majority_baseline": diagnostics.majority_baseline(held, cfg.probe_episodes),
            "probe_episodes": cfg.probe_episodes,
            "controllers": results,
            "task": cfg.task,
            "act": cfg.act,
            "eval_episodes": cfg.eval_episodes,
            "success_without_control": no_control,
            "bc_free_play": free_play,
            "heldout_nll_without_control": nll_without,
            "metrics": card_metrics(probe_acc, results, bc_pretraining, cfg.task, cfg.act),
            "config": cfg.__dict__,
            "seconds": time.time() - t0,
        }
        atomic_write_json(out / "probe.json", report)
        return report

    report = write_report()
    for layer in layers:
        if train is None:
            batches = fresh_activation_batches(
                base,
                layer,
                "pretraining",
                16 * cfg.batch_size,
                cfg.batch_size,
                cfg.seed + 11,
                workers=cfg.data_workers,
            )
        else:
            pool = EpisodePool(train, cfg.batch_size, cfg.seed + 11)
            batches = residual_stream_batches(base, layer, iter(pool.next_batch, None))
        ctrl, nll = train_subgoal_controllers(
            base,
            batches,
            layer,
            cfg.controller_steps,
            cfg.lr,
            cfg.weight_decay,
            cfg.rank,
            cfg.seed,
            cfg.precision,
        )
        batches.close()  # stops any data workers before the evaluation
        held_nll = controlled_nll(base, ctrl, layer, held_clean)
        atomic_write_bytes(
            out / f"controllers_layer{layer}.safetensors",
            lambda tmp, ctrl=ctrl: save_file(ctrl.state_dict(), str(tmp)),
        )
        # the same controllers as a loadable checkpoint (the oracle env's `controllers=`)
        atomic_save_pretrained(ctrl, out / f"controllers_layer{layer}")

        def success(task: str, act: str = cfg.act, ctrl=ctrl, layer=layer) -> float:
            return evaluate_controllers(
                base, ctrl, layer, task, cfg.eval_episodes, cfg.seed, act=act, env_id=env_id
            )

        sampled, greedy = success(cfg.task, act="sample"), success(cfg.task, act="greedy")
        # a continuous head also acting with its mean action (a mixture's Σ π μ)
        mean = {}
        if base.action_type == "continuous":
            mean = {"success_mean": success(cfg.task, act="mean")}
        # the same controllers on the pretraining tasks: steerability without the held-out
        # task's new (+1) transitions and length
        in_dist = success("pretraining")
        by_task = {t: success(t) for t in diagnostic_tasks}
        results.append(
            {
                "layer": layer,
                "train_nll": nll,
                "heldout_nll": held_nll,
                "success": sampled,
                "success_greedy": greedy,
                **mean,
                "success_pretraining_tasks": in_dist,
                "success_by_task": by_task,
            }
        )
        print(
            f"layer {layer}: controller NLL train {nll:.3f} held-out {held_nll:.3f} "
            f"(no control {nll_without:.3f}), success on {cfg.task} {sampled:.3f} "
            f"(greedy {greedy:.3f}"
            + (f", mean action {mean['success_mean']:.3f}" if mean else "")
            + f"), on the pretraining tasks {in_dist:.3f}"
        )
        print("  by task: " + ", ".join(f"{t} {v:.3f}" for t, v in by_task.items()))
        report = write_report()
    plot(report, out)
    return report


def card_metrics(
    probe_acc: list[float],
    controllers: list[dict],
    bc_pretraining: float,
    task: str,
    act: str = "sample",
) -> dict[str, float]:
    """The numbers a model card shows (``internal-rl push --eval-json probe.json``); those
    measured acting other than by sampling (``act``) say so in their name."""
    how = "" if act == "sample" else f", {'mean action' if act == 'mean' else 'greedy'}"
    metrics = {f"pretraining task completed, base model alone (free play{how})": bc_pretraining}
    for layer, acc in enumerate(probe_acc):
        metrics[f"subgoal probe accuracy, layer {layer}"] = acc
    for c in controllers:
        name = "post-training task" if task == "post" else f"task {task}"
        metrics[f"success rate, {name}, ground-truth controllers at layer {c['layer']}"] = c[
            "success"
        ]
        metrics[
            f"success rate, pretraining tasks, ground-truth controllers at layer {c['layer']}" + how
        ] = c["success_pretraining_tasks"]
    return metrics


def plot(report: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # layers are whole numbers
    acc = report["probe_accuracy_by_layer"]
    axes[0].plot(range(len(acc)), acc, marker="o")
    axes[0].axhline(
        report["probe_majority_baseline"], color="grey", linestyle=":", label="majority class"
    )
    axes[0].set_xlabel("layer (0 = embedding)")
    axes[0].set_ylabel("held-out probe accuracy")
    axes[0].set_title("subgoal decodability (Fig. 3)")
    axes[0].legend()
    ctrl = sorted(report["controllers"], key=lambda c: c["layer"])  # --layers may be unordered
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
