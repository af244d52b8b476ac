"""Discover temporally-abstract controllers: train a metacontroller on a frozen base model.

    internal-rl discover --base-model pinpad-transformer --alpha 0.05 0.1 0.3 --out runs/discover

Objective (paper Eq. 3, λ = 0): action NLL of the frozen base model run on ê = e + U(z) e at
the base model's control layer (its recorded ``control_layer``; L/2 in the paper), plus α · KL(N(μ_t, σ²_t) ‖ N(0, I)) at every step. Clean expert data (ε = 0, paper
§C.4.4). With ``--data online:<task>`` (the default) every batch is fresh expert episodes, since
a fixed set of a few thousand grid episodes is memorised (the residual stream encodes the whole
layout); the frozen layers below it run without gradients. With a dataset file their
activations are computed once and cached.

Each α gets ``<out>/alpha_<α>/`` with the metacontroller (config.json + model.safetensors), its
TensorBoard logs and ``report.json``; ``<out>/summary.json`` and the plots compare them. The
held-out diagnostics (does the switching gate β find the subgoal structure, do the codes name
subgoals; paper Fig. 6, A3, 7) live in :mod:`.discover_diagnostics` and are re-exported here.
The CLI warns in plain words when β collapses to always or never switching.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from internal_rl_gym.data import Demonstrations
from internal_rl_gym.hub import load_base_model, load_metacontroller, model_fingerprint
from internal_rl_gym.models import Metacontroller

from .common import (
    Logger,
    atomic_save_pretrained,
    atomic_write_json,
    autocast,
    bound_onednn_caches,
    check_precision,
    pick_device,
    progress_bar,
    resolve_layer,
    seed_everything,
    set_threads,
    torch_load_state,
    torch_save_atomic,
)
from .data_sources import fresh_activation_batches, observations_to_device, stream_layers
from .discover_diagnostics import (
    SWITCH_THRESHOLD,
    _probe_accuracy,
    abstract_action_check,
    code_informativeness,
    collapse_warning,
    evaluate_metacontroller,
    format_report,
    match_switches,
    plot_beta_traces,
    plot_summary,
    previous_subgoals,
    switch_onsets,
    true_boundaries,
)

# The held-out diagnostics live in .discover_diagnostics; their names stay importable from here
# (tests, benchmarks and research scripts import them from this module).
__all__ = [
    "CachedActivations",
    "DiscoverConfig",
    "activation_batches",
    "add_hindsight",
    "cache_activations",
    "check_hindsight_options",
    "discover",
    "kl_weight",
    "load_demonstrations",
    "run",
    "segment_starts",
    "train_one",
    "SWITCH_THRESHOLD",
    "_probe_accuracy",
    "abstract_action_check",
    "code_informativeness",
    "collapse_warning",
    "evaluate_metacontroller",
    "format_report",
    "match_switches",
    "plot_beta_traces",
    "plot_summary",
    "previous_subgoals",
    "switch_onsets",
    "true_boundaries",
]


@dataclass
class DiscoverConfig:
    base_model: str = field(
        default="pinpad-transformer",
        metadata={"help": "base model: embedded default name, local directory or Hub repo id"},
    )
    data: str = field(
        default="online:pretraining",
        metadata={"help": "clean demonstrations (.npz) or online:<task> to generate them"},
    )
    out: str = field(default="runs/discover", metadata={"help": "output directory"})
    alpha: list[float] = field(
        default_factory=lambda: [0.1], metadata={"help": "KL strength(s) α; several = a sweep"}
    )
    steps: int = field(default=4000, metadata={"help": "optimiser steps per α"})
    batch_size: int = field(default=64, metadata={"help": "episodes per batch"})
    lr: float = field(default=1e-3, metadata={"help": "AdamW learning rate (paper 1e-3)"})
    weight_decay: float = field(default=0.03, metadata={"help": "AdamW weight decay"})
    kl_warmup: int = field(
        default=1000,
        metadata={
            "help": "steps over which the KL weight ramps linearly from 0 to α (0 = none; "
            "without it the encoder matches the prior within ~50 steps, before the decoder "
            "has learned to use z, and never recovers)"
        },
    )
    gumbel_temperature: float = field(
        default=0.0,
        metadata={
            "help": "train β as a Gumbel-Sigmoid with this temperature τ (paper §C.6 uses it "
            "for the gridworld, τ in {0.5, 1}); 0 = plain sigmoid. Diagnostics always use "
            "the noise-free gate"
        },
    )
    switch_cost: float = field(
        default=0.0,
        metadata={
            "help": "nats charged per switch (the sum of β over steps t > 1, per valid step "
            "as the KL): the description length of where segments start, which the paper's "
            "objective leaves free, so a gate that opens where little is gained pays for it "
            "(not in the paper; 0 = the paper's objective)"
        },
    )
    init_from: str = field(
        default="",
        metadata={
            "help": "start from this metacontroller (name, directory or Hub id) instead of a "
            "random init, e.g. to fine-tune the default with --gumbel-temperature"
        },
    )
    action_targets: str = field(
        default="sampled",
        metadata={
            "help": "sampled: NLL of the demonstrated action (paper Eq. 3); expert: "
            "cross-entropy to the grid expert's action distribution at each step (uniform over "
            "its shortest-path actions; online grid data only), so codes gain nothing from "
            "encoding which of several tied actions was sampled. See the README"
        },
    )
    episodes: int = field(
        default=8192,
        metadata={"help": "online data: pool size regenerated after each pass (fresh episodes)"},
    )
    holdout: int = field(default=512, metadata={"help": "held-out episodes for diagnostics"})
    n_z: int = field(default=8, metadata={"help": "controller code size"})
    rank: int = field(default=16, metadata={"help": "controller rank (0 = full d x d)"})
    layer: int = field(
        default=-1,
        metadata={
            "help": "controlled layer (-1 = the base model's recorded control_layer, "
            "L/2 when none is recorded)"
        },
    )
    embedder: str = field(
        default="sequence",
        metadata={
            "help": "sequence: one non-causal embedding s of the whole episode (as the paper "
            "describes); per_step: s_t adds a summary of the steps from t on, so what comes "
            "next is a local read-out for the encoder (see the README's design choices)"
        },
    )
    code: str = field(
        default="gaussian",
        metadata={
            "help": "gaussian: z̃ ~ N(μ, σ²), prior N(0, I) (the paper); categorical: z̃ is one "
            "of n_z one-hot codes, prior uniform, so internal RL picks one of n_z abstract "
            "actions (see the README's design choices)"
        },
    )
    controller: str = field(
        default="linear",
        metadata={
            "help": "linear: ê = e + U(z) e (the paper); additive: ê = e + b(z), a steering "
            "vector that cannot depend on the current residual stream"
        },
    )
    code_temperature: float = field(
        default=1.0, metadata={"help": "categorical codes: the Gumbel-softmax temperature"}
    )
    symmetry_decode: bool = field(
        default=False,
        metadata={
            "help": "infer each episode's codes and gate from the episode as recorded, but "
            "steer and score the base model on the same episode mirrored/turned by a random "
            "grid symmetry (online grid data only): a code must mean the same in every frame, "
            "so it cannot name a direction. See the README's design choices"
        },
    )
    posterior: str = field(
        default="sequence",
        metadata={
            "help": "sequence: the paper's encoder q(z̃_t | e_t, h_{t-1}, s); hindsight: a "
            "segment's categorical code is inferred from the residual stream of its end state "
            "(--hindsight-layer), segments from --segments-from, so a code carries the "
            "subgoal reached, not the first move (needs --code categorical; see "
            "docs/design_choices.md)"
        },
    )
    segments_from: str = field(
        default="",
        metadata={
            "help": "hindsight: a metacontroller of the same base model (name, directory or "
            "Hub id) whose noise-free gate β > 0.5 marks where segments start; the new "
            "metacontroller's switching unit learns to reproduce it"
        },
    )
    hindsight_layer: int = field(
        default=0,
        metadata={"help": "hindsight: the layer of the end state's stream (0 = the embedding)"},
    )
    hindsight_window: int = field(
        default=2,
        metadata={
            "help": "hindsight: steps from the end state on that the posterior reads (2 also "
            "covers a segmenter that switches one step early)"
        },
    )
    tolerance: int = field(default=1, metadata={"help": "steps of slack for switch alignment"})
    eval_every: int = field(default=1000, metadata={"help": "steps between diagnostics"})
    keep_checkpoints: bool = field(
        default=False,
        metadata={
            "help": "also keep the metacontroller of every evaluation in "
            "<out>/alpha_<α>/model_step<N>/ (model/ is always the latest), so one run can be "
            "chosen from by its evaluations in metrics.jsonl"
        },
    )
    seed: int = field(default=0, metadata={"help": "random seed"})
    device: str = field(default="auto", metadata={"help": "cpu, cuda or auto"})
    threads: int = field(default=0, metadata={"help": "torch CPU threads (0 = torch default)"})
    precision: str = field(
        default="fp32",
        metadata={
            "help": "fp32, or bf16: bfloat16 autocast for the frozen upper layers (the "
            "metacontroller, the weights and the residual stream stay fp32)"
        },
    )
    data_workers: int = field(
        default=0,
        metadata={
            "help": "online data: processes generating fresh episodes (0 = in this process); "
            "for large batches on a GPU"
        },
    )


# --- data ------------------------------------------------------------------------------------
@dataclass
class CachedActivations:
    """Residual streams at the controlled layer for every episode, padded: e (N, T, d)."""

    e: torch.Tensor
    actions: torch.Tensor
    mask: torch.Tensor
    subgoals: np.ndarray
    lengths: np.ndarray
    #: hindsight posterior only: the stream of every observation at its layer (N, T + 1, d)
    #: and the segmenter's segment starts (N, T)
    e_hindsight: torch.Tensor | None = None
    switches: torch.Tensor | None = None

    def batch(self, idx: np.ndarray):
        t = int(self.lengths[idx].max())
        return self.e[idx, :t], self.actions[idx, :t], self.mask[idx, :t]

    def hindsight(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(e_hindsight, switches) of episodes ``idx``, cut as :meth:`batch` cuts."""
        if self.e_hindsight is None or self.switches is None:
            raise ValueError("these activations were cached without a segmenter (hindsight).")
        t = int(self.lengths[idx].max())
        return self.e_hindsight[idx, : t + 1], self.switches[idx, :t]


@torch.no_grad()
def segment_starts(segmenter: Metacontroller, e: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, T) bool: where ``segmenter``'s noise-free gate opens (β_t > 0.5; the first step
    always), on the stream ``e`` at its layer; False at padding."""
    beta = segmenter(e, mask, sample=False).beta
    starts = (beta > SWITCH_THRESHOLD) & mask.bool()
    starts[:, 0] = True
    return starts


@torch.no_grad()
def add_hindsight(
    cache: CachedActivations,
    base,
    data: Demonstrations,
    segmenter: Metacontroller,
    hindsight_layer: int,
    chunk: int = 256,
) -> CachedActivations:
    """Fill ``cache``'s hindsight fields: the stream at ``hindsight_layer`` of every observation
    (including the last) and the segmenter's segment starts."""
    n, t_max = cache.e.shape[:2]
    e_h = torch.zeros(n, t_max + 1, base.d_model)
    starts = torch.zeros(n, t_max, dtype=torch.bool)
    for s in range(0, n, chunk):
        idx = np.arange(s, min(n, s + chunk))
        b = data.batch(idx)
        t = b["mask"].shape[1]
        obs = observations_to_device(b["obs"], base.obs_dim, base.device)
        streams = stream_layers(base, obs, sorted({hindsight_layer, segmenter.layer}))
        mask = torch.as_tensor(b["mask"], device=base.device)
        e_h[idx, : t + 1] = streams[hindsight_layer].cpu()
        starts[idx, :t] = segment_starts(segmenter, streams[segmenter.layer][:, :-1], mask).cpu()
    cache.e_hindsight, cache.switches = e_h, starts
    return cache


@torch.no_grad()
def cache_activations(base, data: Demonstrations, layer: int, chunk: int = 256):
    """Run the frozen lower layers once over every episode."""
    n = data.n_episodes
    t_max = int(data.lengths.max())
    e = torch.zeros(n, t_max, base.d_model)
    continuous = base.action_type == "continuous"
    actions = (
        torch.zeros(n, t_max, base.config.action_dim)
        if continuous
        else torch.zeros(n, t_max, dtype=torch.long)
    )
    mask = torch.zeros(n, t_max, dtype=torch.bool)
    subgoals = np.full((n, t_max), -1, dtype=np.int64)
    for s in range(0, n, chunk):
        idx = np.arange(s, min(n, s + chunk))
        b = data.batch(idx)
        t = b["mask"].shape[1]
        obs = torch.as_tensor(b["obs"][:, :-1], device=base.device)
        e[idx, :t] = base.run_layers(base.embed(obs), 0, layer).float().cpu()
        actions[idx, :t] = torch.as_tensor(b["actions"])
        mask[idx, :t] = torch.as_tensor(b["mask"])
        subgoals[idx, :t] = b["subgoals"]
    return CachedActivations(e, actions, mask, subgoals, data.lengths.copy())


def load_demonstrations(cfg: DiscoverConfig) -> tuple[Demonstrations | str, Demonstrations]:
    """(training source, held-out episodes): the source is a task name for online data."""
    if cfg.data.startswith("online:"):
        from internal_rl_gym.envs.grid_expert import collect_grid_demonstrations

        task = cfg.data.split(":", 1)[1]
        held = collect_grid_demonstrations(cfg.holdout, task, seed=cfg.seed + 20_000_003)
        return task, held
    data = Demonstrations.load(cfg.data)
    if data.metadata.get("epsilon", 0.0) > 0:
        print(
            f"warning: {cfg.data} was collected with epsilon={data.metadata['epsilon']}; the "
            "paper trains metacontrollers on clean (epsilon=0) demonstrations."
        )
    return heldout_split(data, cfg.holdout)


def heldout_split(data: Demonstrations, holdout: int) -> tuple[Demonstrations, Demonstrations]:
    """(training, held-out) episodes of a dataset as ``discover`` splits it: the last
    ``holdout`` episodes, at most a fifth of them."""
    return data.split(min(holdout, data.n_episodes // 5))


def activation_batches(
    base,
    layer: int,
    source: Demonstrations | str,
    cfg: DiscoverConfig,
    seed: int,
    segmenter: Metacontroller | None = None,
) -> Iterator[dict[str, torch.Tensor | None]]:
    """Endless training batches: ``e`` (the stream at ``layer``), ``actions``, ``mask``,
    ``probs`` (the expert's action probabilities or None), ``e_control`` (the e to steer, or
    None) and, with a ``segmenter`` (hindsight posterior), ``e_hindsight`` and ``switches``.
    Fresh episodes for a task name, else batches of a dataset whose activations are cached once.
    With ``--symmetry-decode`` the actions, probabilities and the e to steer are those of the
    episodes in another frame."""
    expert = cfg.action_targets == "expert"
    sym = cfg.symmetry_decode
    if isinstance(source, str):
        full = () if segmenter is None else (cfg.hindsight_layer, segmenter.layer)
        for b in fresh_activation_batches(
            base,
            layer,
            source,
            cfg.episodes,
            cfg.batch_size,
            seed,
            expert_probs=expert,
            workers=cfg.data_workers,
            symmetry_seed=seed + 7 if sym else None,
            full_streams=full,
        ):
            out = {"e": b["e"], "actions": b["actions"], "mask": b["mask"]}
            if sym:
                out.update(actions=b["actions_sym"], probs=b.get("expert_probs_sym"))
                out["e_control"] = b["e_sym"]
            else:
                out.update(probs=b.get("expert_probs"), e_control=None)
            if segmenter is not None:
                streams = b["streams"]
                out["e_hindsight"] = streams[cfg.hindsight_layer]
                seg_e = streams[segmenter.layer][:, :-1]
                out["switches"] = segment_starts(segmenter, seg_e, b["mask"])
            yield out
    if sym:
        raise ValueError("--symmetry-decode needs online grid data (--data online:<task>).")
    if expert:
        raise ValueError(
            "--action-targets expert needs online grid data (--data online:<task>); a "
            "dataset file does not carry the expert's action distribution."
        )
    cache = cache_activations(base, source, layer)
    if segmenter is not None:
        add_hindsight(cache, base, source, segmenter, cfg.hindsight_layer)
    rng = np.random.default_rng(seed)
    order = np.argsort(cache.lengths)
    buckets = np.array_split(order, max(1, len(order) // cfg.batch_size))
    while True:
        idx = buckets[rng.integers(len(buckets))]
        e, act, mask = cache.batch(idx)
        out = {"e": e, "actions": act, "mask": mask, "probs": None, "e_control": None}
        if segmenter is not None:
            out["e_hindsight"], out["switches"] = cache.hindsight(idx)
        yield out


# --- training ------------------------------------------------------------------------------------
def switches_per_step(beta: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Σ β_t over valid steps t > 1 (β_1 = 1 is the forced start) per valid step: the
    expected number of switches, normalised as the action NLL and KL are."""
    m = mask.to(beta.dtype)
    return (beta[:, 1:] * m[:, 1:]).sum() / m.sum().clamp(min=1)


def kl_weight(alpha: float, step: int, warmup: int) -> float:
    """α at optimiser step ``step`` (0-based): a linear ramp from α/warmup to α over ``warmup``
    steps, then α."""
    return alpha * min(1.0, (step + 1) / warmup) if warmup > 0 else alpha


def train_one(
    cfg: DiscoverConfig,
    alpha: float,
    base,
    base_name: str,
    fingerprint: str,
    train_source: Demonstrations | str,
    held: CachedActivations,
    out: Path,
    device: torch.device,
    env_id: str = "GridPinpad-v0",
) -> dict[str, float]:
    seed_everything(cfg.seed)
    layer = resolve_layer(cfg.layer, base)
    meta = Metacontroller(
        d_model=base.d_model,
        layer=layer,
        n_z=cfg.n_z,
        rank=cfg.rank,
        gate_temperature=cfg.gumbel_temperature if cfg.gumbel_temperature > 0 else 1.0,
        base_model_name=base_name,
        base_model_fingerprint=fingerprint,
        embedder=cfg.embedder,
        code=cfg.code,
        code_temperature=cfg.code_temperature,
        controller=cfg.controller,
        posterior=cfg.posterior,
        hindsight_layer=cfg.hindsight_layer,
        hindsight_window=cfg.hindsight_window,
    ).to(device)
    segmenter = None
    if cfg.posterior == "hindsight":
        segmenter = load_metacontroller(cfg.segments_from, base_model=base).to(device)
    if cfg.init_from:
        init = load_metacontroller(cfg.init_from, base_model=base)
        mine = (layer, cfg.rank, cfg.n_z, cfg.embedder, cfg.code, cfg.controller, cfg.posterior)
        theirs = (init.layer, init.rank, init.n_z, init.embedder_kind, init.code, init.controller,
                  init.posterior)  # fmt: skip
        if theirs != mine:
            raise ValueError(
                f"--init-from {cfg.init_from} has layer {init.layer}, rank {init.rank}, n_z "
                f"{init.n_z}, embedder {init.embedder_kind}, code {init.code}, controller "
                f"{init.controller}, posterior {init.posterior} but this run asks for layer "
                f"{layer}, rank {cfg.rank}, n_z {cfg.n_z}, embedder {cfg.embedder}, code "
                f"{cfg.code}, controller {cfg.controller}, posterior {cfg.posterior}; pass "
                "matching --layer/--rank/--n-z/--embedder/--code/--controller/--posterior."
            )
        meta.load_state_dict(init.state_dict())  # its weights; τ is this run's
    opt = torch.optim.AdamW(meta.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    state_path = out / "train_state.pt"
    start = 0
    if state_path.exists():
        st = torch_load_state(state_path)
        meta.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        start = int(st["step"])
        print(f"α={alpha}: resumed at step {start}")
    logger = Logger(out, {**cfg.__dict__, "alpha_run": alpha}, resume_step=start or None)
    batches = activation_batches(base, layer, train_source, cfg, cfg.seed + 101 + start, segmenter)
    gen = torch.Generator(device=device).manual_seed(cfg.seed + start)

    bar = progress_bar(
        range(start, cfg.steps), initial=start, total=cfg.steps, desc=f"discover α={alpha}"
    )
    report: dict[str, float] = {}
    for step in bar:
        meta.train()
        b = {k: v if v is None else v.to(device) for k, v in next(batches).items()}
        e, act, mask, probs = b["e"], b["actions"], b["mask"], b["probs"]
        alpha_t = kl_weight(alpha, step, cfg.kl_warmup)
        with autocast(device, cfg.precision):
            if segmenter is not None:
                res = meta.hindsight_elbo(
                    base, e, b["e_hindsight"], b["switches"], act, mask, alpha_t, gen, probs
                )
            else:
                res = meta.elbo(
                    base,
                    e,
                    act,
                    mask,
                    alpha_t,
                    generator=gen,
                    gumbel_gate=cfg.gumbel_temperature > 0,
                    target_probs=probs,
                    e_control=b["e_control"],
                )
        loss = res.loss
        if cfg.switch_cost > 0:
            loss = loss + cfg.switch_cost * switches_per_step(res.out.beta, mask)
        if not bool(torch.isfinite(loss)):  # before the update: the saved state stays good
            raise FloatingPointError(
                f"α={alpha}: the loss is {loss.item()} at step {step + 1}: training diverged, "
                f"so the checkpoint in {out} was kept at its last evaluation. Resume from it "
                "with a lower --lr (or --precision fp32), or check the data."
            )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(meta.parameters(), 1.0)
        opt.step()
        if (step + 1) % 50 == 0:
            m = mask.float()
            beta_mean = float((res.out.beta.detach() * m).sum() / m.sum())
            logger.log(
                step + 1,  # steps count completed updates
                **{
                    "train/loss": loss.item(),
                    "train/action_nll": res.action_nll.item(),
                    "train/kl": res.kl.item(),
                    "train/alpha": alpha_t,
                    "train/beta_mean": beta_mean,
                    "train/action_accuracy": float(res.action_accuracy or 0.0),
                    **(
                        {"train/switch_bce": res.switch_bce.item()}
                        if res.switch_bce is not None
                        else {}
                    ),
                },
            )
            bar.set_postfix(
                nll=f"{res.action_nll.item():.3f}", kl=f"{res.kl.item():.2f}", refresh=False
            )
        last = step == cfg.steps - 1
        if (step + 1) % cfg.eval_every == 0 or last:
            report = evaluate_metacontroller(meta, base, held, alpha, cfg.tolerance)
            logger.log(step + 1, **{f"eval/{k}": v for k, v in report.items() if np.isscalar(v)})
            torch_save_atomic(
                {"step": step + 1, "model": meta.state_dict(), "optimizer": opt.state_dict()},
                state_path,
            )
            atomic_save_pretrained(meta, out / "model")
            if cfg.keep_checkpoints:
                atomic_save_pretrained(meta, out / f"model_step{step + 1}")
            bar.write(format_report(report))
            warning = collapse_warning(report, cfg.action_targets)
            if warning:
                bar.write(f"WARNING (α={alpha}): {warning}")
    logger.close()
    if not report:  # no step ran (resumed at the end, or --steps 0)
        report = evaluate_metacontroller(meta, base, held, alpha, cfg.tolerance)
        atomic_save_pretrained(meta, out / "model")
    report["warning"] = collapse_warning(report, cfg.action_targets) or ""
    report["env_id"] = env_id  # the card's environment (`internal-rl push --eval-json`)
    atomic_write_json(out / "report.json", report)
    return report


def check_hindsight_options(cfg: DiscoverConfig) -> None:
    """Refuse option combinations the hindsight posterior does not support, saying what to pass."""
    if cfg.posterior not in ("sequence", "hindsight"):
        raise ValueError(f"unknown --posterior {cfg.posterior!r}; use sequence or hindsight.")
    if cfg.posterior == "sequence":
        if cfg.segments_from:
            raise ValueError("--segments-from is used only with --posterior hindsight.")
        return
    if not cfg.segments_from:
        raise ValueError(
            "--posterior hindsight needs --segments-from: a metacontroller of this base model "
            "whose gate marks the segments (e.g. one trained by `internal-rl discover`)."
        )
    if cfg.code != "categorical":
        raise ValueError("--posterior hindsight needs --code categorical.")
    if cfg.symmetry_decode or cfg.gumbel_temperature > 0 or cfg.switch_cost > 0:
        raise ValueError(
            "--posterior hindsight takes its segments from --segments-from: drop "
            "--symmetry-decode, --gumbel-temperature and --switch-cost."
        )


def discover(cfg: DiscoverConfig) -> dict:
    if cfg.action_targets not in ("sampled", "expert"):
        raise ValueError(
            f"unknown --action-targets {cfg.action_targets!r}; use sampled (paper) or expert."
        )
    if cfg.switch_cost < 0:
        raise ValueError(
            f"--switch-cost {cfg.switch_cost} is negative: it is the nats charged per switch "
            "(0 = the paper's objective, > 0 = fewer switches)."
        )
    check_hindsight_options(cfg)
    check_precision(cfg.precision)
    bound_onednn_caches()  # before the first bf16 step, as pretrain (its memory grew without)
    set_threads(cfg.threads)
    device = pick_device(cfg.device)
    out = Path(cfg.out)
    base = load_base_model(cfg.base_model).to(device)
    fingerprint = model_fingerprint(base)
    layer = resolve_layer(cfg.layer, base)
    t0 = time.time()
    train_source, held_data = load_demonstrations(cfg)
    held = cache_activations(base, held_data, layer)
    if cfg.posterior == "hindsight":
        segmenter = load_metacontroller(cfg.segments_from, base_model=base).to(device)
        if not 0 <= cfg.hindsight_layer <= base.n_layers:
            raise ValueError(
                f"--hindsight-layer must be in 0..{base.n_layers} (0 = the embedding), got "
                f"{cfg.hindsight_layer}."
            )
        add_hindsight(held, base, held_data, segmenter, cfg.hindsight_layer)
    env_id = held_data.metadata.get("env_id", "GridPinpad-v0")
    what = f"fresh '{train_source}' episodes" if isinstance(train_source, str) else "a dataset"
    print(f"training on {what}; {len(held.lengths)} held-out episodes ({time.time() - t0:.1f}s)")
    reports = []
    for alpha in cfg.alpha:
        run = out / f"alpha_{alpha:g}"
        reports.append(
            train_one(
                cfg,
                alpha,
                base,
                cfg.base_model,
                fingerprint,
                train_source,
                held,
                run,
                device,
                env_id,
            )
        )
    best = max(reports, key=lambda r: r["switch_f1"])
    summary = {
        "base_model": cfg.base_model,
        "layer": layer,
        "runs": reports,
        "best_alpha": best["alpha"],
    }
    atomic_write_json(out / "summary.json", summary)
    plot_summary(out, reports)
    best_dir = out / f"alpha_{best['alpha']:g}" / "model"
    plot_beta_traces(best_dir, base, held, out / "beta_trace.png")
    if env_id == "GridPinpad-v0":
        best_meta = load_metacontroller(best_dir, base_model=base)
        summary["abstract_action_check"] = abstract_action_check(base, best_meta, seed=cfg.seed)
        atomic_write_json(out / "summary.json", summary)
        print("abstract-action check (z ~ N(0, I) at switches):", summary["abstract_action_check"])
    print(f"best α by switch F1: {best['alpha']} -> {best_dir}")
    return summary


def run(cfg: DiscoverConfig) -> None:
    discover(cfg)
