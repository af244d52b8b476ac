"""The ``internal-rl`` command: one entry point for the whole pipeline.

    internal-rl collect   write expert demonstrations to a dataset file
    internal-rl pretrain  train a base model on demonstrations (paper Eq. 5)
    internal-rl diagnose  base-model diagnostics (action quality, probes, free play)
    internal-rl probe     linear probes and ground-truth linear controllers per layer
    internal-rl discover  train metacontrollers (switching gate β, codes z) on a frozen base model
    internal-rl train     internal RL: stock SB3 PPO on an InternalControl env
    internal-rl baseline  raw-action RL: fine-tune the base model's own action head
    internal-rl compare   internal RL vs raw-action RL vs the oracle on held-out tasks (Fig. 8)
    internal-rl evaluate  success rate of a trained internal-RL policy (JSON for model cards)
    internal-rl sweep     grid/random search over any program, many seeds, on Ray Tune
    internal-rl sweep-plot  success curves and rate-distortion of a sweep
    internal-rl push      share a checkpoint or policy on the Hugging Face Hub (with a model card)
    internal-rl pull      download a Hub repo into the local cache and print its folder

Run ``internal-rl <command> --help`` for the options of each.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from .common import ANT_EXPERT_ENVS, add_config_arguments, config_from_args, env_of


@dataclass
class CollectConfig:
    out: str = field(default="data/grid_pretraining.npz", metadata={"help": "output .npz file"})
    env: str = field(default="GridPinpad-v0", metadata={"help": "environment id"})
    task: str = field(
        default="pretraining",
        metadata={"help": "pretraining, post, or a colour sequence such as 0-1-2-3"},
    )
    episodes: int = field(default=10_000, metadata={"help": "successful episodes to collect"})
    epsilon: float = field(
        default=0.0, metadata={"help": "grid: probability of a random safe action (paper: 0)"}
    )
    expert_mode: str = field(
        default="stochastic",
        metadata={
            "help": "ant: stochastic (varied data D for pretraining) or mean (clean data D* for "
            "metacontrollers and probes)"
        },
    )
    seed: int = field(default=0, metadata={"help": "random seed"})


def collect(cfg: CollectConfig) -> None:
    import time

    t0 = time.time()
    if cfg.env == "GridPinpad-v0":
        from internal_rl_gym.envs.grid_expert import collect_grid_demonstrations

        data = collect_grid_demonstrations(
            cfg.episodes, cfg.task, epsilon=cfg.epsilon, seed=cfg.seed, progress=True
        )
    elif cfg.env in ANT_EXPERT_ENVS:
        from internal_rl_gym.envs.ant_expert import collect_ant_demonstrations

        if cfg.expert_mode not in ("stochastic", "mean"):
            raise SystemExit(
                f"collect: --expert-mode must be stochastic or mean, got {cfg.expert_mode!r}."
            )
        data = collect_ant_demonstrations(
            cfg.episodes,
            cfg.task,
            seed=cfg.seed,
            stochastic=cfg.expert_mode == "stochastic",
            env_id=cfg.env,
            progress=True,
        )
    else:
        raise SystemExit(
            f"collect: no expert for {cfg.env!r}; supported: GridPinpad-v0, "
            + ", ".join(ANT_EXPERT_ENVS)
            + "."
        )
    path = data.save(cfg.out)
    dt = time.time() - t0
    print(
        f"wrote {data.n_episodes} episodes, {data.n_steps} steps to {path} "
        f"({data.n_steps / dt:,.0f} steps/s; mean length {data.lengths.mean():.1f}; "
        f"dropped {data.metadata.get('dropped', 0)} failed episodes)"
    )


@dataclass
class DiagnoseConfig:
    model: str = field(
        default="pinpad-transformer",
        metadata={"help": "base model: embedded default name, local directory or Hub repo id"},
    )
    episodes: int = field(default=1024, metadata={"help": "held-out expert episodes"})
    env_episodes: int = field(default=512, metadata={"help": "free-play episodes"})
    env: str = field(
        default="",
        metadata={
            "help": "the model's env: GridPinpad-v0 or an AntPinpad id (default: the one whose "
            "observations match the model)"
        },
    )
    act: str = field(
        default="sample",
        metadata={
            "help": "how the model picks each ant free-play action from its head: sample, "
            "greedy (a Gaussian's mean; a mixture: its most probable component's mean) or mean "
            "(a mixture's mean action)"
        },
    )
    greedy: bool = field(default=False, metadata={"help": "the same as --act greedy"})
    out: str = field(default="", metadata={"help": "write the report as JSON here"})
    seed: int = field(default=0, metadata={"help": "random seed"})


def _env_of(model) -> str:
    """The registered pinpad id whose observations a base model reads (grid or an ant variant)."""
    return env_of(model, "diagnose", "--env")


def diagnose(cfg: DiagnoseConfig) -> None:
    from internal_rl_gym.envs.grid_expert import collect_grid_demonstrations
    from internal_rl_gym.hub import load_base_model

    from . import diagnostics
    from .common import atomic_write_json
    from .rollout import ACTS

    act = "greedy" if cfg.greedy else cfg.act
    if cfg.greedy and cfg.act not in ("sample", "greedy"):
        raise SystemExit(f"diagnose: --greedy and --act {cfg.act} contradict; give one of them.")
    if act not in ACTS:
        raise SystemExit(f"diagnose: --act must be one of {', '.join(ACTS)}, got {act!r}.")
    model = load_base_model(cfg.model)
    env_id = cfg.env or _env_of(model)
    seed = 10_000_019 + cfg.seed
    if env_id == "GridPinpad-v0":
        heldout = collect_grid_demonstrations(cfg.episodes, "pretraining", seed=seed)
        report = diagnostics.base_model_report(model, heldout, cfg.env_episodes, seed=cfg.seed)
    elif env_id in ANT_EXPERT_ENVS:  # held-out mean-expert episodes, then free play
        from internal_rl_gym.envs.ant_expert import collect_ant_demonstrations

        heldout = collect_ant_demonstrations(
            cfg.episodes, "pretraining", seed=seed, stochastic=False, env_id=env_id
        )
        report = diagnostics.base_model_report(model, heldout, seed=cfg.seed)
        free_play = diagnostics.env_free_play(
            model, env_id, n_episodes=cfg.env_episodes, seed=cfg.seed, act=act
        )
        report.update({f"free_play_{k}": v for k, v in free_play.items()})
    else:
        raise SystemExit(
            f"diagnose: --env must be GridPinpad-v0 or one of {', '.join(ANT_EXPERT_ENVS)}, "
            f"got {env_id!r}."
        )
    print(diagnostics.format_report(report))
    if cfg.out:
        run = {"model": cfg.model, "env_id": env_id, "act": act}
        atomic_write_json(cfg.out, {**run, **report})


def _pretrain_command():
    from .pretrain import PretrainConfig, run

    return PretrainConfig, run


def _probe_command():
    from .probe import ProbeConfig, run

    return ProbeConfig, run


def _train_command():
    from .train import TrainConfig, run

    return TrainConfig, run


def _baseline_command():
    from .baseline import BaselineConfig, run

    return BaselineConfig, run


def _evaluate_command():
    from .evaluate import EvaluateConfig, run

    return EvaluateConfig, run


def _discover_command():
    from .discover import DiscoverConfig, run

    return DiscoverConfig, run


def _compare_command():
    from .compare import CompareConfig, run

    return CompareConfig, run


def _sweep_command():
    from .sweep import SweepConfig, run

    return SweepConfig, run


def _sweep_plot_command():
    from .sweep import PlotConfig, run_plot

    return PlotConfig, run_plot


def _push_command():
    from .hub_commands import PushConfig, push

    return PushConfig, push


def _pull_command():
    from .hub_commands import PullConfig, pull

    return PullConfig, pull


COMMANDS = {
    "collect": ("write expert demonstrations to a dataset file", lambda: (CollectConfig, collect)),
    "pretrain": ("train a base model on demonstrations (paper Eq. 5)", _pretrain_command),
    "diagnose": ("base-model diagnostics", lambda: (DiagnoseConfig, diagnose)),
    "probe": ("linear probes and ground-truth controllers per layer (Fig. 3, 4)", _probe_command),
    "discover": (
        "train metacontrollers: unsupervised abstract actions (paper Eq. 3)",
        _discover_command,
    ),
    "train": ("internal RL: SB3 PPO on an InternalControl env", _train_command),
    "baseline": (
        "raw-action RL baseline: fine-tune the base model's action head",
        _baseline_command,
    ),
    "compare": (
        "internal RL vs raw-action RL vs the oracle on held-out tasks (paper Fig. 8)",
        _compare_command,
    ),
    "evaluate": ("success rate of a trained internal-RL policy", _evaluate_command),
    "sweep": ("grid/random search over a program on Ray Tune, many seeds", _sweep_command),
    "sweep-plot": ("plot a sweep: success curves, rate-distortion over α", _sweep_plot_command),
    "push": ("upload a checkpoint or SB3 policy with its model card to the Hub", _push_command),
    "pull": ("download a Hub repo into the local cache and print its folder", _pull_command),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="internal-rl",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    argv = list(sys.argv[1:] if argv is None else argv)
    # Import only the chosen command's module (its dependencies load only when it runs):
    # `internal-rl collect` never imports torch (tests/test_cli.py checks it).
    chosen = argv[0] if argv and argv[0] in COMMANDS else None
    for name, (help_text, loader) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        if name == chosen:
            cfg_cls, fn = loader()
            add_config_arguments(p, cfg_cls)
            p.set_defaults(_cfg=cfg_cls, _fn=fn)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    args._fn(config_from_args(args._cfg, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
