"""Sweeps: grid or random search over any program of the pipeline, run as trials on Ray Tune.

    internal-rl sweep train --grid lr=1e-3,3e-4 --seeds 0 1 2 \\
        --set algo=eq10 task=0-1-2-3-4-5 episodes=2000 --out runs/sweep-lr
    internal-rl sweep discover-train --grid discover.alpha=0.05,0.1,0.3 --seeds 0 1 2 \\
        --set discover.steps=2000 train.algo=eq10 train.task=0-1-2-3-4-5 --out runs/sweep-alpha
    internal-rl sweep ... --address auto          # an existing Ray cluster instead of this machine
    internal-rl sweep-plot runs/sweep-alpha       # success curves, rate-distortion over α

A trial is one run of a program with one configuration and one seed: the very program that
``internal-rl <program>`` runs, its config built by the program's own argument parser from the
settings (``--set`` for all trials, ``--grid``/``--random`` for the swept ones, ``--seeds``).
``discover-train`` is the paper's selection by downstream RL: each trial trains a metacontroller
(``discover``, one α) and then internal RL (``train``) with it, and reports the RL success;
settings of one stage are prefixed (``discover.steps``, ``train.task``); an unprefixed name goes
to the stage that has it (``base_model`` and ``threads`` to both).

Every trial writes into its own folder, ``<out>/trials/<configuration>/seed_<s>/`` (the
program's outputs, ``log.txt``, ``trial_config.json`` when it starts and ``trial.json`` with its
metrics when it has finished). Rerunning the same command resumes: a trial whose ``trial.json``
exists is not run again, and ``pretrain``/``discover`` continue from their checkpoints in the
folder. On Ray Tune each trial is a function trainable with ``--cpus-per-trial`` cores
(``--gpus-per-trial`` GPUs); Ray prints a table of the running trials. With no ``--address``,
Ray starts embedded on this machine (no setup); with ``--address`` it joins a running cluster,
and then ``--out`` must be a folder every node mounts.

``<out>/summary.json`` gathers the finished trials: for every configuration the median, quartiles
and range across seeds of each metric, the median and interquartile range of the success curve
(windows of ``--window`` episodes), and the best configuration by ``--metric``. ``sweep-plot``
draws success against episodes per configuration (paper Fig. 7-8 style) and, for discover
trials, the rate-distortion curve (held-out KL against NLL) across configurations.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import re
import shutil
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .common import add_config_arguments, atomic_write_bytes, atomic_write_json
from .common import command_line as _command_line

RAY_MISSING = (
    "sweep: Ray Tune is not installed. It is an optional extra of this package: run\n"
    '    pip install -e ".[sweep]"\n'
    '(or pip install "ray[tune]") and run the sweep again.'
)

# A program: its stages (``internal-rl`` programs run in order inside one trial) and the metric
# and direction that choose the best configuration unless --metric/--mode say otherwise.
PROGRAMS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "pretrain": (("pretrain",), "task_consistent", "max"),
    "discover": (("discover",), "switch_f1", "max"),
    "train": (("train",), "final_success", "max"),
    "baseline": (("baseline",), "final_success", "max"),
    "compare": (("compare",), "eq10/final_success", "max"),
    "discover-train": (("discover", "train"), "final_success", "max"),
}
# settings the sweep itself gives every trial
RESERVED = {"seed": "--seeds", "seeds": "--seeds", "out": "--out", "runs": "--out"}
# settings an unprefixed name gives to every stage that has it
SHARED = {"base_model", "threads", "device"}


@dataclass
class SweepConfig:
    program: str = field(
        metadata={
            "positional": True,
            "metavar": "PROGRAM",
            "help": f"what one trial runs: {', '.join(PROGRAMS)} (discover-train: discover one "
            "α, then internal RL with its metacontroller; the paper's selection of α)",
        }
    )
    grid: list[str] = field(
        default_factory=list,
        metadata={
            "metavar": "NAME=V1,V2",
            "help": "swept settings, every combination (e.g. lr=1e-3,3e-4 discover.alpha=0.1,0.3)",
        },
    )
    random: list[str] = field(
        default_factory=list,
        metadata={
            "metavar": "NAME=DIST",
            "help": "randomly searched settings: uniform:A:B, loguniform:A:B, randint:A:B "
            "(A..B inclusive) or choice:V1,V2; --samples draws per grid point",
        },
    )
    samples: int = field(default=1, metadata={"help": "random configurations (with --random)"})
    search_seed: int = field(
        default=0, metadata={"help": "seed of the random draws (a rerun draws the same ones)"}
    )
    set: list[str] = field(
        default_factory=list,
        metadata={
            "metavar": "NAME=VALUE",
            "help": "fixed settings of every trial, as the program's options without the dashes "
            "(e.g. episodes=2000 task=0-1-2-3-4-5; list values separated by spaces)",
        },
    )
    seeds: list[int] = field(
        default_factory=lambda: [0], metadata={"help": "seeds of each configuration"}
    )
    metric: str = field(default="", metadata={"help": "metric that picks the best configuration "
                                              "(default: the program's; see docs/sweeps.md)"})  # fmt: skip
    mode: str = field(default="", metadata={"help": "max or min (default: the program's)"})
    out: str = field(default="runs/sweep", metadata={"help": "sweep folder (resumable)"})
    address: str = field(
        default="",
        metadata={
            "help": "Ray cluster to join (auto, or ray://host:10001); empty = start Ray on this "
            "machine"
        },
    )
    num_cpus: int = field(default=0, metadata={"help": "local Ray: cores to use (0 = all)"})
    cpus_per_trial: float = field(
        default=1.0, metadata={"help": "cores reserved per trial (also its torch threads)"}
    )
    gpus_per_trial: float = field(default=0.0, metadata={"help": "GPUs reserved per trial"})
    max_concurrent: int = field(
        default=0, metadata={"help": "trials at a time (0 = as many as the cores allow)"}
    )
    retries: int = field(default=0, metadata={"help": "reruns of a trial that raised an error"})
    window: int = field(default=250, metadata={"help": "episodes per point of the success curves"})
    final: int = field(
        default=500, metadata={"help": "final_success = mean of the last N episodes"}
    )


@dataclass
class PlotConfig:
    out: str = field(
        default="runs/sweep",
        metadata={"positional": True, "metavar": "OUT", "help": "the sweep folder"},
    )
    window: int = field(
        default=0, metadata={"help": "episodes per point of the curves (0 = the sweep's)"}
    )


@dataclass
class Trial:
    """One program run: a configuration (the swept settings) and a seed."""

    configuration: str  # e.g. "discover.alpha=0.1"
    params: dict[str, str]  # the swept settings, as the programs receive them
    seed: int
    folder: Path
    settings: dict[str, dict[str, str]]  # per stage: every setting given to its parser

    @property
    def name(self) -> str:
        return f"{self.configuration}/seed_{self.seed}"


# --- settings -> the programs' own configs ---------------------------------------------------
def program_parts(stage: str) -> tuple[type, Any]:
    """(config dataclass, run function) of an ``internal-rl`` program, as the CLI loads them."""
    from .cli import COMMANDS

    return COMMANDS[stage][1]()


def field_types(stage: str) -> dict[str, Any]:
    import typing

    cfg_cls, _ = program_parts(stage)
    return typing.get_type_hints(cfg_cls)


def build_config(stage: str, settings: dict[str, str]) -> Any:
    """The program's config from ``NAME=VALUE`` settings, through the program's own parser (the
    same one ``internal-rl <stage>`` uses), so types, defaults and errors are the CLI's."""
    import typing

    from .common import config_from_args

    cfg_cls, _ = program_parts(stage)
    types = typing.get_type_hints(cfg_cls)
    argv: list[str] = []
    for name, value in settings.items():
        if name not in types:
            known = ", ".join(sorted(types))
            raise SystemExit(
                f"sweep: `internal-rl {stage}` has no setting {name!r}; it has: {known}."
            )
        flag = "--" + name.replace("_", "-")
        if types[name] is bool:
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise SystemExit(f"sweep: {stage}.{name} is true or false, got {value!r}.")
            on = value.lower() in ("true", "1", "yes")
            argv.append(flag if on else "--no-" + name.replace("_", "-"))
        elif typing.get_origin(types[name]) is list:
            argv += [flag, *value.split()]
        else:
            argv += [flag, value]
    parser = argparse.ArgumentParser(prog=f"internal-rl sweep: {stage}", add_help=False)
    add_config_arguments(parser, cfg_cls)
    return config_from_args(cfg_cls, parser.parse_args(argv))


def parse_assignments(items: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise SystemExit(f"sweep: {what} takes NAME=VALUE, got {item!r}.")
        out[name.replace("-", "_")] = value
    return out


def stage_settings(
    program: str, given: dict[str, str], seed: int, folder: Path, cpus: float
) -> dict[str, dict[str, str]]:
    """Every setting of every stage of one trial: the user's (prefixed with a stage or not), the
    seed, the output folders, one torch thread per reserved core, no progress bar."""
    stages = PROGRAMS[program][0]
    fields_of = {s: field_types(s) for s in stages}
    per_stage: dict[str, dict[str, str]] = {s: {} for s in stages}
    for key, value in given.items():
        stage, _, name = key.rpartition(".")
        if name in RESERVED:
            raise SystemExit(
                f"sweep: the sweep sets {name!r} of every trial; use {RESERVED[name]}."
            )
        if stage:
            if stage not in stages:
                raise SystemExit(f"sweep: {key!r}: {program} trials run {', '.join(stages)}.")
            owners = [stage]
        else:
            owners = [s for s in stages if name in fields_of[s]]
            if len(owners) > 1 and name not in SHARED:
                raise SystemExit(
                    f"sweep: {name!r} is a setting of {' and '.join(owners)}: say which, e.g. "
                    f"{owners[0]}.{name}."
                )
            owners = owners or [stages[0]]  # unknown: its parser says so
        for s in owners:
            per_stage[s][name] = value
    for s in stages:
        mine, types = per_stage[s], fields_of[s]
        sub = folder / s if len(stages) > 1 else folder
        if s == "compare":
            mine.update(seeds=str(seed), runs=str(sub / "runs"), out=str(sub / "comparison"))
        else:
            mine.update(seed=str(seed), out=str(sub))
        if "threads" in types and "threads" not in mine:
            mine["threads"] = str(max(1, int(cpus)))
        if "progress" in types and "progress" not in mine:
            mine["progress"] = "false"
    if program == "discover-train":  # internal RL acts with the metacontroller discovered first
        discover_cfg = build_config("discover", per_stage["discover"])
        train = per_stage["train"]
        if train.get("base_model", discover_cfg.base_model) != discover_cfg.base_model:
            raise SystemExit("sweep: discover-train trains with the discovered model's base model; "
                             "set base_model once, without a prefix.")  # fmt: skip
        train["base_model"] = discover_cfg.base_model
        train["metacontroller"] = str(only_alpha_run(discover_cfg) / "model")
    return per_stage


def only_alpha_run(cfg: Any) -> Path:
    """The folder of a discover run with one α (a sweep sweeps α across trials)."""
    if len(cfg.alpha) != 1:
        raise SystemExit(
            f"sweep: a trial discovers with one α, got {cfg.alpha}; sweep α across trials with "
            "--grid alpha=0.05,0.1,0.3 (discover-train: discover.alpha=...)."
        )
    return Path(cfg.out) / f"alpha_{cfg.alpha[0]:g}"


def random_values(spec: dict[str, str], samples: int, seed: int) -> list[dict[str, str]]:
    """``samples`` draws of the ``--random`` settings, formatted as the programs receive them."""
    rng = np.random.default_rng(seed)
    draws: list[dict[str, str]] = [{} for _ in range(samples)]
    for name, dist in spec.items():
        kind, _, args = dist.partition(":")
        try:
            if kind == "choice":
                values = args.split(",")
                picked = [values[i] for i in rng.integers(len(values), size=samples)]
            elif kind == "randint":
                lo, hi = (int(a) for a in args.split(":"))
                picked = [str(v) for v in rng.integers(lo, hi + 1, size=samples)]
            elif kind in ("uniform", "loguniform"):
                lo, hi = (float(a) for a in args.split(":"))
                u = rng.uniform(size=samples)
                v = (
                    lo + u * (hi - lo)
                    if kind == "uniform"
                    else np.exp(np.log(lo) + u * (np.log(hi) - np.log(lo)))
                )
                picked = [f"{x:.3g}" for x in v]
            else:
                raise ValueError(kind)
        except ValueError:
            raise SystemExit(
                f"sweep: --random {name}={dist}: use uniform:A:B, loguniform:A:B, randint:A:B "
                "or choice:V1,V2."
            ) from None
        for d, v in zip(draws, picked):
            d[name] = v
    return draws


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=,+-]", "_", text)


def folder_name(params: dict[str, str]) -> str:
    return safe_name(",".join(f"{k}={v}" for k, v in params.items()) or "default")


def plan_trials(cfg: SweepConfig) -> list[Trial]:
    """Every (configuration, seed) of the sweep, in order; checks every trial's settings with
    the programs' parsers before anything runs."""
    if cfg.program not in PROGRAMS:
        raise SystemExit(
            f"sweep: unknown program {cfg.program!r}; choose from {', '.join(PROGRAMS)}."
        )
    if not cfg.seeds:
        raise SystemExit("sweep: --seeds needs at least one seed.")
    fixed = parse_assignments(cfg.set, "--set")
    grid = {k: v.split(",") for k, v in parse_assignments(cfg.grid, "--grid").items()}
    rand = parse_assignments(cfg.random, "--random")
    draws = random_values(rand, cfg.samples, cfg.search_seed) if rand else [{}]
    out = Path(cfg.out).resolve()
    trials: list[Trial] = []
    seen: set[str] = set()
    for values in itertools.product(*grid.values()):
        for draw in draws:
            params = {**dict(zip(grid, values)), **draw}
            configuration = folder_name(params)
            if configuration in seen:
                continue
            seen.add(configuration)
            for seed in cfg.seeds:
                folder = out / "trials" / configuration / f"seed_{seed}"
                settings = stage_settings(
                    cfg.program, {**fixed, **params}, seed, folder, cfg.cpus_per_trial
                )
                for stage, s in settings.items():
                    build_config(stage, s)  # the program's parser checks every value now
                trials.append(Trial(configuration, params, seed, folder, settings))
    return trials


def stage_configs(trial: Trial) -> dict[str, dict]:
    """The programs' configs of a trial, as plain JSON (what trial_config.json records)."""
    return json.loads(
        json.dumps({s: asdict(build_config(s, v)) for s, v in trial.settings.items()})
    )


def is_finished(trial: Trial) -> bool:
    """A finished trial has trial.json; a folder run with other settings is an error. A setting
    a program gained since the folder was written counts as equal when it has its default."""
    started = trial.folder / "trial_config.json"
    if started.is_file():
        saved = json.loads(started.read_text())
        diff = []
        for stage, mine in stage_configs(trial).items():
            theirs = saved.get(stage, {})
            default = json.loads(json.dumps(asdict(build_config(stage, {}))))
            for k, v in mine.items():
                was = theirs.get(k, default.get(k))
                if was != v:
                    diff.append(f"{stage}.{k}: {was!r} there, {v!r} now")
        if diff:
            raise SystemExit(
                f"sweep: {trial.folder} was run with other settings ({'; '.join(diff)}). "
                "Pass another --out, or delete that folder to run it again."
            )
    return (trial.folder / "trial.json").is_file()


# --- one trial ---------------------------------------------------------------------------------
def run_trial(program: str, trial: Trial, final: int) -> dict:
    """Run a trial's stages (the programs' own run functions), then record its metrics in
    ``trial.json``. A finished trial is returned as recorded, without running anything."""
    done = trial.folder / "trial.json"
    if is_finished(trial):
        return json.loads(done.read_text())
    trial.folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(trial.folder / "trial_config.json", stage_configs(trial))
    t0 = time.time()
    log = open(trial.folder / "log.txt", "a", buffering=1)  # noqa: SIM115 - closed below
    with log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        print(f"--- {trial.name}: {program} ({time.strftime('%Y-%m-%d %H:%M:%S')})")
        try:
            run_stages(trial)
        except SystemExit as err:  # a program's own error message; it would kill Ray's worker
            print(f"{trial.name}: {err.code}")
            raise RuntimeError(str(err.code)) from None
        except BaseException:
            traceback.print_exc()  # into the trial's log; Ray reports the error too
            raise
    metrics, curves = read_results(program, trial, final)
    record = {
        "program": program,
        "configuration": trial.configuration,
        "params": trial.params,
        "seed": trial.seed,
        "metrics": metrics,
        "curves": curves,  # success of every episode, as a string of 0s and 1s
        "seconds": time.time() - t0,
    }
    atomic_write_json(done, record)
    return record


def run_stages(trial: Trial) -> None:
    for stage, settings in trial.settings.items():
        cfg = build_config(stage, settings)
        if stage in ("train", "baseline"):  # these start over: drop an interrupted run's logs
            for stale in (Path(cfg.out) / "metrics.jsonl", Path(cfg.out) / "tb"):
                if stale.is_dir():
                    shutil.rmtree(stale)
                elif stale.exists():
                    stale.unlink()
        _, run = program_parts(stage)
        run(cfg)


def read_results(program: str, trial: Trial, final: int) -> tuple[dict, dict[str, str]]:
    """(metrics, success curves) of a trial, read from the files its programs wrote."""
    metrics: dict[str, float] = {}
    curves: dict[str, str] = {}
    for stage, settings in trial.settings.items():
        cfg = build_config(stage, settings)
        prefix = "discover/" if program == "discover-train" and stage == "discover" else ""
        if stage in ("train", "baseline"):
            run = json.loads((Path(cfg.out) / "curve.json").read_text())
            successes = run["successes"][: cfg.episodes]
            if len(successes) < cfg.episodes:
                raise RuntimeError(
                    f"{stage} stopped after {len(successes)} of {cfg.episodes} episodes"
                )
            metrics.update(curve_metrics(successes, final))
            if run.get("final_eval_success") is not None:
                metrics["final_eval_success"] = float(run["final_eval_success"])
            curves["success"] = "".join(str(int(x)) for x in successes)
        elif stage == "discover":
            report = json.loads((only_alpha_run(cfg) / "report.json").read_text())
            metrics.update({prefix + k: v for k, v in numbers(report).items()})
        elif stage == "pretrain":
            diag = json.loads((Path(cfg.out) / "diagnostics.json").read_text())
            if diag["step"] < cfg.steps:
                raise RuntimeError(f"pretrain stopped at step {diag['step']} of {cfg.steps}")
            metrics.update(numbers(diag))
        elif stage == "compare":
            report = json.loads((Path(cfg.out).with_suffix(".json")).read_text())
            for method in report["config"]["methods"]:  # as run: [] = the env's defaults
                finals = []
                for task, t in report["tasks"].items():
                    run = t["successes"][method][str(trial.seed)]
                    successes = [int(c) for c in run[: cfg.episodes]]
                    finals.append(curve_metrics(successes, final)["final_success"])
                    curves[f"{method} {task}"] = "".join(map(str, successes))
                metrics[f"{method}/final_success"] = float(np.mean(finals))
    return metrics, curves


def curve_metrics(successes: list[int], final: int) -> dict[str, float]:
    n = min(final, len(successes))
    return {
        "final_success": float(np.mean(successes[-n:])),
        "success": float(np.mean(successes)),
        "episodes": float(len(successes)),
    }


def numbers(report: dict) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in report.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def _tune_trial(config: dict, program: str, trials: dict[str, Trial], final: int, cwd: str) -> None:
    """Ray Tune's function trainable: one trial, its metrics reported once at the end."""
    from ray import tune

    if os.path.isdir(cwd):  # relative paths in the settings mean what they meant to the user
        os.chdir(cwd)
    record = run_trial(program, trials[config["trial"]], final)
    tune.report({**record["metrics"], "trial_seconds": record["seconds"]})


# --- the sweep -------------------------------------------------------------------------------
def sweep(cfg: SweepConfig, command: str = "") -> dict:
    trials = plan_trials(cfg)
    stages, metric, mode = PROGRAMS[cfg.program]
    metric, mode = cfg.metric or metric, cfg.mode or mode
    if mode not in ("max", "min"):
        raise SystemExit(f"sweep: --mode is max or min, got {cfg.mode!r}.")
    out = Path(cfg.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    plan = {
        "command": command,
        "program": cfg.program,
        "config": asdict(cfg),
        "metric": metric,
        "mode": mode,
        "trials": [
            {
                "name": t.name,
                "configuration": t.configuration,
                "params": t.params,
                "seed": t.seed,
                "folder": str(t.folder.relative_to(out)),
            }
            for t in trials
        ],  # fmt: skip
    }
    atomic_write_json(out / "sweep.json", plan)
    todo = [t for t in trials if not is_finished(t)]
    configurations = len({t.configuration for t in trials})
    print(
        f"sweep: {cfg.program}, {configurations} configuration(s) x {len(cfg.seeds)} seed(s) = "
        f"{len(trials)} trials; {len(trials) - len(todo)} already finished, {len(todo)} to run",
        flush=True,
    )
    t0 = time.time()
    failed: list[str] = []
    try:
        if todo:
            failed = run_on_ray(cfg, todo, metric)
    finally:  # Ctrl-C included: the summary of what has finished
        summary = summarise(out, window=cfg.window)
        summary["wall_seconds_this_run"] = time.time() - t0
        atomic_write_json(out / "summary.json", summary)
        plot(summary, out)
    print_summary(summary, out)
    if failed:
        raise SystemExit(
            f"sweep: {len(failed)} trial(s) failed:\n" + "\n".join(failed) + "\nFix the cause "
            "and rerun the same command: only the unfinished trials run."
        )
    return summary


def run_on_ray(cfg: SweepConfig, todo: list[Trial], metric: str) -> list[str]:
    """Run ``todo`` as Ray Tune trials; one line per failed trial (its error, its log)."""
    try:
        import ray
        from ray import tune
    except ImportError:
        raise SystemExit(RAY_MISSING) from None

    # the classic table (status, the trial's name, its metric) instead of a table per result
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    started_here = not ray.is_initialized()
    address = cfg.address or os.environ.get("RAY_ADDRESS", "")
    if started_here and address:
        ray.init(address=address, log_to_driver=False)
    elif started_here:  # a new Ray on this machine, even if another one runs here
        ray.init(
            address="local",
            num_cpus=cfg.num_cpus or None,
            include_dashboard=False,
            log_to_driver=False,
        )
    try:
        trainable = tune.with_parameters(
            _tune_trial,
            program=cfg.program,
            trials={t.name: t for t in todo},
            final=cfg.final,
            cwd=os.getcwd(),
        )
        resources = {"cpu": cfg.cpus_per_trial, "gpu": cfg.gpus_per_trial}
        tuner = tune.Tuner(
            tune.with_resources(trainable, resources),
            param_space={"trial": tune.grid_search([t.name for t in todo])},
            tune_config=tune.TuneConfig(
                max_concurrent_trials=cfg.max_concurrent or None,
                reuse_actors=True,  # a worker runs trial after trial (imports once)
                trial_dirname_creator=lambda t: safe_name(t.config["trial"]),
            ),
            run_config=tune.RunConfig(
                name=time.strftime("tune-%Y%m%d-%H%M%S"),
                storage_path=str(Path(cfg.out).resolve() / "ray"),
                failure_config=tune.FailureConfig(max_failures=cfg.retries),
                progress_reporter=tune.CLIReporter(
                    metric_columns=[metric, "trial_seconds"],
                    parameter_columns=["trial"],
                    max_column_length=60,
                    max_report_frequency=30,
                ),
                verbose=1,
            ),
        )
        results = tuner.fit()
        folders = {t.name: t.folder for t in todo}
        failed = []
        for r in results:
            if r.error is not None:
                lines = [line for line in str(r.error).splitlines() if line.strip()]
                name = r.config["trial"]
                why = lines[-1].strip() if lines else type(r.error).__name__
                failed.append(f"  {name}: {why} (log: {folders[name] / 'log.txt'})")
        return failed
    finally:
        if started_here:
            ray.shutdown()


# --- summary -----------------------------------------------------------------------------------
def windowed(successes: list[int], window: int) -> np.ndarray:
    """Mean success in consecutive windows of ``window`` episodes (an incomplete tail dropped)."""
    s = np.asarray(successes, dtype=float)
    n = len(s) // window
    return s[: n * window].reshape(n, window).mean(1)


def spread(values: list[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=float)
    return {
        "median": float(np.median(v)),
        "q25": float(np.quantile(v, 0.25)),
        "q75": float(np.quantile(v, 0.75)),
        "min": float(v.min()),
        "max": float(v.max()),
    }


def summarise(out: Path, window: int = 0) -> dict:
    """The sweep's summary, computed from the trials' own ``trial.json`` files."""
    plan = json.loads((out / "sweep.json").read_text())
    window = window or plan["config"]["window"]
    metric, mode = plan["metric"], plan["mode"]
    by_configuration: dict[str, list[dict]] = {}
    missing = []
    for t in plan["trials"]:
        f = out / t["folder"] / "trial.json"
        by_configuration.setdefault(t["configuration"], [])
        if f.is_file():
            by_configuration[t["configuration"]].append(json.loads(f.read_text()))
        else:
            missing.append(t["name"])
    configurations = []
    for name, records in by_configuration.items():
        entry: dict[str, Any] = {
            "name": name,
            "params": next(t["params"] for t in plan["trials"] if t["configuration"] == name),
            "seeds": [r["seed"] for r in records],
            "metrics": {},
            "curves": {},
        }
        if records:
            keys = [k for k in records[0]["metrics"] if all(k in r["metrics"] for r in records)]
            for k in keys:
                per_seed = [r["metrics"][k] for r in records]
                entry["metrics"][k] = {**spread(per_seed), "per_seed": per_seed}
            for c in records[0]["curves"]:
                runs = [windowed([int(x) for x in r["curves"][c]], window) for r in records]
                n = min(len(r) for r in runs)
                if n:
                    stacked = np.stack([r[:n] for r in runs])
                    entry["curves"][c] = {
                        "window": window,
                        "median": np.median(stacked, 0).tolist(),
                        "q25": np.quantile(stacked, 0.25, 0).tolist(),
                        "q75": np.quantile(stacked, 0.75, 0).tolist(),
                    }
            entry["trial_seconds"] = [r["seconds"] for r in records]
        configurations.append(entry)
    ranked = [
        c for c in configurations if metric in c["metrics"] and
        not math.isnan(c["metrics"][metric]["median"])
    ]  # fmt: skip
    best = None
    if ranked:
        pick = max if mode == "max" else min
        b = pick(ranked, key=lambda c: c["metrics"][metric]["median"])
        top = b["metrics"][metric]["median"]
        best = {"configuration": b["name"], "params": b["params"], "metric": metric, "mode": mode,
                "median": top, "seeds": len(b["seeds"]),
                # every configuration with the same median: the sweep did not separate them
                "tied_with": [c["name"] for c in ranked
                              if c is not b and c["metrics"][metric]["median"] == top]}  # fmt: skip
    return {
        "command": plan["command"],
        "program": plan["program"],
        "metric": metric,
        "mode": mode,
        "trials": {"finished": len(plan["trials"]) - len(missing), "total": len(plan["trials"])},
        "missing": missing,
        "best": best,
        "configurations": configurations,
    }


def print_summary(summary: dict, out: Path) -> None:
    metric = summary["metric"]
    for c in summary["configurations"]:
        m = c["metrics"].get(metric)
        shown = (
            f"{m['median']:.3f} (IQR {m['q25']:.3f}-{m['q75']:.3f}, {len(c['seeds'])} seeds)"
            if m else "no finished trial"
        )  # fmt: skip
        print(f"{c['name']}: {metric} {shown}")
    if summary["best"]:
        b = summary["best"]
        tied = f"; tied with {', '.join(b['tied_with'])}" if b["tied_with"] else ""
        print(
            f"best by {metric} ({b['mode']}): {b['configuration']} (median {b['median']:.3f}{tied})"
        )
    t = summary["trials"]
    print(f"{t['finished']} of {t['total']} trials finished; wrote {out / 'summary.json'}")
    if summary["missing"]:
        print("rerun the same command to run the others (finished trials are not run again)")


# --- plots -------------------------------------------------------------------------------------
def plot(summary: dict, out: Path) -> list[Path]:
    """``success.png``: success against episodes, median and IQR across seeds per configuration
    (and curve: compare trials have one per method and task); ``rate_distortion.png`` for
    discover trials: held-out KL (rate) against NLL (distortion), each seed and the medians."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    configurations = [c for c in summary["configurations"] if c["seeds"]]
    if any(c["curves"] for c in configurations):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for c in configurations:
            for name, s in c["curves"].items():
                x = (np.arange(len(s["median"])) + 1) * s["window"]
                label = c["name"] + ("" if name == "success" else f" {name}")
                (line,) = ax.plot(x, s["median"], label=f"{label} (n={len(c['seeds'])})")
                ax.fill_between(x, s["q25"], s["q75"], alpha=0.2, color=line.get_color())
        ax.set_xlabel("episodes")
        ax.set_ylabel("success rate")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{summary['program']} sweep: median and IQR across seeds")
        ax.legend(fontsize=7, loc="best")
        fig.tight_layout()
        written.append(_save(fig, out / "success.png"))
        plt.close(fig)
    prefix = "discover/" if summary["program"] == "discover-train" else ""
    rd = [
        c
        for c in configurations
        if f"{prefix}kl" in c["metrics"] and f"{prefix}nll" in c["metrics"]
    ]
    if rd:
        fig, ax = plt.subplots(figsize=(6, 4.5))
        medians = []
        for c in rd:
            kl, nll = c["metrics"][f"{prefix}kl"], c["metrics"][f"{prefix}nll"]
            (pts,) = ax.plot(nll["per_seed"], kl["per_seed"], "o", alpha=0.35, ms=4)
            ax.plot(nll["median"], kl["median"], "D", ms=8, color=pts.get_color(),
                    label=f"{c['name']} (n={len(c['seeds'])})")  # fmt: skip
            medians.append((nll["median"], kl["median"]))
        ax.plot(*zip(*sorted(medians)), "-", color="grey", lw=1)
        ax.set_xlabel("distortion: held-out action NLL")
        ax.set_ylabel("rate: held-out KL per step")
        ax.set_title("rate-distortion across configurations (diamonds: medians)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        written.append(_save(fig, out / "rate_distortion.png"))
        plt.close(fig)
    return written


def _save(fig: Any, path: Path) -> Path:
    return atomic_write_bytes(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))


# --- the CLI -----------------------------------------------------------------------------------
def command_line(cfg: SweepConfig) -> str:
    """The ``internal-rl sweep`` command that gives ``cfg`` (recorded in the summary)."""
    return _command_line(f"sweep {cfg.program}", cfg, skip=("program",))


def run(cfg: SweepConfig) -> None:
    sweep(cfg, command=command_line(cfg))


def run_plot(cfg: PlotConfig) -> None:
    out = Path(cfg.out)
    if not (out / "sweep.json").is_file():
        raise SystemExit(f"sweep-plot: {out} holds no sweep.json; pass the --out of a sweep.")
    summary = summarise(out, window=cfg.window)
    if not cfg.window:  # with another window, only the plots change
        saved = out / "summary.json"
        if saved.is_file():  # keep what only the sweep's run knew
            wall = json.loads(saved.read_text()).get("wall_seconds_this_run")
            summary["wall_seconds_this_run"] = wall
        atomic_write_json(saved, summary)
    for path in plot(summary, out):
        print(f"wrote {path}")
