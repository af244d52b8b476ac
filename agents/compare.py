"""The paper's Fig. 8 comparison on held-out tasks: internal RL against raw-action RL.

    internal-rl compare                                   # one task, one seed: minutes on 2 cores
    internal-rl compare --tasks 0-1-2-3-4-5 2-3-4-5-6-7 --seeds 0 1 2 --episodes 6000
    internal-rl compare --env ant --seeds 0 1 2 --episodes 6000 --threads 1   # Fig. 8, the ant

For every task and seed, with the same episode budget, it trains:

* ``ppo``: stock SB3 ``PPO("MlpPolicy")`` on ``InternalControl-v0`` with ``--base-model`` and
  ``--metacontroller`` (default: the embedded defaults; another base model needs its own
  metacontroller, from ``internal-rl discover``), as ``internal-rl train`` does;
* ``eq10``: internal RL with the paper's critic-free algorithm (Eq. 10) on the same env
  (``internal-rl train --algo eq10``);
* ``raw``: raw-action RL, the paper's Eq. 10 on the base model's own action head
  (``internal-rl baseline``);
* ``oracle``: Eq. 10 on the oracle env, whose actions are the ground-truth subgoal controllers
  (``--controllers``) at the base model's control layer: the ceiling internal RL should approach.

``--env`` picks the defaults: ``grid`` (GridPinpad-v0: pinpad-transformer, pinpad-metacontroller,
pinpad-subgoal-controllers, task 0-1-2-3-4-5) or ``ant`` (AntPinpadRoutes-v1: ant-transformer,
ant-metacontroller, ant-subgoal-controllers on ``InternalControl-Ant-v3``, acting with the mean
action, the post-training task ``post`` = 0-1-2-3); by default the base model's own (a
continuous-action model is an ant). Internal RL steps the env whose observations the base model
reads, whichever InternalControl id it runs under. The ant's success is divided by the expert's success on the post-training
task (``--expert-success``, default :data:`ANT_EXPERT_POST_SUCCESS`), as the paper's Fig. 8 does.

Each run writes its own ``curve.json`` under ``--runs`` and a finished run is reused, so a stopped
comparison resumes where it was; ``--finished-only`` reports the finished runs and trains
nothing. The comparison writes ``<out>.json`` (the success of every episode of every run, as a
string of 0s and 1s; success in windows of episodes with the median and interquartile range over
seeds; wall times; for the ant the same curves normalised by the expert's success) and
``<out>.png`` (success, normalised where the env has a normaliser, against episodes, Fig. 8
style).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from internal_rl_gym.hub import CheckpointError, read_config, resolve_checkpoint
from internal_rl_gym.internal_control_core import PRIMITIVE_SAMPLING

from .baseline import BaselineConfig, train_raw
from .common import atomic_write_bytes, atomic_write_json, env_of
from .common import command_line as _command_line
from .train import TrainConfig, recorded_kwargs, train

METHODS = {
    "ppo": "internal RL, stock SB3 PPO (MlpPolicy)",
    "eq10": "internal RL, paper Eq. 10",
    "raw": "raw-action RL, paper Eq. 10",
    "oracle": "oracle: ground-truth controllers, Eq. 10",
}


#: The ant expert's success on the post-training task 0-1-2-3 in AntPinpad-v0 (2 m cells,
#: unsolvable layouts filtered: the env's defaults): the stochastic gait + planner expert, the one
#: that recorded ant-hawk's pretraining data, over 200 episodes (0.915 ± 0.020). From
#: ``benchmarks/results/ant_expert_eval.json`` (task "post", mode "stochastic"; made by
#: ``python benchmarks/ant_expert_eval.py --episodes 200``, reported in the card
#: ``internal_rl_gym/checkpoints/ant-gait-expert/README.md``; the mean expert: 0.99). The paper
#: divides Fig. 8's ant success by its PPO expert's 0.7 (§C.1.1).
ANT_EXPERT_POST_SUCCESS = 0.915


@dataclass(frozen=True)
class EnvDefaults:
    """What ``--env`` sets: the defaults of the options left empty, and the InternalControl id."""

    tasks: tuple[str, ...]
    base_model: str
    metacontroller: str
    controllers: str  # "" = none shipped: no oracle
    internal_env: str  # the InternalControl id that ppo, eq10 and the oracle train on
    expert_success: float  # 0 = success is not normalised
    act: str  # how the base model acts under internal RL: the InternalControl id's


ENVS = {
    "grid": EnvDefaults(
        tasks=("0-1-2-3-4-5",),
        base_model="pinpad-transformer",
        metacontroller="pinpad-metacontroller",
        controllers="pinpad-subgoal-controllers",
        internal_env="InternalControl-v0",
        expert_success=0.0,
        act="sample",
    ),
    "ant": EnvDefaults(
        tasks=("post",),
        base_model="ant-transformer",
        metacontroller="ant-metacontroller",
        controllers="ant-subgoal-controllers",
        internal_env="InternalControl-Ant-v3",
        expert_success=ANT_EXPERT_POST_SUCCESS,
        act="mean",
    ),
}


@dataclass
class CompareConfig:
    env: str = field(
        default="",
        metadata={
            "help": "grid or ant: sets the defaults of the options below (default: the base "
            "model's: ant for a continuous-action model, else grid)"
        },
    )
    tasks: list[str] = field(
        default_factory=list,
        metadata={
            "help": "held-out tasks (colour sequences) to compare on (default: grid "
            "0-1-2-3-4-5; ant post = 0-1-2-3)"
        },
    )
    methods: list[str] = field(
        default_factory=list,
        metadata={
            "help": f"which of {', '.join(METHODS)} to run (default: all the env has; with a "
            "base model other than the default, no oracle without --controllers and no ppo "
            "or eq10 without --metacontroller)"
        },
    )
    episodes: int = field(default=6000, metadata={"help": "training episodes per run"})
    seeds: list[int] = field(default_factory=lambda: [0], metadata={"help": "random seeds"})
    base_model: str = field(
        default="",
        metadata={"help": "base model (default: pinpad-transformer; ant: ant-transformer)"},
    )
    metacontroller: str = field(
        default="",
        metadata={
            "help": "metacontroller for ppo and eq10 (default: pinpad-metacontroller; ant: "
            "ant-metacontroller; only for the default base model, which they steer)"
        },
    )
    controllers: str = field(
        default="",
        metadata={
            "help": "the oracle's ground-truth subgoal controllers (default: "
            "pinpad-subgoal-controllers; ant: ant-subgoal-controllers; for another base model, "
            "make them with `internal-rl probe`)"
        },
    )
    act: str = field(
        default="",
        metadata={
            "help": "how the base model reads its primitive actions under ppo, eq10 and the "
            "oracle: sample (the paper), greedy, or mean (continuous heads); raw-action RL "
            "always samples, since its policy is the head (default: grid sample, ant mean, "
            "as their InternalControl ids)"
        },
    )
    expert_success: float = field(
        default=0.0,
        metadata={
            "help": "divide success by this in the curves (Fig. 8's normalisation; 0 = the "
            f"env's: ant {ANT_EXPERT_POST_SUCCESS}, the expert's post-task success; grid none; "
            "1 = raw success)"
        },
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
    finished_only: bool = field(
        default=False,
        metadata={
            "help": "train nothing: report the runs under --runs that have finished (a "
            "comparison in progress or stopped); the others are listed under `unfinished`"
        },
    )


def env_of_base_model(name: str) -> str:
    """``"ant"`` for a continuous-action base model, else ``"grid"`` (its config.json only)."""
    try:
        config = read_config(resolve_checkpoint(name, kind="base_model"))
    except CheckpointError as err:
        raise SystemExit(f"compare: cannot read base model {name!r}: {err}") from None
    return "ant" if config.get("action_type") == "continuous" else "grid"


def task_env_of(base_model: str) -> str:
    """The pinpad id whose observations ``base_model`` reads (its config.json only), so that an
    ant model trained on AntPinpadRoutes-v1 is steered in that env under any InternalControl id."""
    config = read_config(resolve_checkpoint(base_model, kind="base_model"))
    return env_of(config, "compare", "--base-model with a model of a registered pinpad env")


def resolved(cfg: CompareConfig, check: bool = False) -> CompareConfig:
    """``cfg`` with ``--env`` chosen and every option left empty set to that env's default.
    ``check``: also read the base model's config (to infer the env, or to check it matches) and
    refuse an oracle without controllers."""
    env = cfg.env
    if env and env not in ENVS:
        raise SystemExit(f"compare: --env must be one of {', '.join(ENVS)}, got {env!r}.")
    if not 0 <= cfg.expert_success <= 1:
        raise SystemExit(
            f"compare: --expert-success is a success rate in (0, 1] (0: the env's default), "
            f"got {cfg.expert_success}."
        )
    if not env:
        env = env_of_base_model(cfg.base_model) if (check and cfg.base_model) else "grid"
    act = cfg.act or ENVS[env].act
    if act not in PRIMITIVE_SAMPLING:
        raise SystemExit(f"compare: --act must be sample, greedy or mean, got {act!r}.")
    if act == "mean" and env == "grid":
        raise SystemExit(
            "compare: --act mean reads a continuous head's mean action; the grid's actions are "
            "discrete: use --act sample or --act greedy."
        )
    d = ENVS[env]
    base_model = cfg.base_model or d.base_model
    if check and cfg.env:
        found = env_of_base_model(base_model)
        if found != env:
            raise SystemExit(
                f"compare: --env {env}, but {base_model} is a {found} base model "
                f"({'continuous' if found == 'ant' else 'discrete'} actions); pass --env {found} "
                f"or a {env} base model."
            )
    # the shipped controllers and metacontroller steer only the shipped base model
    shipped = base_model == d.base_model
    controllers = cfg.controllers or (d.controllers if shipped else "")
    metacontroller = cfg.metacontroller or (d.metacontroller if shipped else "")
    methods = list(cfg.methods) or [m for m in METHODS if m != "oracle" or controllers]
    if check and "oracle" in methods and not controllers:
        raise SystemExit(
            f"compare: the oracle needs ground-truth subgoal controllers, and none ship for the "
            f"{env} base model {base_model}: pass --controllers DIR (made by `internal-rl probe "
            f"--base-model {base_model} ...`) or leave oracle out (--methods ppo eq10 raw)."
        )
    if check and {"ppo", "eq10"} & set(methods) and not metacontroller:
        others = " ".join(m for m in methods if m not in ("ppo", "eq10")) or "raw"
        raise SystemExit(
            f"compare: internal RL (ppo, eq10) needs a metacontroller trained on {base_model}; "
            f"the shipped {d.metacontroller} steers {d.base_model} only: pass --metacontroller "
            f"DIR (made by `internal-rl discover --base-model {base_model} ...`) or leave ppo "
            f"and eq10 out (--methods {others})."
        )
    return replace(
        cfg,
        env=env,
        tasks=list(cfg.tasks) or list(d.tasks),
        methods=methods,
        base_model=base_model,
        metacontroller=metacontroller,
        controllers=controllers,
        expert_success=cfg.expert_success or d.expert_success,
        act=act,
    )


def run_dir(cfg: CompareConfig, method: str, task: str, seed: int) -> Path:
    """Where one run writes: the acting checkpoint and its weights are part of the name, so a
    comparison with another metacontroller, or with new weights under the same name (an
    embedded default that changed, a folder trained again), never reuses these runs."""
    cfg = resolved(cfg)
    acting = {"ppo": cfg.metacontroller, "eq10": cfg.metacontroller, "oracle": cfg.controllers}
    name = method
    if method in acting and cfg.act != "sample":
        name += f"-{cfg.act}"
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


def finished_run(out: Path, episodes: int, internal_control: dict | None = None) -> dict | None:
    """The curve.json of a run in ``out`` that trained at least ``episodes`` episodes. For
    internal RL, ``internal_control`` (the env's settings) must match the run's, so a run made
    under other settings (an InternalControl id's cap or acting mode that changed since) is never
    silently reused."""
    f = out / "curve.json"
    if not f.is_file():
        return None
    saved = json.loads(f.read_text())
    if internal_control is not None and saved.get("internal_control") != internal_control:
        raise SystemExit(
            f"compare: {out} holds a run made with other InternalControl settings "
            f"({saved.get('internal_control', 'not recorded')}; now {internal_control}): delete "
            "that folder to train it again, or pass another --runs."
        )
    return saved if len(saved["successes"]) >= episodes else None


def run_one(
    cfg: CompareConfig, method: str, task: str, seed: int, train_missing: bool = True
) -> dict | None:
    """One training run (or its finished result); returns its curve.json content. With
    ``train_missing=False`` only a finished result, else None."""
    cfg = resolved(cfg)
    if method not in METHODS:
        raise SystemExit(f"compare: unknown method {method!r}; choose from {', '.join(METHODS)}.")
    out = run_dir(cfg, method, task, seed)
    common = dict(task=task, episodes=cfg.episodes, seed=seed, out=str(out))
    if method == "raw":
        saved = finished_run(out, cfg.episodes)
        if saved is not None or not train_missing:
            return saved
        # the env follows the base model (GridPinpad-v0, or the AntPinpad id it reads)
        return train_raw(
            BaselineConfig(base_model=cfg.base_model, lr=cfg.raw_lr, threads=cfg.threads, **common)
        )
    train_cfg = internal_rl_config(cfg, method, task, seed)
    saved = finished_run(out, cfg.episodes, recorded_kwargs(train_cfg))
    return saved if saved is not None or not train_missing else train(train_cfg)


def internal_rl_config(cfg: CompareConfig, method: str, task: str, seed: int) -> TrainConfig:
    """The `internal-rl train` settings of one internal RL run (ppo, eq10 or the oracle)."""
    cfg = resolved(cfg)
    acting, algo, lr = {
        "ppo": (cfg.metacontroller, "ppo", cfg.ppo_lr),
        "eq10": (cfg.metacontroller, "eq10", cfg.eq10_lr),
        "oracle": (cfg.controllers, "eq10", cfg.eq10_lr),
    }[method]
    ppo = method == "ppo"
    return TrainConfig(
        env_id=ENVS[cfg.env].internal_env,
        task_env=task_env_of(cfg.base_model),
        primitive_sampling=cfg.act,
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
        task=task,
        episodes=cfg.episodes,
        seed=seed,
        out=str(run_dir(cfg, method, task, seed)),
    )


def windowed(successes: list[int], window: int) -> np.ndarray:
    """Mean success in consecutive windows of ``window`` episodes (an incomplete tail dropped)."""
    s = np.asarray(successes, dtype=float)
    n = len(s) // window
    return s[: n * window].reshape(n, window).mean(1)


def summarise(runs: dict[int, dict], window: int, final: int, normaliser: float = 0.0) -> dict:
    """Median and interquartile range over seeds of the windowed curves; final success per seed
    (mean of the last ``final`` episodes). With a ``normaliser`` (> 0), ``"normalised"`` holds
    the same statistics of success / normaliser (Fig. 8's ant: success / the expert's)."""
    curves = np.stack([windowed(r["successes"], window) for r in runs.values()])
    finals = np.array([float(np.mean(r["successes"][-final:])) for r in runs.values()])

    def stats(curves: np.ndarray, finals: np.ndarray) -> dict:
        return {
            "final_success_per_seed": finals.tolist(),
            "final_success_median": float(np.median(finals)),
            "curve_median": np.median(curves, 0).tolist(),
            "curve_q25": np.quantile(curves, 0.25, 0).tolist(),
            "curve_q75": np.quantile(curves, 0.75, 0).tolist(),
        }

    summary = {
        **stats(curves, finals),
        "seeds": list(runs),
        "seconds_per_seed": [float(r["seconds"]) for r in runs.values()],
        "window": window,
        "final_window": final,
    }
    if normaliser > 0:
        summary["normalised"] = {
            "by": normaliser,
            **stats(curves / normaliser, finals / normaliser),
        }
    return summary


def compare(cfg: CompareConfig, command: str = "") -> dict:
    unknown = sorted(set(cfg.methods) - set(METHODS))
    if unknown:
        raise SystemExit(f"compare: unknown method(s) {unknown}; choose from {list(METHODS)}.")
    asked = cfg.methods
    cfg = resolved(cfg, check=True)
    if not asked and not cfg.controllers:
        print(
            f"compare: oracle left out: no ground-truth subgoal controllers ship for "
            f"{cfg.base_model} (--controllers DIR adds it)",
            flush=True,
        )
    if cfg.window > cfg.episodes:
        raise SystemExit(f"compare: --window {cfg.window} exceeds --episodes {cfg.episodes}.")
    t0 = time.time()
    report: dict = {"command": command, "config": asdict(cfg), "tasks": {}}
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    final = min(cfg.final, cfg.episodes)
    for task in cfg.tasks:
        runs: dict[str, dict[int, dict]] = {m: {} for m in cfg.methods}
        unfinished = []
        for seed in cfg.seeds:
            for method in cfg.methods:
                r = run_one(cfg, method, task, seed, train_missing=not cfg.finished_only)
                if r is None:
                    unfinished.append(f"{method} seed {seed}")
                    print(f"{task} {method:6s} seed {seed}: not finished", flush=True)
                    continue
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
            "summary": {
                m: summarise(runs[m], cfg.window, final, cfg.expert_success)
                for m in cfg.methods
                if runs[m]
            },
            **({"unfinished": unfinished} if unfinished else {}),
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
            line = f"{task} {METHODS[m]}: median final success {s['final_success_median']:.3f}"
            if "normalised" in s:
                n = s["normalised"]
                line += f" ({n['final_success_median']:.3f} of the expert's {n['by']})"
            print(line)
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')}")
    return report


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(report["tasks"])
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        top = 1.0
        partial = "unfinished" in report["tasks"][task]  # then each method names its seed count
        for m, summary in report["tasks"][task]["summary"].items():
            s = summary.get("normalised", summary)  # Fig. 8's ant: success / the expert's
            x = (np.arange(len(s["curve_median"])) + 1) * summary["window"]
            style = {"eq10": "--", "raw": ":"}.get(m, "-")  # curves at 0 overlap: tell them apart
            marker = "o" if len(x) == 1 else None  # a one-point curve draws no line
            lw = 2 if m == "raw" else 1.5
            seeds = len(summary.get("seeds", report["config"]["seeds"]))
            label = METHODS[m] + (f" ({seeds} seeds)" if partial else "")
            ax.plot(x, s["curve_median"], style, lw=lw, marker=marker, label=label)
            ax.fill_between(x, s["curve_q25"], s["curve_q75"], alpha=0.2)
            top = max(top, *s["curve_q75"])
        ax.set_xlabel("episodes")
        by = report["config"].get("expert_success", 0)
        ax.set_ylabel(f"success / expert's success ({by:g})" if by else "success rate")
        ax.set_ylim(-0.02, top + 0.02)
        n = len(report["config"]["seeds"])
        over = "each method's finished seeds" if partial else f"{n} seed(s)"
        env = report["config"].get("env", "grid")
        ax.set_title(f"{env}: held-out task {task}\nmedian and IQR over {over}")
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
