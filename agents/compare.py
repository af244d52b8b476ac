"""The paper's Fig. 8 comparison on held-out tasks: internal RL against raw-action RL.

    internal-rl compare                                   # one task, one seed: minutes on 2 cores
    internal-rl compare --tasks 0-1-2-3-4-5 2-3-4-5-6-7 --seeds 0 1 2 --episodes 6000

For every task and seed, with the same episode budget, it trains:

* ``ppo``: stock SB3 ``PPO("MlpPolicy")`` on ``InternalControl-v0`` with ``--base-model`` and
  ``--metacontroller`` (default: the embedded defaults), as ``internal-rl train`` does;
* ``eq10``: internal RL with the paper's critic-free algorithm (Eq. 10) on the same env
  (``internal-rl train --algo eq10``);
* ``raw``: raw-action RL, the paper's Eq. 10 on the base model's own action head
  (``internal-rl baseline``);
* ``oracle``: Eq. 10 on the oracle env, whose actions are the ground-truth subgoal controllers
  (``--controllers``) at the base model's control layer: the ceiling internal RL should approach.

Each run writes its own ``curve.json`` under ``--runs`` and a finished run is reused, so a stopped
comparison resumes where it was. The comparison writes ``<out>.json`` (the success of every
episode of every run, as a string of 0s and 1s; success in windows of episodes with the median and interquartile range over
seeds; wall times) and ``<out>.png`` (success against episodes, Fig. 8 style).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from internal_rl_gym.hub import CheckpointError, resolve_checkpoint

from .baseline import BaselineConfig, train_raw
from .common import atomic_write_bytes, atomic_write_json
from .common import command_line as _command_line
from .train import TrainConfig, train

METHODS = {
    "ppo": "internal RL, stock SB3 PPO (MlpPolicy)",
    "eq10": "internal RL, paper Eq. 10",
    "raw": "raw-action RL, paper Eq. 10",
    "oracle": "oracle: ground-truth controllers, Eq. 10",
}


@dataclass
class CompareConfig:
    tasks: list[str] = field(
        default_factory=lambda: ["0-1-2-3-4-5"],
        metadata={"help": "held-out tasks (colour sequences) to compare on"},
    )
    methods: list[str] = field(
        default_factory=lambda: list(METHODS),
        metadata={"help": f"which of {', '.join(METHODS)} to run"},
    )
    episodes: int = field(default=6000, metadata={"help": "training episodes per run"})
    seeds: list[int] = field(default_factory=lambda: [0], metadata={"help": "random seeds"})
    base_model: str = field(default="pinpad-transformer", metadata={"help": "base model"})
    metacontroller: str = field(
        default="pinpad-metacontroller", metadata={"help": "metacontroller for ppo and eq10"}
    )
    controllers: str = field(
        default="pinpad-subgoal-controllers",
        metadata={"help": "the oracle's ground-truth subgoal controllers"},
    )
    n_envs: int = field(
        default=64, metadata={"help": "Eq. 10 and the oracle: episodes run in parallel"}
    )
    ppo_n_envs: int = field(default=16, metadata={"help": "SB3 PPO: episodes run in parallel"})
    ppo_n_steps: int = field(
        default=4, metadata={"help": "SB3 PPO: abstract steps per env per rollout"}
    )
    batch_episodes: int = field(default=64, metadata={"help": "Eq. 10: episodes per update"})
    eq10_lr: float = field(default=1e-3, metadata={"help": "Eq. 10 (internal RL, oracle) lr"})
    ppo_lr: float = field(default=1e-3, metadata={"help": "SB3 PPO learning rate"})
    raw_lr: float = field(default=3e-5, metadata={"help": "raw-action RL lr (paper: 3e-5)"})
    threads: int = field(default=0, metadata={"help": "torch CPU threads (0 = torch default)"})
    window: int = field(default=250, metadata={"help": "episodes per point of the curves"})
    final: int = field(default=500, metadata={"help": "the last N episodes = final success"})
    runs: str = field(default="runs/compare", metadata={"help": "one folder per run (resumable)"})
    out: str = field(default="runs/compare/comparison", metadata={"help": "<out>.json, .png"})


def run_dir(cfg: CompareConfig, method: str, task: str, seed: int) -> Path:
    """Where one run writes: the acting checkpoint and its weights are part of the name, so a
    comparison with another metacontroller, or with new weights under the same name (an
    embedded default that changed, a folder trained again), never reuses these runs."""
    acting = {"ppo": cfg.metacontroller, "eq10": cfg.metacontroller, "oracle": cfg.controllers}
    name = method
    if method in acting:
        kind = "subgoal_controllers" if method == "oracle" else "metacontroller"
        # the whole path, not its last part: discovered models all end in .../model
        name += f"-{acting[method].strip('./').replace('/', '_')}"
        name += weights_tag(acting[method], kind)
    base = cfg.base_model.replace("/", "_") + weights_tag(cfg.base_model, "base_model")
    return Path(cfg.runs) / base / task / name / f"seed{seed}"


def weights_tag(name: str, kind: str) -> str:
    """``-`` and the first 8 hex digits of the sha256 of a checkpoint's weights file; empty when
    the checkpoint cannot be found on this machine (nothing is downloaded here)."""
    try:
        folder = resolve_checkpoint(name, kind=kind, local_files_only=True)
        data = (folder / "model.safetensors").read_bytes()
    except (CheckpointError, OSError):
        return ""
    return "-" + hashlib.sha256(data).hexdigest()[:8]


def finished_run(out: Path, episodes: int) -> dict | None:
    """The curve.json of a run in ``out`` that trained at least ``episodes`` episodes."""
    f = out / "curve.json"
    if f.is_file():
        saved = json.loads(f.read_text())
        if len(saved["successes"]) >= episodes:
            return saved
    return None


def run_one(cfg: CompareConfig, method: str, task: str, seed: int) -> dict:
    """One training run (or its finished result); returns its curve.json content."""
    if method not in METHODS:
        raise SystemExit(f"compare: unknown method {method!r}; choose from {', '.join(METHODS)}.")
    out = run_dir(cfg, method, task, seed)
    saved = finished_run(out, cfg.episodes)
    if saved is not None:
        return saved
    common = dict(task=task, episodes=cfg.episodes, seed=seed, out=str(out))
    if method == "raw":
        return train_raw(
            BaselineConfig(base_model=cfg.base_model, lr=cfg.raw_lr, threads=cfg.threads, **common)
        )
    acting, algo, lr = {
        "ppo": (cfg.metacontroller, "ppo", cfg.ppo_lr),
        "eq10": (cfg.metacontroller, "eq10", cfg.eq10_lr),
        "oracle": (cfg.controllers, "eq10", cfg.eq10_lr),
    }[method]
    ppo = method == "ppo"
    return train(
        TrainConfig(
            env_id="InternalControl-v0",
            base_model=cfg.base_model,
            metacontroller=acting,
            algo=algo,
            lr=lr,
            n_envs=cfg.ppo_n_envs if ppo else cfg.n_envs,
            n_steps=cfg.ppo_n_steps,
            batch_episodes=cfg.batch_episodes,
            eval_every=cfg.episodes,
            progress=False,
            threads=cfg.threads,
            **common,
        )
    )


def windowed(successes: list[int], window: int) -> np.ndarray:
    """Mean success in consecutive windows of ``window`` episodes (an incomplete tail dropped)."""
    s = np.asarray(successes, dtype=float)
    n = len(s) // window
    return s[: n * window].reshape(n, window).mean(1)


def summarise(runs: dict[int, dict], window: int, final: int) -> dict:
    """Median and interquartile range over seeds of the windowed curves; final success per seed
    (mean of the last ``final`` episodes)."""
    curves = np.stack([windowed(r["successes"], window) for r in runs.values()])
    finals = [float(np.mean(r["successes"][-final:])) for r in runs.values()]
    return {
        "final_success_per_seed": finals,
        "final_success_median": float(np.median(finals)),
        "curve_median": np.median(curves, 0).tolist(),
        "curve_q25": np.quantile(curves, 0.25, 0).tolist(),
        "curve_q75": np.quantile(curves, 0.75, 0).tolist(),
        "seconds_per_seed": [float(r["seconds"]) for r in runs.values()],
        "window": window,
        "final_window": final,
    }


def compare(cfg: CompareConfig, command: str = "") -> dict:
    unknown = sorted(set(cfg.methods) - set(METHODS))
    if unknown:
        raise SystemExit(f"compare: unknown method(s) {unknown}; choose from {list(METHODS)}.")
    if cfg.window > cfg.episodes:
        raise SystemExit(f"compare: --window {cfg.window} exceeds --episodes {cfg.episodes}.")
    t0 = time.time()
    report: dict = {"command": command, "config": asdict(cfg), "tasks": {}}
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    final = min(cfg.final, cfg.episodes)
    for task in cfg.tasks:
        runs: dict[str, dict[int, dict]] = {m: {} for m in cfg.methods}
        for seed in cfg.seeds:
            for method in cfg.methods:
                r = run_one(cfg, method, task, seed)
                # every method is judged on the same budget: a batched run can finish a few
                # episodes past it
                r = {**r, "successes": r["successes"][: cfg.episodes]}
                runs[method][seed] = r
                print(
                    f"{task} {method:6s} seed {seed}: success over the last {final} episodes "
                    f"{np.mean(r['successes'][-final:]):.3f} ({r['seconds']:.0f}s)",
                    flush=True,
                )
        report["tasks"][task] = {
            "summary": {m: summarise(runs[m], cfg.window, final) for m in cfg.methods},
            # every episode's success as a string of 0/1 (a list of ints is ~10x the bytes)
            "successes": {
                m: {
                    str(s): "".join(str(int(x)) for x in r["successes"]) for s, r in runs[m].items()
                }
                for m in cfg.methods
            },
        }
        report["seconds"] = time.time() - t0
        atomic_write_json(out.with_suffix(".json"), report)  # after every task
        plot(report, out.with_suffix(".png"))
    for task, r in report["tasks"].items():
        for m, s in r["summary"].items():
            print(f"{task} {METHODS[m]}: median final success {s['final_success_median']:.3f}")
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')}")
    return report


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(report["tasks"])
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for m, s in report["tasks"][task]["summary"].items():
            x = (np.arange(len(s["curve_median"])) + 1) * s["window"]
            style = {"eq10": "--", "raw": ":"}.get(m, "-")  # curves at 0 overlap: tell them apart
            ax.plot(x, s["curve_median"], style, lw=2 if m == "raw" else 1.5, label=METHODS[m])
            ax.fill_between(x, s["curve_q25"], s["curve_q75"], alpha=0.2)
        ax.set_xlabel("episodes")
        ax.set_ylabel("success rate")
        ax.set_ylim(-0.02, 1.02)
        n = len(report["config"]["seeds"])
        ax.set_title(f"held-out task {task}\nmedian and IQR over {n} seed(s)")
    axes[0][0].legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    atomic_write_bytes(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)


def command_line(cfg: CompareConfig) -> str:
    """The `internal-rl compare` command that gives ``cfg`` (options that differ from the
    defaults), recorded in the report."""
    return _command_line("compare", cfg)


def run(cfg: CompareConfig) -> None:
    compare(cfg, command=command_line(cfg))
