"""Loading and sharing checkpoints: embedded defaults, local directories, Hugging Face Hub repos.

A checkpoint is a directory holding ``config.json`` (the constructor arguments),
``model.safetensors`` (the weights; never pickles) and ``README.md`` (the model card, see
:mod:`internal_rl_gym.cards`), as written by :func:`save_checkpoint`. Every loader accepts

* an embedded default name (:data:`DEFAULT_CHECKPOINTS`, shipped inside the package, offline);
* a local directory holding such files;
* a Hub repo id ``"org/name"``, with the keyword arguments ``revision=`` (branch, tag or commit
  sha), ``cache_dir=``, ``local_files_only=`` (or ``HF_HUB_OFFLINE=1``), ``token=``,
  ``endpoint=`` and ``force_download=``.

Loading is strict: a missing or unexpected weight, or a shape that does not match
``config.json``, is an error. Every failure raises :class:`CheckpointError` (a ``ValueError``)
whose message says what went wrong and how to fix it.

Hub downloads go through ``huggingface_hub.hf_hub_download``, one file at a time
(``config.json``, then ``model.safetensors`` pinned to the commit the config came from), into
the standard Hub cache (``$HF_HUB_CACHE/models--org--name/snapshots/<commit>/``). A second load
therefore works offline, and ``revision="<commit sha>"`` always gives the same weights. Weights
whose cache entry is named by a sha256 (Hub LFS files) are checked against it on every load.

Stable-Baselines3 policies are ``.zip`` files, which contain pickles: loading one can run
arbitrary code, so :func:`load_policy_from_hub` refuses unless ``trust_remote_code=True``.

The module stays whole (issue 31): resolving, downloading, strict loading, the compatibility
checks and saving are one path through the same resolver and :class:`CheckpointError`, read
top to bottom in that order; the SB3 policy loader at the end (~80 lines) reuses its downloads
and errors.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from internal_rl_gym._io import atomic_directory

CHECKPOINT_DIR = Path(__file__).parent / "checkpoints"
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
CARD_NAME = "README.md"

#: What a Hub loader forwards to ``hf_hub_download``.
HUB_KWARGS = ("revision", "cache_dir", "local_files_only", "token", "endpoint", "force_download")

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_SHA1 = re.compile(r"^[0-9a-f]{40}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class DefaultCheckpoint:
    """An embedded default: its folder in the package and the Hub repo it is published as."""

    name: str
    kind: str  # "base_model" | "metacontroller" | "subgoal_controllers"
    repo_id: str
    base_model: str = ""  # for a metacontroller: the default base model it was trained on

    @property
    def path(self) -> Path:
        return CHECKPOINT_DIR / self.name


#: Embedded defaults, by name. ``available_defaults()`` lists those whose files are committed.
DEFAULT_CHECKPOINTS: dict[str, DefaultCheckpoint] = {
    c.name: c
    for c in (
        DefaultCheckpoint("pinpad-transformer", "base_model", "internal-rl-gym/pinpad-transformer"),
        DefaultCheckpoint(
            "pinpad-metacontroller",
            "metacontroller",
            "internal-rl-gym/pinpad-metacontroller",
            base_model="pinpad-transformer",
        ),
        DefaultCheckpoint(
            "pinpad-segmenter",
            "metacontroller",
            "internal-rl-gym/pinpad-segmenter",
            base_model="pinpad-transformer",
        ),
        DefaultCheckpoint(
            "pinpad-subgoal-controllers",
            "subgoal_controllers",
            "internal-rl-gym/pinpad-subgoal-controllers",
            base_model="pinpad-transformer",
        ),
        DefaultCheckpoint("ant-transformer", "base_model", "internal-rl-gym/ant-transformer"),
        DefaultCheckpoint(
            "ant-metacontroller",
            "metacontroller",
            "internal-rl-gym/ant-metacontroller",
            base_model="ant-transformer",
        ),
        DefaultCheckpoint(
            "ant-subgoal-controllers",
            "subgoal_controllers",
            "internal-rl-gym/ant-subgoal-controllers",
            base_model="ant-transformer",
        ),
    )
}

_KIND_WORDS = {
    "base_model": "base model",
    "metacontroller": "metacontroller",
    "subgoal_controllers": "set of ground-truth subgoal controllers",
}
_LOADERS = {
    "base_model": "load_base_model",
    "metacontroller": "load_metacontroller",
    "subgoal_controllers": "load_subgoal_controllers",
}


class CheckpointError(ValueError):
    """A checkpoint could not be found, read or matched; the message says how to fix it."""


def available_defaults(kind: str | None = None) -> list[str]:
    """Names of embedded defaults whose files are present in this installation."""
    return sorted(
        n
        for n, c in DEFAULT_CHECKPOINTS.items()
        if (kind is None or c.kind == kind) and (c.path / WEIGHTS_NAME).is_file()
    )


# ---------------------------------------------------------------------------------------------
# resolving a name to a local folder


def checkpoint_kind(config: dict[str, Any]) -> str | None:
    """``"base_model"``, ``"metacontroller"``, ``"subgoal_controllers"`` or ``None``, from a
    ``config.json``'s keys."""
    if "n_subgoals" in config and "d_model" in config:
        return "subgoal_controllers"
    if "layer" in config and "n_z" in config:
        return "metacontroller"
    if "arch" in config and "obs_dim" in config:
        return "base_model"
    return None


def resolve_checkpoint(
    name_or_path: str | os.PathLike,
    *,
    kind: str | None = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    endpoint: str | None = None,
    force_download: bool = False,
) -> Path:
    """Return a local directory holding ``config.json`` and ``model.safetensors``.

    ``kind`` (``"base_model"`` or ``"metacontroller"``, or ``None`` for either) is checked
    against the checkpoint's ``config.json``. A Hub repo is downloaded into the Hub cache and
    the snapshot folder is returned.
    """
    name = os.fspath(name_or_path)
    default = DEFAULT_CHECKPOINTS.get(name)
    if default is not None and revision is None:
        if kind is not None and default.kind != kind:
            raise CheckpointError(
                f"{name!r} is the default {_KIND_WORDS[default.kind]}, not a "
                f"{_KIND_WORDS[kind]}: load it with {_LOADERS[default.kind]}({name!r})."
            )
        if not (default.path / WEIGHTS_NAME).is_file():
            raise CheckpointError(
                f"The embedded default {name!r} is not included in this installation yet "
                f"(no {default.path / WEIGHTS_NAME}). Train one with the `internal-rl` pipeline "
                f"and pass its directory, or load a Hub repo id."
            )
        folder = default.path
    else:
        path = Path(name).expanduser()
        if default is None and path.is_dir():
            for f in (CONFIG_NAME, WEIGHTS_NAME):
                if not (path / f).is_file():
                    raise CheckpointError(
                        f"{path} has no {f}: a checkpoint directory needs {CONFIG_NAME} and "
                        f"{WEIGHTS_NAME} (written by internal_rl_gym.hub.save_checkpoint or "
                        "save_pretrained)."
                    )
            folder = path
        elif default is None and path.exists():
            raise CheckpointError(
                f"{path} is a file; pass the checkpoint directory that holds {CONFIG_NAME} and "
                f"{WEIGHTS_NAME}."
            )
        else:
            repo_id = default.repo_id if default is not None else name
            if not _REPO_ID.match(repo_id) or ".." in repo_id or "--" in repo_id:
                raise CheckpointError(
                    f"Cannot find checkpoint {name!r}: it is not an embedded default "
                    f"({', '.join(sorted(DEFAULT_CHECKPOINTS))}), not an existing directory, and "
                    "not a Hugging Face repo id of the form 'org/name'."
                )
            hub = dict(
                revision=revision,
                cache_dir=cache_dir,
                local_files_only=local_files_only,
                token=token,
                endpoint=endpoint,
                force_download=force_download,
            )
            hint = (
                f" (there is no local directory {name!r} either)"
                if "/" in name and default is None
                else ""
            )
            folder = _download_checkpoint(repo_id, hint, **hub)
    if kind is not None:
        found = checkpoint_kind(read_config(folder))
        if found is not None and found != kind:
            raise CheckpointError(
                f"{name!r} is a {_KIND_WORDS[found]} checkpoint, not a {_KIND_WORDS[kind]}: load "
                f"it with internal_rl_gym.hub.{_LOADERS[found]}({name!r})."
            )
    return folder


def _download_checkpoint(repo_id: str, hint: str = "", **hub: Any) -> Path:
    expect = f"an internal-rl-gym checkpoint needs {CONFIG_NAME} and {WEIGHTS_NAME}"
    config = Path(download_file(repo_id, CONFIG_NAME, missing_hint=expect, repo_hint=hint, **hub))
    commit = config.parent.name
    if _SHA1.match(commit):  # pin the weights to the commit the config came from
        hub = {**hub, "revision": commit}
    weights = Path(download_file(repo_id, WEIGHTS_NAME, missing_hint=expect, **hub))
    if weights.parent != config.parent:
        raise CheckpointError(
            f"{repo_id}: {CONFIG_NAME} and {WEIGHTS_NAME} resolved to different snapshots "
            f"({config.parent} and {weights.parent}); pass revision=<commit sha>."
        )
    return config.parent


def download_file(
    repo_id: str,
    filename: str,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    endpoint: str | None = None,
    force_download: bool = False,
    missing_hint: str = "",
    repo_hint: str = "",
    optional: bool = False,
) -> str | None:
    """``hf_hub_download`` of one file of a model repo, with errors turned into
    :class:`CheckpointError` messages that say how to fix them. Returns the cached path, or
    ``None`` when ``optional`` and the repo has no such file."""
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{repo_id!r} (revision {revision or 'main'!r})"
    url = (endpoint or constants.ENDPOINT).rstrip("/")
    cache = os.fspath(cache_dir) if cache_dir is not None else constants.HF_HUB_CACHE
    try:
        return hf_hub_download(
            repo_id,
            filename,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            token=token,
            endpoint=endpoint,
            force_download=force_download,
            library_name="internal-rl-gym",
        )
    except GatedRepoError:
        raise CheckpointError(
            f"Hub repository {repo_id!r} at {url} is gated: request access on its page, then "
            "log in (`hf auth login`) or pass token=..."
        ) from None
    except RepositoryNotFoundError:
        raise CheckpointError(
            f"Hub repository {repo_id!r} was not found at {url}{repo_hint}. Check the id; if the "
            "repository is private, log in (`hf auth login`) or pass token=..."
        ) from None
    except RevisionNotFoundError:
        raise CheckpointError(
            f"Revision {revision!r} does not exist in Hub repository {repo_id!r}; use a "
            "branch, a tag or a full 40-character commit sha of that repository."
        ) from None
    except LocalEntryNotFoundError:
        offline = local_files_only or _offline_mode()
        if offline:
            raise CheckpointError(
                f"{filename} of {where} is not in the local Hub cache ({cache}) and downloads "
                "are disabled (HF_HUB_OFFLINE=1 or local_files_only=True). Download it once "
                "while online (unset HF_HUB_OFFLINE, local_files_only=False), point cache_dir "
                "at a cache that holds it, or pass a local checkpoint directory."
            ) from None
        raise CheckpointError(
            f"Could not download {filename} of {where}: the Hub at {url} cannot be reached, and "
            f"the file is not in the local Hub cache ({cache}). Check the network or proxy "
            "settings (HTTPS_PROXY, NO_PROXY, HF_ENDPOINT), or pass a local checkpoint directory."
        ) from None
    except EntryNotFoundError:
        if optional:
            return None
        raise CheckpointError(
            f"Hub repository {where} has no file {filename!r}"
            + (f"; {missing_hint}." if missing_hint else ".")
        ) from None
    except HFValidationError as err:
        raise CheckpointError(f"{repo_id!r} is not a valid Hub repo id: {err}") from None
    except HfHubHTTPError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        server = (getattr(err, "server_message", None) or "").strip()
        status = getattr(getattr(err, "response", None), "status_code", None)
        fix = (
            "log in again (`hf auth login`) or pass a valid token= argument"
            if status in (401, 403)
            else "retry later, check endpoint=, or pass a local checkpoint directory"
        )
        raise CheckpointError(
            f"Downloading {filename} of {where} from {url} failed: {first}"
            + (f" ({server})" if server and server not in first else "")
            + f"; {fix}."
        ) from None


def _offline_mode() -> bool:
    from huggingface_hub import constants

    check = getattr(constants, "is_offline_mode", None)
    return bool(check()) if callable(check) else bool(constants.HF_HUB_OFFLINE)


def _verify_cached_blob(path: str | os.PathLike) -> None:
    """A file in the Hub cache whose blob is named by a sha256 (LFS files) must hash to it."""
    blob = Path(os.path.realpath(path))
    if not _SHA256.match(blob.name):
        return
    h = hashlib.sha256()
    with open(blob, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    if h.hexdigest() != blob.name:
        raise CheckpointError(
            f"{path} is corrupted in the Hub cache (its sha256 does not match the Hub's). Delete "
            f"{blob} and load again, or pass force_download=True."
        )


# ---------------------------------------------------------------------------------------------
# loading


def read_config(folder: str | os.PathLike) -> dict[str, Any]:
    """The ``config.json`` of a checkpoint directory, as a dict."""
    path = Path(folder) / CONFIG_NAME
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(
            f"{path} is not readable JSON ({err}); re-save the checkpoint."
        ) from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path} must hold a JSON object of constructor arguments.")
    return config


def load_checkpoint(cls: type, folder: str | os.PathLike, source: str | None = None) -> Any:
    """Build ``cls(**config.json)`` and load ``model.safetensors`` into it strictly.

    Returns the model on CPU, in eval mode, with gradients off. ``source`` (how the user named
    the checkpoint) is kept on the model as ``_checkpoint_source`` for error messages.
    """
    import safetensors.torch
    from safetensors import SafetensorError

    folder = Path(folder)
    config = read_config(folder)
    params = inspect.signature(cls.__init__).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = sorted(k for k in config if k not in params)
    if unknown and not takes_any:
        warnings.warn(
            f"{folder / CONFIG_NAME} has fields this version of {cls.__name__} does not know "
            f"({', '.join(unknown)}); they are ignored. Was it saved by a newer internal-rl-gym?",
            stacklevel=3,
        )
        config = {k: v for k, v in config.items() if k in params}
    try:
        model = cls(**config)
    except (TypeError, ValueError) as err:
        raise CheckpointError(
            f"{folder / CONFIG_NAME} does not describe a {cls.__name__}: {err}. Pass a "
            f"checkpoint written by {cls.__name__}.save_pretrained or "
            "internal_rl_gym.hub.save_checkpoint."
        ) from None
    weights = folder / WEIGHTS_NAME
    _verify_cached_blob(weights)
    try:
        safetensors.torch.load_model(model, str(weights), strict=True, device="cpu")
    except SafetensorError as err:
        raise CheckpointError(
            f"{weights} is corrupted or not a safetensors file ({err}). Save the checkpoint "
            "again; for a Hub download, delete its cache entry or pass force_download=True."
        ) from None
    except RuntimeError as err:
        raise CheckpointError(
            f"The weights in {weights} do not match {folder / CONFIG_NAME} (loading is "
            "strict). Restore the config.json these weights were saved with, or save the "
            f"checkpoint again: {err}"
        ) from None
    model.eval()
    model.requires_grad_(False)
    model._checkpoint_source = source or str(folder)
    return model


def model_fingerprint(model: torch.nn.Module) -> str:
    """A sha256 over every tensor of a model (names, dtypes, shapes, values): the identity a
    metacontroller records for the base model it was trained on."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _source(name: str, folder: Path) -> str:
    """How to name a loaded checkpoint in messages: the name, plus the Hub commit if any."""
    commit = folder.name
    if _SHA1.match(commit) and folder.parent.name == "snapshots":
        return f"{name}@{commit}"
    return name


def load_base_model(name_or_path: str | os.PathLike = "pinpad-transformer", **hub_kwargs: Any):
    """Load a frozen base model (CPU, eval mode, no gradients).

    :param name_or_path: an embedded default (``"pinpad-transformer"``), a local checkpoint
        directory, or a Hub repo id ``"org/name"``.
    :param hub_kwargs: ``revision``, ``cache_dir``, ``local_files_only``, ``token``,
        ``endpoint``, ``force_download`` (see the module docstring).
    :raises CheckpointError: the checkpoint cannot be found, downloaded or read.
    """
    from internal_rl_gym.models import BaseModel

    folder = resolve_checkpoint(name_or_path, kind="base_model", **hub_kwargs)
    return load_checkpoint(BaseModel, folder, _source(os.fspath(name_or_path), folder))


def load_metacontroller(
    name_or_path: str | os.PathLike = "pinpad-metacontroller",
    base_model: torch.nn.Module | None = None,
    **hub_kwargs: Any,
):
    """Load a frozen metacontroller (CPU, eval mode, no gradients).

    :param name_or_path: an embedded default (``"pinpad-metacontroller"``), a local checkpoint
        directory, or a Hub repo id ``"org/name"``.
    :param base_model: the loaded base model it will steer. If given, it must be the model the
        metacontroller was trained on (same :func:`model_fingerprint`, width and depth); see
        :func:`check_compatible`.
    :param hub_kwargs: ``revision``, ``cache_dir``, ``local_files_only``, ``token``,
        ``endpoint``, ``force_download``.
    :raises CheckpointError: the checkpoint cannot be loaded, or belongs to another base model.
    """
    from internal_rl_gym.models import Metacontroller

    folder = resolve_checkpoint(name_or_path, kind="metacontroller", **hub_kwargs)
    meta = load_checkpoint(Metacontroller, folder, _source(os.fspath(name_or_path), folder))
    if base_model is not None:
        check_compatible(meta, base_model)
    return meta


def load_subgoal_controllers(
    name_or_path: str | os.PathLike = "pinpad-subgoal-controllers",
    base_model: torch.nn.Module | None = None,
    **hub_kwargs: Any,
):
    """Load frozen ground-truth subgoal controllers (the oracle of internal RL; CPU, eval mode).

    :param name_or_path: an embedded default (``"pinpad-subgoal-controllers"``), a local
        checkpoint directory (``internal-rl probe`` writes ``controllers_layer<l>/``), or a Hub
        repo id.
    :param base_model: the loaded base model they steer; checked as for a metacontroller
        (:func:`check_compatible`).
    :raises CheckpointError: the checkpoint cannot be loaded, or belongs to another base model.
    """
    from internal_rl_gym.models import SubgoalControllers

    folder = resolve_checkpoint(name_or_path, kind="subgoal_controllers", **hub_kwargs)
    ctrl = load_checkpoint(SubgoalControllers, folder, _source(os.fspath(name_or_path), folder))
    if int(ctrl.layer) < 0:
        raise CheckpointError(
            f"{folder / CONFIG_NAME} records no layer for these controllers (layer=-1); add the "
            "layer they were trained at (`internal-rl probe` records it)."
        )
    if base_model is not None:
        check_compatible(ctrl, base_model)
    return ctrl


def _names(metacontroller: torch.nn.Module, base_model: torch.nn.Module) -> tuple[str, str, str]:
    """(the metacontroller's name, the base model it records, the given base model's name)."""
    meta_name = getattr(metacontroller, "_checkpoint_source", "the metacontroller")
    recorded = getattr(metacontroller, "base_model_name", "") or "<not recorded>"
    base_cfg = getattr(base_model, "config", None)
    base_name = getattr(base_model, "_checkpoint_source", None) or (
        getattr(base_cfg, "name", "") or "an unnamed base model"
    )
    return meta_name, recorded, base_name


def _fix(recorded: str) -> str:
    return (
        f"Load the base model it was trained on (load_base_model({recorded!r})), or train a "
        "metacontroller for this base model (`internal-rl discover --base-model ...`)."
    )


def check_shapes(metacontroller: torch.nn.Module, base_model: torch.nn.Module) -> None:
    """Raise :class:`CheckpointError` unless ``metacontroller`` (or ground-truth controllers)
    can steer ``base_model`` at all: the same residual-stream width and a controlled layer the
    base model has. :func:`check_compatible` adds the weights' fingerprint."""
    meta_name, recorded, base_name = _names(metacontroller, base_model)
    d_meta, d_base = int(metacontroller.d_model), int(base_model.d_model)
    if d_meta != d_base:
        raise CheckpointError(
            f"Metacontroller {meta_name!r} steers a d_model={d_meta} residual stream, but base "
            f"model {base_name!r} has d_model={d_base}. {_fix(recorded)}"
        )
    layer, n_layers = int(metacontroller.layer), int(base_model.n_layers)
    if not 0 <= layer <= n_layers:
        raise CheckpointError(
            f"Metacontroller {meta_name!r} controls layer {layer}, which base model "
            f"{base_name!r} ({n_layers} layers) does not have. {_fix(recorded)}"
        )


def check_compatible(metacontroller: torch.nn.Module, base_model: torch.nn.Module) -> None:
    """Raise :class:`CheckpointError` unless ``metacontroller`` was trained on ``base_model``.

    Checks the residual-stream width, that the controlled layer exists (:func:`check_shapes`),
    and the recorded fingerprint of the base model's weights (skipped, with a warning, when
    none is recorded).
    """
    check_shapes(metacontroller, base_model)
    meta_name, recorded, base_name = _names(metacontroller, base_model)
    fix = _fix(recorded)
    expected = getattr(metacontroller, "base_model_fingerprint", "")
    if not expected:
        warnings.warn(
            f"Metacontroller {meta_name!r} records no base-model fingerprint, so it cannot be "
            f"checked against base model {base_name!r}.",
            stacklevel=3,
        )
        return
    actual = model_fingerprint(base_model)
    if actual != expected:
        raise CheckpointError(
            f"Metacontroller {meta_name!r} was trained on base model {recorded!r} (weights "
            f"sha256 {expected[:12]}…), but the base model given is {base_name!r} (sha256 "
            f"{actual[:12]}…): its controllers would steer the wrong residual stream. {fix}"
        )


# ---------------------------------------------------------------------------------------------
# saving


def save_checkpoint(
    model: torch.nn.Module, out_dir: str | os.PathLike, card: str | None = None
) -> Path:
    """Write ``config.json``, ``model.safetensors`` and ``README.md`` to ``out_dir``.

    The files are written into a temporary sibling directory which then replaces ``out_dir``,
    so a reader never sees a half-written checkpoint and a crash leaves the old one in place.
    ``card`` is the model card's markdown; by default one is rendered from the config with
    :func:`internal_rl_gym.cards.render_card` (no measured numbers).
    """
    out_dir = Path(out_dir)
    with atomic_directory(out_dir) as tmp:
        model.save_pretrained(tmp)
        if card is None:
            card = _default_card(model, tmp)
        if card is not None:
            (tmp / CARD_NAME).write_text(card, encoding="utf-8")
    return out_dir


def _default_card(model: torch.nn.Module, folder: Path) -> str | None:
    from internal_rl_gym.cards import render_card

    config = read_config(folder)
    kind = checkpoint_kind(config)
    if kind not in ("base_model", "metacontroller"):
        return None  # keep the card save_pretrained wrote
    n_params = sum(p.numel() for p in model.parameters())
    try:
        return render_card(kind, config=config, n_parameters=n_params)
    except Exception as err:  # a card must never cost a checkpoint
        warnings.warn(
            f"could not render the model card ({err!r}); kept the default one", stacklevel=3
        )
        return None


# ---------------------------------------------------------------------------------------------
# Stable-Baselines3 policies


def _sb3_algorithms() -> dict[str, Any]:
    import stable_baselines3 as sb3

    algos = {
        name.lower(): getattr(sb3, name) for name in ("A2C", "DDPG", "DQN", "PPO", "SAC", "TD3")
    }
    try:
        from sb3_contrib import RecurrentPPO

        for alias in ("recurrent-ppo", "recurrentppo", "ppo_lstm", "ppo-lstm"):
            algos[alias] = RecurrentPPO
    except ImportError:  # pragma: no cover - sb3-contrib is a dependency
        pass
    return algos


def load_policy_from_hub(
    repo_id: str,
    filename: str | None = None,
    *,
    trust_remote_code: bool = False,
    algo: str | type | None = None,
    env: Any = None,
    device: str = "auto",
    custom_objects: dict[str, Any] | None = None,
    **hub_kwargs: Any,
):
    """Download a Stable-Baselines3 policy ``.zip`` from the Hub and load it.

    **Security:** an SB3 zip contains pickled Python objects; loading one from an untrusted
    source can run arbitrary code. Only load policies from sources you trust, and say so with
    ``trust_remote_code=True`` (the same gate as ``huggingface_sb3.load_from_hub``).

    :param repo_id: ``"org/name"``; SB3-community repos are named ``org/<algo>-<EnvId>``.
    :param filename: the zip in the repo; default ``"<name>.zip"`` for repo ``org/<name>``
        (the SB3 convention, e.g. ``ppo-InternalControl-Pinpad-v0.zip``).
    :param algo: the SB3 class or its name (``"ppo"``, ``"recurrent-ppo"``, ...); default: the
        algorithm name the filename starts with (``ppo-...``, ``recurrent-ppo-...``).
    :param env, device, custom_objects: passed to ``<Algo>.load``.
    :param hub_kwargs: ``revision``, ``cache_dir``, ``local_files_only``, ``token``,
        ``endpoint``, ``force_download``.
    """
    if not trust_remote_code:
        raise CheckpointError(
            f"Refusing to load {repo_id!r}: a Stable-Baselines3 .zip contains pickled Python "
            "objects, which can run arbitrary code when loaded. If you trust its author, pass "
            "trust_remote_code=True."
        )
    filename = filename or repo_id.rsplit("/", 1)[-1] + ".zip"
    if isinstance(algo, str) or algo is None:
        algos = _sb3_algorithms()
        stem = Path(filename).name.lower()
        # the longest known name the filename starts with: "recurrent-ppo-X.zip" is not "ppo"
        guess = max((a for a in algos if stem.startswith(a + "-")), key=len, default=stem)
        name = (algo or guess).lower()
        if name not in algos:
            raise CheckpointError(
                f"Cannot tell which Stable-Baselines3 algorithm saved {filename!r}; pass "
                f"algo= one of {', '.join(sorted(algos))} (or the class)."
            )
        algo = algos[name]
    hint = "pass filename= the .zip it holds (SB3 repos 'org/ppo-EnvId' hold 'ppo-EnvId.zip')"
    path = download_file(repo_id, filename, missing_hint=hint, **hub_kwargs)
    _verify_cached_blob(path)
    import zipfile

    try:
        return algo.load(path, env=env, device=device, custom_objects=custom_objects)
    # SB3 asserts that a zip holds its "data" entry: a zip of something else fails that way
    except (zipfile.BadZipFile, KeyError, ValueError, AssertionError) as err:
        raise CheckpointError(
            f"{filename} of {repo_id!r} is not a loadable {algo.__name__} policy ({err}); "
            "download it again with force_download=True, or check algo=."
        ) from None
