"""Pretrain a base autoregressive model on expert demonstrations (paper Eq. 5).

    internal-rl pretrain --data online:pretraining --out runs/pinpad-transformer --steps 60000

Loss per step t: -log p(a_t | o_1..t) + obs_coef * loss(o_{t+1} | o_1..t). AdamW, linear warm-up
then a constant learning rate (paper: constant); ``--decay-steps N`` anneals it linearly to 0
over the last N steps, so a constant-lr run can be branched and annealed by resuming a copy of it
with a larger ``--steps``. ``--init-from`` starts from another base model's weights (optionally
only its first ``--n-layers`` blocks). ``--precision bf16`` trains under bfloat16 autocast;
``--data-workers N`` generates online episodes in N processes, one pool ahead (for GPU batch
sizes). Every ``log_every`` steps the training loss and throughput (``perf/*``) are logged;
every ``checkpoint_every`` steps the training state is written atomically to
``<out>/train_state.pt`` and the model to ``<out>/model/`` (config.json + model.safetensors);
rerunning the same command resumes from there. Every
``eval_every`` steps the base-model diagnostics run (held-out action accuracy split by whether the
history fixes the next target, probe accuracy at L/2, behaviour in the env) and go to TensorBoard
(``<out>/tb``) and ``<out>/metrics.jsonl``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from internal_rl_gym.data import Demonstrations
from internal_rl_gym.models import (
    ANT_CPU_PRESET,
    ANT_PAPER_PRESET,
    GRID_CPU_PRESET,
    GRID_PAPER_PRESET,
    BaseModel,
    BaseModelConfig,
)

from . import diagnostics
from .common import (
    Logger,
    atomic_save_pretrained,
    atomic_write_json,
    autocast,
    bound_onednn_caches,
    check_precision,
    pick_device,
    progress_bar,
    seed_everything,
    set_threads,
    torch_load_state,
    torch_save_atomic,
)
from .data_sources import EpisodePool, observations_to_device, online_grid_pool

PRESETS = {
    "grid-cpu": GRID_CPU_PRESET,
    "grid-paper": GRID_PAPER_PRESET,
    "ant-cpu": ANT_CPU_PRESET,
    "ant-paper": ANT_PAPER_PRESET,
}


@dataclass
class PretrainConfig:
    data: str = field(
        default="online:pretraining",
        metadata={
            "help": "a dataset .npz from `internal-rl collect`, or online:<task> to generate "
            "fresh GridPinpad expert episodes (task: pretraining, post, or a sequence)"
        },
    )
    out: str = field(default="runs/pinpad-transformer", metadata={"help": "run directory"})
    preset: str = field(default="grid-cpu", metadata={"help": f"model size: {sorted(PRESETS)}"})
    arch: str = field(
        default="", metadata={"help": "override the preset's backbone: transformer or hawk"}
    )
    d_model: int | None = field(default=None, metadata={"help": "override the preset's d_model"})
    n_layers: int | None = field(default=None, metadata={"help": "override the preset's depth"})
    obs_encoder: str = field(default="", metadata={"help": "override the preset's obs encoder"})
    max_len: int | None = field(
        default=None,
        metadata={"help": "override the preset's max_len (transformer: the longest episode)"},
    )
    attention_window: int | None = field(
        default=None,
        metadata={"help": "transformer: attend to the last N steps only (default: all)"},
    )
    action_components: int = field(
        default=1,
        metadata={"help": "continuous actions: Gaussian mixture components of the action head"},
    )
    init_from: str = field(
        default="",
        metadata={
            "help": "start from this base model's weights (embedded name, directory or Hub id) "
            "instead of a random init; its config replaces the preset. A smaller --n-layers "
            "keeps only its first blocks (depth truncation, then fine-tune)"
        },
    )
    steps: int = field(default=20_000, metadata={"help": "optimiser steps"})
    batch_size: int = field(default=64, metadata={"help": "episodes per batch"})
    lr: float = field(default=1e-3, metadata={"help": "AdamW learning rate (after warm-up)"})
    warmup: int = field(default=500, metadata={"help": "linear warm-up steps"})
    decay_steps: int = field(
        default=0,
        metadata={
            "help": "decay the lr linearly to 0 over the last N steps (warm-up, stable, decay; "
            "0 = constant lr as in the paper). Set it when resuming a run to anneal it"
        },
    )
    weight_decay: float = field(default=0.03, metadata={"help": "AdamW weight decay (paper 0.03)"})
    obs_coef: float = field(default=0.01, metadata={"help": "λ, next-observation loss weight"})
    grad_clip: float = field(default=1.0, metadata={"help": "gradient-norm clip (0 = off)"})
    epsilon: float = field(default=0.0, metadata={"help": "expert noise for online data"})
    pool_size: int = field(default=16_384, metadata={"help": "online data: episodes per pool"})
    precision: str = field(
        default="fp32",
        metadata={
            "help": "fp32, or bf16: bfloat16 autocast for the forward/backward (weights and "
            "optimiser stay fp32); faster on CPUs with AVX512-BF16/AMX and on GPUs "
            "(benchmarks/model_speed.py)"
        },
    )
    data_workers: int = field(
        default=0,
        metadata={
            "help": "online data: worker processes that generate the next pool while training "
            "reads this one (0 = generate in the training process when a pool runs out); "
            "for large batches on a GPU"
        },
    )
    holdout: int = field(default=1024, metadata={"help": "held-out episodes for diagnostics"})
    log_every: int = field(
        default=50, metadata={"help": "steps between training-loss and throughput logs"}
    )
    eval_every: int = field(default=2000, metadata={"help": "steps between diagnostics"})
    eval_episodes: int = field(default=256, metadata={"help": "env episodes per diagnostic"})
    checkpoint_every: int = field(default=500, metadata={"help": "steps between checkpoints"})
    name: str = field(
        default="",
        metadata={"help": "model name in config (default: --init-from's, else pinpad-transformer)"},
    )
    seed: int = field(default=0, metadata={"help": "random seed"})
    device: str = field(default="auto", metadata={"help": "cpu, cuda or auto"})
    threads: int = field(default=0, metadata={"help": "torch CPU threads (0 = torch default)"})


def build_model(cfg: PretrainConfig, data: Demonstrations) -> BaseModel:
    if cfg.init_from:
        return model_from(cfg, data)
    preset = PRESETS[cfg.preset]
    changes: dict = {"obs_dim": data.obs_dim, "name": cfg.name or "pinpad-transformer"}
    if cfg.arch:
        changes["arch"] = cfg.arch
    if cfg.d_model:
        changes.update(d_model=cfg.d_model, lru_width=None)
    if cfg.max_len:
        changes["max_len"] = cfg.max_len
    if cfg.attention_window:
        changes["attention_window"] = cfg.attention_window
    if cfg.n_layers:
        changes["n_layers"] = cfg.n_layers
    if cfg.obs_encoder:
        changes["obs_encoder"] = cfg.obs_encoder
    if data.discrete:
        changes.update(action_type="discrete", n_actions=int(data.metadata.get("n_actions", 4)))
    else:
        changes.update(action_type="continuous", action_dim=int(data.actions.shape[1]))
    if cfg.action_components != 1:
        changes["action_components"] = cfg.action_components
    return BaseModel.from_config(preset.replace(**changes))


def resumed_model(
    cfg: PretrainConfig, resume: dict, state_path: Path, data: Demonstrations
) -> BaseModel:
    """The architecture a training state was written with (its weights are loaded by the caller).

    States written before the architecture was saved with them are rebuilt from the flags, as
    they were started."""
    if "model_config" not in resume:
        try:
            model = build_model(cfg, data)
            model.load_state_dict(resume["model"])
        except (ValueError, RuntimeError) as e:
            raise ValueError(
                f"{state_path} does not fit the model these flags build ({e}). Resume with the "
                "flags that started the run (--preset, --arch, --d-model, --n-layers, "
                "--obs-encoder, --max-len, --attention-window, --action-components, "
                f"--init-from; see {state_path.parent / 'config.json'})."
            ) from e
        return model
    saved = BaseModelConfig(**resume["model_config"])
    if saved.obs_dim != data.obs_dim:
        raise ValueError(
            f"{state_path} was written by a model that reads observations of size "
            f"{saved.obs_dim}, but {cfg.data} has {data.obs_dim}: resume it on the data it was "
            "trained on, or pass a new --out to start another run."
        )
    asked = {
        "arch": cfg.arch or saved.arch,
        "d_model": cfg.d_model or saved.d_model,
        "max_len": cfg.max_len or saved.max_len,
        "attention_window": cfg.attention_window or saved.attention_window,
        "n_layers": cfg.n_layers or saved.n_layers,
        "obs_encoder": cfg.obs_encoder or saved.obs_encoder,
        "action_components": cfg.action_components
        if cfg.action_components != 1
        else saved.action_components,
    }
    differ = {k: v for k, v in asked.items() if getattr(saved, k) != v}
    if differ:
        raise ValueError(
            f"{state_path} was written by a model with "
            + ", ".join(f"{k}={getattr(saved, k)!r}" for k in differ)
            + f", but the flags ask for {differ}: drop those flags to resume it, or pass a new "
            "--out to start another run."
        )
    return BaseModel.from_config(saved)


def model_from(cfg: PretrainConfig, data: Demonstrations) -> BaseModel:
    """A trainable copy of ``cfg.init_from`` (its first ``cfg.n_layers`` blocks, if given)."""
    from internal_rl_gym.hub import load_base_model

    source = load_base_model(cfg.init_from)
    src = source.config
    n_layers = cfg.n_layers or src.n_layers
    if n_layers > src.n_layers:
        raise ValueError(
            f"--n-layers {n_layers} is deeper than {cfg.init_from} ({src.n_layers} layers): "
            "initialising from a model can keep or drop blocks, not add them."
        )
    flags = {
        "arch": cfg.arch,
        "d_model": cfg.d_model,
        "obs_encoder": cfg.obs_encoder,
        "max_len": cfg.max_len,
        "attention_window": cfg.attention_window,
    }
    differ = {k: v for k, v in flags.items() if v and v != getattr(src, k)}
    if differ:
        raise ValueError(
            "--" + "/--".join(k.replace("_", "-") for k in differ) + f" differ from "
            f"{cfg.init_from}'s config ("
            + ", ".join(f"{k}={getattr(src, k)!r}" for k in differ)
            + "); drop them with --init-from."
        )
    if src.obs_dim != data.obs_dim:
        raise ValueError(
            f"{cfg.init_from} reads observations of size {src.obs_dim}, the data has "
            f"{data.obs_dim}: it was trained on another environment."
        )
    model = BaseModel.from_config(src.replace(n_layers=n_layers, name=cfg.name or src.name))
    state = {
        k: v
        for k, v in source.state_dict().items()
        if not (k.startswith("blocks.") and int(k.split(".")[1]) >= n_layers)
    }
    model.load_state_dict(state)
    return model


def make_pool(cfg: PretrainConfig, seed: int) -> tuple[EpisodePool, Demonstrations]:
    """(training batches, held-out episodes)."""
    if cfg.data.startswith("online:"):
        from internal_rl_gym.envs.grid_expert import collect_grid_demonstrations

        task = cfg.data.split(":", 1)[1]
        heldout = collect_grid_demonstrations(cfg.holdout, task, seed=10_000_019 + cfg.seed)
        pool = online_grid_pool(
            task, cfg.pool_size, cfg.batch_size, seed, cfg.epsilon, workers=cfg.data_workers
        )
        return pool, heldout
    data = Demonstrations.load(cfg.data)
    train, heldout = data.split(min(cfg.holdout, data.n_episodes // 10 or 1))
    return EpisodePool(train, cfg.batch_size, seed), heldout


def pretrain(cfg: PretrainConfig) -> Path:
    check_precision(cfg.precision)
    bound_onednn_caches()  # before the first bf16 step: bf16 on a CPU held 13 GB without it
    if cfg.data_workers and not cfg.data.startswith("online:"):
        raise ValueError("--data-workers generates online data; drop it with a dataset file")
    if not 0 <= cfg.decay_steps <= cfg.steps:
        raise ValueError(
            f"decay_steps={cfg.decay_steps} must be between 0 and steps={cfg.steps}: "
            "it is how many of the final steps anneal the learning rate to 0"
        )
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed)
    set_threads(cfg.threads)

    state_path = out / "train_state.pt"
    resume = torch_load_state(state_path) if state_path.exists() else None
    start = int(resume["step"]) if resume else 0
    pool, heldout = make_pool(cfg, seed=cfg.seed + 7919 * start)
    try:
        return _train(cfg, out, pool, heldout, resume, start, state_path)
    finally:
        pool.close()


def _train(
    cfg: PretrainConfig,
    out: Path,
    pool: EpisodePool,
    heldout: Demonstrations,
    resume: dict | None,
    start: int,
    state_path: Path,
) -> Path:
    device = pick_device(cfg.device)
    model = resumed_model(cfg, resume, state_path, heldout) if resume else build_model(cfg, heldout)
    model = model.to(device)
    opt = torch.optim.AdamW(
        model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.999)
    )
    if resume:
        model.load_state_dict(resume["model"])
        opt.load_state_dict(resume["optimizer"])
        torch.set_rng_state(resume["torch_rng"])
        print(f"resumed from {state_path} at step {start}")
    logger = Logger(out, recorded_config(cfg, out, resume), resume_step=start if resume else None)
    print(f"model: {model.n_params / 1e6:.2f}M parameters on {device}; data: {cfg.data}")

    bar = progress_bar(range(start, cfg.steps), initial=start, total=cfg.steps, desc="pretrain")
    tokens, t0 = 0, time.time()
    # per logging window: host seconds getting batches, and in training steps (no evals/saves)
    data_s, train_s, window_steps = 0.0, 0.0, 0
    stop, saved = _StopRequest(), start
    for step in stop.around(bar):
        lr = learning_rate(cfg, step)
        for g in opt.param_groups:
            g["lr"] = lr
        # on a GPU, bit-packed observations travel packed (32x fewer bytes) and unpack there
        t_data = time.perf_counter()
        try:
            batch = pool.next_batch(decode=device.type == "cpu")
        except Exception:
            if not stop.requested:
                raise
            # e.g. data workers killed by the same stop signal: keep the steps done so far
            save_checkpoint(model, opt, step, out)
            bar.write(f"stop requested ({stop.requested}): saved step {step}")
            break
        obs = observations_to_device(batch["obs"], heldout.obs_dim, device)
        # host arrays: loss() checks them before the copy, so a step never waits on the device
        act, mask = batch["actions"], torch.as_tensor(batch["mask"], device=device)
        data_s += time.perf_counter() - t_data
        model.train()
        with autocast(device, cfg.precision):
            out_loss = model.loss(obs, act, mask=mask, obs_coef=cfg.obs_coef)
        opt.zero_grad(set_to_none=True)
        out_loss.loss.backward()
        gnorm = (
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            if cfg.grad_clip > 0
            else torch.tensor(0.0)
        )
        opt.step()
        train_s += time.perf_counter() - t_data
        window_steps += 1
        tokens += int(batch["mask"].sum())
        if (step + 1) % cfg.log_every == 0 or step == cfg.steps - 1:
            rate = tokens / max(1e-9, time.time() - t0)
            scalars = {
                "train/loss": out_loss.loss.item(),
                "train/action_nll": out_loss.action_nll.item(),
                "train/obs_loss": out_loss.obs_loss.item(),
                "train/grad_norm": float(gnorm),
                "train/lr": lr,
                "perf/tokens_per_s": rate,
                # the share of the steps' wall time spent getting data (generation in this
                # process or waiting for the workers, batching, copies): near 1 = data-bound.
                # On a GPU the host runs ahead of the device, so the rest is launch + compute.
                "perf/data_fraction": data_s / max(1e-9, train_s),
                "perf/steps_per_s": window_steps / max(1e-9, train_s),
            }
            data_s, train_s, window_steps = 0.0, 0.0, 0
            if out_loss.action_accuracy is not None:
                scalars["train/action_accuracy"] = out_loss.action_accuracy.item()
            logger.log(step + 1, **scalars)  # steps count completed updates
            bar.set_postfix(loss=f"{scalars['train/loss']:.3f}", tok_s=f"{rate:.0f}", refresh=False)
        last = step == cfg.steps - 1
        if (step + 1) % cfg.checkpoint_every == 0 or last or stop.requested:
            saved = _checkpoint_if_finite(model, opt, step + 1, out, out_loss.loss)
        if ((step + 1) % cfg.eval_every == 0 or last) and not stop.requested:
            report = diagnostics.base_model_report(
                model, heldout, n_env_episodes=cfg.eval_episodes, seed=cfg.seed
            )
            logger.log(step + 1, **{f"diag/{k}": v for k, v in report.items() if _is_num(v)})
            atomic_write_json(out / "diagnostics.json", {"step": step + 1, **report})
            bar.write(f"step {step + 1}: " + diagnostics.format_report(report))
        if stop.requested:
            if saved != step + 1:  # the signal came during the evaluation
                _checkpoint_if_finite(model, opt, step + 1, out, out_loss.loss)
            bar.write(
                f"stop requested ({stop.requested}): saved step {step + 1}; rerun the same "
                "command to resume"
            )
            break
    logger.close()
    return out / "model"


# the flags that choose the model: a resumed run keeps its training state's (resumed_model)
MODEL_FLAGS = (
    "preset",
    "arch",
    "d_model",
    "n_layers",
    "obs_encoder",
    "max_len",
    "attention_window",
    "action_components",
    "init_from",
    "name",
)


def recorded_config(cfg: PretrainConfig, out: Path, resume: dict | None) -> dict:
    """The run's ``config.json``: the flags, except that a resumed run records the model flags
    (architecture and name) it was started with, since those (not the defaults of the flags left
    out on resume) describe its model."""
    recorded = dataclasses.asdict(cfg)
    started = out / "config.json"
    if resume and "model_config" in resume and started.exists():
        first = json.loads(started.read_text())
        recorded.update({k: first[k] for k in MODEL_FLAGS if k in first})
    return recorded


def _checkpoint_if_finite(
    model: BaseModel, opt: torch.optim.Optimizer, step: int, out: Path, loss: torch.Tensor
) -> int:
    """Save the training state at ``step`` (returned), never over the last good checkpoint
    with diverged weights."""
    if not bool(torch.isfinite(loss)):
        raise FloatingPointError(
            f"the loss is {loss.item()} at step {step}: training diverged, so the checkpoint in "
            f"{out} was kept at its last finite step. Resume from it with a lower --lr (or "
            "--precision fp32), or check the data."
        )
    save_checkpoint(model, opt, step, out)
    return step


class _StopRequest:
    """Stops a training loop cleanly on the first SIGTERM (``kill``, ``timeout``) or SIGINT
    (Ctrl-C): the step under way finishes and is checkpointed, then the loop ends. A second
    signal gets its previous handling (Ctrl-C: ``KeyboardInterrupt``). SIGINT is left alone
    where it is ignored (background jobs of a script), so stop those with SIGTERM. Handlers
    are installed only while iterating, and only in the main thread (Python delivers signals
    there)."""

    def __init__(self) -> None:
        self.requested: str = ""

    def around(self, steps: Iterable[int]) -> Iterator[int]:
        if threading.current_thread() is not threading.main_thread():
            yield from steps
            return
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        previous = {s: h for s, h in previous.items() if h is not signal.SIG_IGN}

        def handler(signum: int, frame: Any) -> None:
            if self.requested:  # a second signal: as it would have been handled
                signal.signal(signum, previous[signum])
                signal.raise_signal(signum)
                return
            self.requested = signal.Signals(signum).name

        for s in previous:
            signal.signal(s, handler)
        try:
            yield from steps
        finally:
            for s, h in previous.items():
                signal.signal(s, h)


def learning_rate(cfg: PretrainConfig, step: int) -> float:
    """Warm-up, then constant, then (if `decay_steps`) linear decay to 0 at `steps`."""
    lr = cfg.lr * min(1.0, (step + 1) / max(1, cfg.warmup))
    if cfg.decay_steps > 0:
        lr *= min(1.0, (cfg.steps - step) / cfg.decay_steps)
    return lr


def save_checkpoint(model: BaseModel, opt: torch.optim.Optimizer, step: int, out: Path) -> None:
    torch_save_atomic(
        {
            "step": step,
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "model_config": model.config.to_dict(),
        },
        out / "train_state.pt",
    )
    atomic_save_pretrained(model, out / "model")
    # which step these weights are (Hugging Face Trainer's file name), for probes of a live run
    atomic_write_json(out / "model" / "trainer_state.json", {"global_step": step})


def _is_num(v) -> bool:
    return isinstance(v, (int, float, np.floating, np.integer)) and not (
        isinstance(v, float) and math.isnan(v)
    )


def run(cfg: PretrainConfig) -> None:
    path = pretrain(cfg)
    print(f"base model saved to {path}")


if __name__ == "__main__":
    import argparse

    from .common import add_config_arguments, config_from_args

    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_config_arguments(p, PretrainConfig)
    run(config_from_args(PretrainConfig, p.parse_args()))
    _ = dataclasses
