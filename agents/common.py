"""Shared plumbing for the training programs: configs from the command line, seeding, run
directories, TensorBoard, atomic checkpoint files.

torch is imported inside the functions that use it, never at import time: ``agents.cli`` imports
this module for every command, and ``internal-rl collect`` must not pay for (or need) torch.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import sys
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from internal_rl_gym._io import atomic_write_file

if TYPE_CHECKING:
    import torch

C = TypeVar("C")


# --- typed configs -------------------------------------------------------------------------
def add_config_arguments(parser: argparse.ArgumentParser, config_cls: type) -> None:
    """Add one ``--flag`` per dataclass field; help text comes from ``field(metadata={"help"})``.

    Supported field types: bool (``--x/--no-x``), int, float, str, ``X | None`` and ``list[X]``.
    A field with ``metadata={"positional": True}`` becomes a positional argument (optional
    when it has a default); a field without a default is required.
    """
    hints = typing.get_type_hints(config_cls)
    for f in dataclasses.fields(config_cls):
        flag = "--" + f.name.replace("_", "-")
        kind = hints[f.name]
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = dataclasses.MISSING
        required = default is dataclasses.MISSING
        shown = not required and default not in ("", None, [])  # [] = see the help
        help_text = f.metadata.get("help", "") + (f" (default: {default!r})" if shown else "")
        extra = {"metavar": f.metadata["metavar"]} if "metavar" in f.metadata else {}
        if typing.get_origin(kind) in (typing.Union, types.UnionType):
            kind = next(a for a in typing.get_args(kind) if a is not type(None))
        if f.metadata.get("positional"):  # field(metadata={"positional": True}): `cmd VALUE`
            nargs = None if required else "?"
            kw = {} if required else {"default": default}
            parser.add_argument(f.name, type=kind, nargs=nargs, help=help_text, **kw, **extra)
        elif required:
            parser.add_argument(flag, type=kind, required=True, help=help_text, **extra)
        elif kind is bool:
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=default, help=help_text
            )
        elif typing.get_origin(kind) is list:
            (elem,) = typing.get_args(kind)
            parser.add_argument(
                flag, type=elem, nargs="+", default=default, help=help_text, **extra
            )
        else:
            parser.add_argument(flag, type=kind, default=default, help=help_text, **extra)


def config_from_args(config_cls: type[C], args: argparse.Namespace) -> C:
    names = {f.name for f in dataclasses.fields(config_cls)}
    return config_cls(**{k: v for k, v in vars(args).items() if k in names})


# --- reproducibility -----------------------------------------------------------------------
def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed python, numpy and torch (CPU runs are bit-reproducible with the same seed)."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def progress_bar(iterable: Any = None, **kwargs: Any):
    """A tqdm bar; redrawn at most every 30 s when stderr is a log file, not a terminal (a
    background run's log stays readable). Callers pass ``refresh=False`` to ``set_postfix`` so
    that it does not force a redraw."""
    from tqdm.auto import tqdm

    if not sys.stderr.isatty():
        kwargs.setdefault("mininterval", 30.0)
    return tqdm(iterable, **kwargs)


def set_threads(threads: int) -> None:
    """Torch CPU threads; 0 keeps torch's default. Beside another busy process (a background
    pretraining run) the default oversubscribes the cores: pass 1 or 2 there."""
    if threads:
        import torch

        torch.set_num_threads(threads)


#: Entries in each of oneDNN's CPU kernel caches (see :func:`bound_onednn_caches`).
ONEDNN_CACHE_CAPACITY = 64
#: The environment variables oneDNN (its primitive cache) and PyTorch's ideep layer (its own
#: cache of oneDNN computations) read their capacity from, 1024 entries each by default.
ONEDNN_CACHE_VARIABLES = ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY")


def bound_onednn_caches(capacity: int = ONEDNN_CACHE_CAPACITY) -> None:
    """Keep at most ``capacity`` entries in each of oneDNN's CPU kernel caches, unless the
    environment already sets their size.

    Under ``--precision bf16`` on a CPU, matrix products run through oneDNN, which keeps the
    kernels it builds in caches keyed by tensor shape. Training on episodes of varying length
    (the ant's: 36 to 499 steps) makes new kernels at nearly every new length T, ~13 MB per T
    for ant-cpu, so the default 1024 entries per cache are filled by some 40 lengths and then
    churn: long-lived cache entries land amid the step's freed activations and fragment the
    heap, which keeps growing (an ant pretraining run at batch 64 held 13 GB at step 400, where
    a step's live tensors peak at an estimated 5 GB; at batch 16 the bound halves the peak,
    benchmarks/pretrain_memory.py). 64 entries still hold a step's kernels (at one fixed length
    training runs as fast as with 1024; with 16 it is slower), and the bound changes no numbers
    (a kernel rebuilt is the same kernel).

    Both caches read the variable once, when first used: call this before the first bf16 step.
    """
    if capacity < 1:  # LRU_CACHE_CAPACITY=0 crashes PyTorch 2.13's ideep (segfault)
        raise ValueError(f"capacity must be >= 1, got {capacity}")
    for name in ONEDNN_CACHE_VARIABLES:
        os.environ.setdefault(name, str(capacity))


PRECISIONS = ("fp32", "bf16")


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")


def autocast(device: torch.device, precision: str):
    """``--precision bf16``: bfloat16 autocast for a forward pass (weights stay fp32)."""
    import torch

    check_precision(precision)
    return torch.autocast(device.type, torch.bfloat16, enabled=precision == "bf16")


def pick_device(device: str = "auto") -> torch.device:
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


# --- environments --------------------------------------------------------------------------
#: AntPinpad ids the ant expert records (same task, other observations), in the order env_of
#: tries them (the superseded -v0 last: making it warns that it is out of date)
ANT_EXPERT_ENVS = ("AntPinpad-v0", "AntPinpadRoutes-v1", "AntPinpadRoutes-v0")


def env_of(model: Any, command: str = "diagnose", flag: str = "--env") -> str:
    """The registered pinpad id whose observations a base model reads: GridPinpad-v0 for a
    discrete-action model, else the AntPinpad id (``ANT_EXPERT_ENVS``) whose observation size
    matches (AntPinpad-v0: 41, AntPinpadRoutes-v0: 49, AntPinpadRoutes-v1: 53). ``model`` is a
    base model or its config.json as a dict. ``command`` and ``flag`` name the program and its
    option in the error raised when none matches."""
    import gymnasium as gym

    import internal_rl_gym  # noqa: F401  (registers the ids)

    cfg = model if isinstance(model, dict) else vars(model.config)
    if cfg.get("action_type", "discrete") == "discrete":
        return "GridPinpad-v0"
    for env_id in ANT_EXPERT_ENVS:
        env = gym.make(env_id)
        shape = env.observation_space.shape
        env.close()
        if shape == (cfg["obs_dim"],):
            return env_id
    raise SystemExit(
        f"{command}: no AntPinpad id has {cfg['obs_dim']}-dimensional observations; pass {flag}."
    )


# --- files ---------------------------------------------------------------------------------
def resolve_layer(layer: int, base: Any) -> int:
    """A ``--layer`` argument: ``-1`` = the base model's recorded ``control_layer`` (L/2 when
    none is recorded); anything else must be a layer the model has."""
    if layer == -1:
        return int(base.control_layer)
    if not 0 <= layer <= int(base.n_layers):
        raise ValueError(
            f"--layer {layer} does not exist in a {base.n_layers}-layer base model: use 0 (the "
            f"embedding) .. {base.n_layers}, or -1 for its control_layer ({base.control_layer})."
        )
    return int(layer)


def atomic_write_bytes(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` then rename onto ``path``; never leaves a partial file behind."""
    return atomic_write_file(path, write)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as strict JSON (any reader parses it): NaN and ±inf become ``null``."""
    obj = _finite(obj)

    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=False, default=_json_default, allow_nan=False)
            f.write("\n")

    return atomic_write_bytes(path, write)


def _finite(o: Any) -> Any:
    """``o`` with every non-finite float (NaN, ±inf; numpy scalars and arrays too) as None."""
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    if isinstance(o, np.ndarray):
        return _finite(o.tolist())
    if isinstance(o, (float, np.floating)):
        return float(o) if math.isfinite(o) else None
    return o


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if dataclasses.is_dataclass(o):
        return dataclasses.asdict(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON-able: {type(o).__name__}")


def atomic_save_pretrained(model: Any, out_dir: str | os.PathLike, card: str | None = None) -> Path:
    """Write a checkpoint directory atomically (``config.json``, ``model.safetensors``,
    ``README.md``): :func:`internal_rl_gym.hub.save_checkpoint`."""
    from internal_rl_gym.hub import save_checkpoint

    return save_checkpoint(model, out_dir, card=card)


def torch_save_atomic(obj: Any, path: str | os.PathLike) -> Path:
    """Training state (model + optimiser + RNG) for resuming; local use only, loaded with
    ``weights_only=True``."""
    import torch

    return atomic_write_bytes(path, lambda tmp: torch.save(obj, tmp))


def torch_load_state(path: str | os.PathLike) -> dict:
    """A state written by :func:`torch_save_atomic`, mapped to the CPU so that one saved on a GPU
    resumes on any machine (``load_state_dict`` moves it to the model's device)."""
    import torch

    return torch.load(path, weights_only=True, map_location="cpu")


class Logger:
    """TensorBoard scalars plus a JSON-lines copy (``metrics.jsonl``) that scripts can read."""

    def __init__(
        self, run_dir: str | os.PathLike, config: Any = None, resume_step: int | None = None
    ) -> None:
        """``resume_step``: the step of the checkpoint a run resumes from. Rows logged after
        it (by the interrupted run, which will log them again) are dropped from
        ``metrics.jsonl``, so every step appears once. Steps count completed updates."""
        from torch.utils.tensorboard import SummaryWriter

        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        jsonl = self.run_dir / "metrics.jsonl"
        if resume_step is not None and jsonl.exists():
            kept = [
                line
                for line in jsonl.read_text().splitlines()
                if line and json.loads(line)["step"] <= resume_step
            ]
            text = "".join(f"{line}\n" for line in kept)
            atomic_write_bytes(jsonl, lambda tmp: Path(tmp).write_text(text))
        self.writer = SummaryWriter(str(self.run_dir / "tb"), purge_step=resume_step)
        self._jsonl = open(jsonl, "a")  # noqa: SIM115 - closed in close()
        if config is not None:
            cfg = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
            table = "|param|value|\n|-|-|\n" + "\n".join(f"|{k}|{v}|" for k, v in cfg.items())
            self.writer.add_text("hyperparameters", table)
            atomic_write_json(self.run_dir / "config.json", cfg)

    def log(self, step: int, **scalars: float) -> None:
        for k, v in scalars.items():
            self.writer.add_scalar(k, float(v), step)
        self._jsonl.write(
            json.dumps({"step": step, **{k: float(v) for k, v in scalars.items()}}) + "\n"
        )
        self._jsonl.flush()

    def close(self) -> None:
        self.writer.close()
        self._jsonl.close()


def command_line(program: str, cfg: Any, skip: tuple[str, ...] = ()) -> str:
    """The ``internal-rl <program>`` command that gives the dataclass config ``cfg``: the
    options that differ from their defaults (recorded in reports, so a result says how it was made)."""
    parts = [f"internal-rl {program}"]
    for f in dataclasses.fields(cfg):
        if f.name in skip:
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        value = getattr(cfg, f.name)
        if value == default:
            continue
        flag = f.name.replace("_", "-")
        if isinstance(value, bool):  # BooleanOptionalAction: --x / --no-x, no value
            parts.append(f"--{flag}" if value else f"--no-{flag}")
        else:
            shown = " ".join(map(str, value)) if isinstance(value, list) else str(value)
            parts.append(f"--{flag} {shown}")
    return " ".join(parts)
