"""Loading and sharing checkpoints: embedded defaults, local directories, Hugging Face Hub repos.

A checkpoint is a directory written by ``PyTorchModelHubMixin.save_pretrained``: ``config.json``
(the constructor arguments), ``model.safetensors`` (weights, never pickles) and ``README.md`` (the
model card, generated from ``hub_cards/``). Every loader accepts

* an embedded default name (:data:`DEFAULT_CHECKPOINTS`, shipped inside the package, offline);
* a local directory holding such files;
* a Hub repo id ``"org/name"``, with ``revision=`` (branch, tag or commit sha), ``cache_dir=``,
  ``local_files_only=`` (or ``HF_HUB_OFFLINE=1``), ``token=`` and ``endpoint=``.

Loading is strict: missing or unexpected weights are an error. Downloads go through
``huggingface_hub.hf_hub_download`` file by file (``config.json``, ``model.safetensors``) into the
standard Hub cache, so a second load works offline.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

CHECKPOINT_DIR = Path(__file__).parent / "checkpoints"
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


@dataclass(frozen=True)
class DefaultCheckpoint:
    """An embedded default: its folder in the package and the Hub repo it is published as."""

    name: str
    kind: str  # "base_model" | "metacontroller"
    repo_id: str

    @property
    def path(self) -> Path:
        return CHECKPOINT_DIR / self.name


#: Embedded defaults, by name. A name is listed once its folder is committed under checkpoints/.
DEFAULT_CHECKPOINTS: dict[str, DefaultCheckpoint] = {
    c.name: c
    for c in (
        DefaultCheckpoint("pinpad-transformer", "base_model", "internal-rl-gym/pinpad-transformer"),
        DefaultCheckpoint(
            "pinpad-metacontroller", "metacontroller", "internal-rl-gym/pinpad-metacontroller"
        ),
    )
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


def resolve_checkpoint(
    name_or_path: str | os.PathLike,
    *,
    kind: str,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    endpoint: str | None = None,
) -> Path:
    """Return a local directory holding ``config.json`` and ``model.safetensors``."""
    name = str(name_or_path)
    default = DEFAULT_CHECKPOINTS.get(name)
    if default is not None and revision is None:
        if default.kind != kind:
            raise CheckpointError(f"{name!r} is a {default.kind}, not a {kind}.")
        if not (default.path / WEIGHTS_NAME).is_file():
            raise CheckpointError(
                f"The embedded default {name!r} is not included in this installation yet "
                f"(no {default.path / WEIGHTS_NAME}). Train one with the `internal-rl` pipeline "
                "and pass its directory, or load a Hub repo id."
            )
        return default.path
    path = Path(name).expanduser()
    if path.is_dir():
        for f in (CONFIG_NAME, WEIGHTS_NAME):
            if not (path / f).is_file():
                raise CheckpointError(
                    f"{path} has no {f}: a checkpoint directory needs {CONFIG_NAME} and "
                    f"{WEIGHTS_NAME} (written by save_pretrained)."
                )
        return path
    repo_id = default.repo_id if default is not None else name
    if repo_id.count("/") != 1 or path.suffix or name.startswith((".", "/", "~")):
        raise CheckpointError(
            f"Cannot find checkpoint {name!r}: it is not an embedded default "
            f"({', '.join(sorted(DEFAULT_CHECKPOINTS))}), not an existing directory, and not a "
            "Hugging Face repo id of the form 'org/name'."
        )
    return _download(repo_id, revision, cache_dir, local_files_only, token, endpoint)


def _download(
    repo_id: str,
    revision: str | None,
    cache_dir: str | os.PathLike | None,
    local_files_only: bool,
    token: str | bool | None,
    endpoint: str | None,
) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{repo_id}@{revision or 'main'}"
    files = {}
    for filename in (CONFIG_NAME, WEIGHTS_NAME):
        try:
            files[filename] = hf_hub_download(
                repo_id,
                filename,
                revision=revision,
                cache_dir=cache_dir,
                local_files_only=local_files_only,
                token=token,
                endpoint=endpoint,
            )
        except RepositoryNotFoundError:
            raise CheckpointError(
                f"Hub repository {repo_id!r} was not found (or is private: pass token=...). "
                "Check the id, or pass a local directory or an embedded default name."
            ) from None
        except RevisionNotFoundError:
            raise CheckpointError(
                f"Revision {revision!r} does not exist in {repo_id!r}; use a branch, tag or "
                "commit sha of that repository."
            ) from None
        except LocalEntryNotFoundError:
            raise CheckpointError(
                f"{filename} of {where} is not in the local Hub cache and the Hub cannot be "
                "reached (offline: HF_HUB_OFFLINE=1 / local_files_only=True, or no network). "
                "Connect once to download it, or pass a local checkpoint directory or an "
                "embedded default name."
            ) from None
        except EntryNotFoundError:
            raise CheckpointError(
                f"{where} has no {filename}; it is not an internal-rl-gym checkpoint "
                f"(expected {CONFIG_NAME} and {WEIGHTS_NAME})."
            ) from None
    folder = Path(files[WEIGHTS_NAME]).parent
    if Path(files[CONFIG_NAME]).parent != folder:
        raise CheckpointError(f"{where}: config and weights resolved to different snapshots.")
    return folder


def read_config(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / CONFIG_NAME).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{folder / CONFIG_NAME} is not valid JSON: {err}") from None


def load_checkpoint(cls: type, folder: Path) -> Any:
    """``cls.from_pretrained(folder, strict=True)`` with errors that say what to do."""
    from safetensors import SafetensorError

    try:
        model = cls.from_pretrained(folder, strict=True)
    except SafetensorError as err:
        raise CheckpointError(
            f"{folder / WEIGHTS_NAME} is corrupted ({err}). Delete it (for a Hub download, the "
            "cache entry) and download it again, e.g. with force_download."
        ) from None
    except RuntimeError as err:
        if "state_dict" in str(err) or "size mismatch" in str(err):
            raise CheckpointError(
                f"The weights in {folder} do not match its config.json: {err}"
            ) from None
        raise
    except TypeError as err:
        raise CheckpointError(
            f"{folder / CONFIG_NAME} does not describe a {cls.__name__}: {err}"
        ) from None
    model.eval()
    model.requires_grad_(False)
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
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def load_base_model(name_or_path: str | os.PathLike = "pinpad-transformer", **kwargs: Any):
    """Load a frozen base model (eval mode, no gradients).

    ``name_or_path``: an embedded default (``"pinpad-transformer"``), a local directory, or a
    Hub repo id; ``kwargs``: ``revision``, ``cache_dir``, ``local_files_only``, ``token``,
    ``endpoint``.
    """
    from internal_rl_gym.models import BaseModel

    folder = resolve_checkpoint(name_or_path, kind="base_model", **kwargs)
    return load_checkpoint(BaseModel, folder)
