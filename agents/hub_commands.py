"""``internal-rl push`` and ``internal-rl pull``: share checkpoints and policies on the Hub.

    internal-rl push runs/pinpad-transformer/model --repo-id me/pinpad-transformer --dry-run out/
    internal-rl push runs/pinpad-transformer/model --repo-id me/pinpad-transformer \\
        --eval-json runs/pinpad-transformer/eval.json
    internal-rl push --policy runs/ppo/model.zip --env-id InternalControl-Pinpad-v0 \\
        --repo-id me/ppo-InternalControl-Pinpad-v0 --eval-json runs/ppo/eval.json
    internal-rl pull me/pinpad-transformer --revision <commit sha>

``push`` packages a folder (checkpoint: ``config.json``, ``model.safetensors``, ``README.md``;
policy: ``<algo>-<EnvId>.zip``, ``README.md``; plus ``results.json`` when ``--eval-json`` is
given), checks that it loads, and uploads it with ``HfApi.upload_folder`` in one commit.
``--dry-run DIR`` writes exactly that folder to ``DIR`` and uploads nothing. Uploading needs a
token: ``hf auth login`` or ``HF_TOKEN``.

``pull`` downloads a repo's files into the Hugging Face cache (one ``hf_hub_download`` per file)
and prints the local snapshot folder; loaders then find them offline.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from internal_rl_gym import cards
from internal_rl_gym._io import atomic_directory
from internal_rl_gym.hub import (
    CARD_NAME,
    CONFIG_NAME,
    WEIGHTS_NAME,
    CheckpointError,
    checkpoint_kind,
    download_file,
    load_checkpoint,
    read_config,
    resolve_checkpoint,
)

RESULTS_NAME = "results.json"
# pretrain settings that --init-from replaces with the source model's config
INIT_REPLACES = frozenset(
    {"preset", "arch", "d_model", "obs_encoder", "max_len", "attention_window", "action_components"}
)
_TRAINING_COMMANDS = {
    "base_model": ("pretrain", ".pretrain", "PretrainConfig"),
    "metacontroller": ("discover", ".discover", "DiscoverConfig"),
    "policy": ("train", ".train", "TrainConfig"),
}


# ---------------------------------------------------------------------------------------------
# push


@dataclass
class PushConfig:
    checkpoint: str = field(
        default="",
        metadata={
            "positional": True,
            "help": "checkpoint directory (config.json + model.safetensors); omit with --policy",
        },
    )
    repo_id: str = field(
        default="", metadata={"metavar": "ORG/NAME", "help": "target Hub repository"}
    )
    revision: str = field(
        default="", metadata={"help": "branch to commit to, created if missing (empty: main)"}
    )
    private: bool = field(default=False, metadata={"help": "create the repository as private"})
    dry_run: str = field(
        default="",
        metadata={
            "metavar": "OUT_DIR",
            "help": "write the folder that would be uploaded to OUT_DIR; upload nothing",
        },
    )
    eval_json: str = field(
        default="",
        metadata={
            "metavar": "PATH",
            "help": "evaluation JSON: the card's measured numbers (uploaded as results.json)",
        },
    )
    policy: str = field(
        default="",
        metadata={"metavar": "ZIP", "help": "an SB3 policy .zip to push instead of a checkpoint"},
    )
    env_id: str = field(
        default="", metadata={"help": "the policy's env id (required with --policy)"}
    )
    algo: str = field(default="ppo", metadata={"help": "the policy's SB3 algorithm"})
    training_command: str = field(
        default="",
        metadata={"help": "command that trained it (empty: rebuilt from <run>/config.json)"},
    )
    data: str = field(default="", metadata={"help": "training data, for the card"})
    commit_message: str = field(default="", metadata={"help": "commit message"})
    endpoint: str = field(
        default="", metadata={"help": "Hub URL (empty: $HF_ENDPOINT or huggingface.co)"}
    )


def push(cfg: PushConfig, api: Any = None) -> Path | str:
    """Package, then upload (or, with ``--dry-run``, only package). Returns the dry-run folder
    or the commit URL. ``api`` replaces ``huggingface_hub.HfApi`` (tests)."""
    if not cfg.repo_id or cfg.repo_id.count("/") != 1:
        raise SystemExit("push: --repo-id org/name is required")
    if bool(cfg.checkpoint) == bool(cfg.policy):
        raise SystemExit("push: give either a checkpoint directory or --policy path.zip")
    results = _read_json(cfg.eval_json) if cfg.eval_json else None
    if cfg.dry_run:
        out = Path(cfg.dry_run)
        _package(cfg, out, results)
        print(f"dry run: wrote the folder that would be uploaded to {cfg.repo_id}:")
        for f in sorted(out.iterdir()):
            print(f"  {f}  ({f.stat().st_size:,} bytes)")
        print("nothing was uploaded; run again without --dry-run to upload.")
        return out
    with tempfile.TemporaryDirectory(prefix="internal-rl-push-") as tmp:
        folder = Path(tmp) / "upload"
        _package(cfg, folder, results)
        url = upload_folder(
            folder,
            cfg.repo_id,
            revision=cfg.revision or None,
            private=cfg.private,
            commit_message=cfg.commit_message or f"Upload {_what(cfg)} with internal-rl push",
            endpoint=cfg.endpoint or None,
            api=api,
        )
    print(f"uploaded to {cfg.repo_id}: {url}")
    return url


def _what(cfg: PushConfig) -> str:
    return "policy" if cfg.policy else "checkpoint"


def _package(cfg: PushConfig, out: Path, results: dict | None) -> Path:
    if cfg.policy:
        return package_policy(
            cfg.policy,
            out,
            env_id=cfg.env_id,
            repo_id=cfg.repo_id,
            algo=cfg.algo,
            results=results,
            training_command=cfg.training_command or None,
        )
    return package_checkpoint(
        cfg.checkpoint,
        out,
        repo_id=cfg.repo_id,
        results=results,
        training_command=cfg.training_command or None,
        data=cfg.data or None,
    )


def package_checkpoint(
    checkpoint: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    repo_id: str,
    results: dict | None = None,
    training_command: str | None = None,
    data: str | None = None,
) -> Path:
    """Write ``config.json``, ``model.safetensors``, ``README.md`` (and ``results.json``) for
    one checkpoint into ``out_dir``, after checking that the checkpoint loads strictly."""
    from internal_rl_gym.models import BaseModel, Metacontroller

    src = Path(checkpoint)
    if not src.is_dir():
        raise SystemExit(f"push: {src} is not a checkpoint directory")
    try:
        folder = resolve_checkpoint(src)
        config = read_config(folder)
        kind = checkpoint_kind(config)
        if kind is None:
            raise CheckpointError(
                f"{folder / CONFIG_NAME} is neither a base-model nor a metacontroller config"
            )
        model = load_checkpoint(
            {"base_model": BaseModel, "metacontroller": Metacontroller}[kind], folder
        )
    except CheckpointError as err:
        raise SystemExit(f"push: {err}") from None
    run_config = _run_config(src)
    if kind == "base_model" and run_config.get("init_from"):
        # a fine-tune takes its architecture from --init-from: the run's own size flags (the
        # preset's defaults) describe a model that was never built
        run_config = {k: v for k, v in run_config.items() if k not in INIT_REPLACES}
    card = cards.render_card(
        kind,
        repo_id=repo_id,
        config=config,
        n_parameters=sum(p.numel() for p in model.parameters()),
        results=results,
        training_command=training_command or _training_command(kind, run_config),
        training_config=run_config or None,
        data=data or _str(run_config.get("data")),
        **({"preset": _str(run_config.get("preset"))} if kind == "base_model" else {}),
    )
    files = {CONFIG_NAME: folder / CONFIG_NAME, WEIGHTS_NAME: folder / WEIGHTS_NAME}
    return _write_folder(out_dir, files, {CARD_NAME: card}, results)


def package_policy(
    policy_zip: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    env_id: str,
    repo_id: str,
    algo: str = "ppo",
    results: dict | None = None,
    training_command: str | None = None,
) -> Path:
    """Write ``<algo>-<EnvId>.zip`` (SB3-community naming), ``README.md`` (``library_name:
    stable-baselines3``) and ``results.json`` into ``out_dir``."""
    src = Path(policy_zip)
    if not env_id:
        raise SystemExit("push: --env-id is required with --policy (the env it was trained on)")
    if not zipfile.is_zipfile(src):
        raise SystemExit(f"push: {src} is not a zip file (expected an SB3 model.save() .zip)")
    with zipfile.ZipFile(src) as z:
        missing = {"data", "policy.pth"} - set(z.namelist())
    if missing:
        raise SystemExit(
            f"push: {src} is not a Stable-Baselines3 save (no {', '.join(sorted(missing))})"
        )
    filename = f"{algo.lower()}-{cards.env_name(env_id)}.zip"
    if repo_id.rsplit("/", 1)[-1] + ".zip" != filename:
        print(
            f"note: SB3-community repos are named org/{filename[:-4]}; with {repo_id!r}, load it "
            f"with load_policy_from_hub({repo_id!r}, {filename!r}, trust_remote_code=True)."
        )
    results = dict(results or {})
    if results and "env_id" not in results:
        results["env_id"] = env_id
    card = cards.render_card(
        "policy",
        repo_id=repo_id,
        env_id=env_id,
        algo=algo,
        filename=filename,
        results=results,
        training_command=training_command or _training_command("policy", results.get("config")),
    )
    return _write_folder(out_dir, {filename: src}, {CARD_NAME: card}, results or None)


def _write_folder(
    out_dir: str | os.PathLike,
    copies: dict[str, Path],
    texts: dict[str, str],
    results: dict | None,
) -> Path:
    """Fill a fresh ``out_dir`` (it must not exist, or be empty), atomically."""
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SystemExit(f"push: {out} already exists and is not empty; choose a new directory")
    with atomic_directory(out, replace=False) as tmp:
        for name, path in copies.items():
            shutil.copyfile(path, tmp / name)
        for name, text in texts.items():
            (tmp / name).write_text(text, encoding="utf-8")
        if results is not None:
            (tmp / RESULTS_NAME).write_text(json.dumps(results, indent=2) + "\n")
    return out


def upload_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    revision: str | None = None,
    private: bool = False,
    commit_message: str = "Upload with internal-rl push",
    endpoint: str | None = None,
    api: Any = None,
) -> str:
    """``create_repo(exist_ok=True)`` (+ ``create_branch``), then one ``upload_folder`` commit."""
    from huggingface_hub.errors import HfHubHTTPError

    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(endpoint=endpoint)
    try:
        api.create_repo(repo_id, repo_type="model", private=private or None, exist_ok=True)
        if revision and revision != "main":
            api.create_branch(repo_id, branch=revision, repo_type="model", exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            repo_type="model",
            revision=revision,
            commit_message=commit_message,
        )
    except HfHubHTTPError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SystemExit(
            f"push: uploading to {repo_id} failed: {first}\nUploading needs a write token: run "
            "`hf auth login` or set HF_TOKEN. Check the dry run with --dry-run DIR."
        ) from None
    return str(getattr(info, "commit_url", info))


def _read_json(path: str) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise SystemExit(f"push: cannot read --eval-json {path}: {err}") from None
    if not isinstance(data, dict):
        raise SystemExit(f"push: --eval-json {path} must hold a JSON object")
    return data


def _run_config(checkpoint: Path) -> dict[str, Any]:
    """The training run's config (``<run>/config.json``, written by the pipeline's logger) when
    the checkpoint is ``<run>/model``."""
    path = checkpoint.resolve().parent / CONFIG_NAME
    if checkpoint.resolve().name != "model" or not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _training_command(kind: str, run_config: Any) -> str | None:
    """``internal-rl <cmd> --flag value ...`` for the run config's non-default settings."""
    if not isinstance(run_config, dict) or not run_config or kind not in _TRAINING_COMMANDS:
        return None
    command, module, cls_name = _TRAINING_COMMANDS[kind]
    try:
        import importlib

        config_cls = getattr(importlib.import_module(module, __package__), cls_name)
    except (ImportError, AttributeError):
        return None
    parts = [f"internal-rl {command}"]
    for f in dataclasses.fields(config_cls):
        if f.name not in run_config:
            continue
        value = run_config[f.name]
        default = f.default if f.default is not dataclasses.MISSING else None
        if value == default:
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag if value else "--no-" + f.name.replace("_", "-"))
        elif isinstance(value, list):
            parts.append(f"{flag} " + " ".join(map(str, value)))
        elif value is not None:
            parts.append(f"{flag} {value}")
    return " \\\n    ".join(parts)


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None


# ---------------------------------------------------------------------------------------------
# pull


@dataclass
class PullConfig:
    repo_id: str = field(
        metadata={"positional": True, "metavar": "ORG/NAME", "help": "Hub repository"}
    )
    revision: str = field(default="", metadata={"help": "branch, tag or commit sha (empty: main)"})
    cache_dir: str = field(default="", metadata={"help": "Hub cache folder (empty: $HF_HUB_CACHE)"})
    filename: str = field(
        default="", metadata={"help": "fetch only this file (empty: the repo's known files)"}
    )
    endpoint: str = field(
        default="", metadata={"help": "Hub URL (empty: $HF_ENDPOINT or huggingface.co)"}
    )


def pull(cfg: PullConfig) -> Path:
    """Download a checkpoint repo (``config.json``, ``model.safetensors``, ``README.md``,
    ``results.json``) or an SB3 policy repo (``<name>.zip``, ``README.md``, ``results.json``)
    into the Hub cache, and print the snapshot folder."""
    hub = dict(
        revision=cfg.revision or None,
        cache_dir=cfg.cache_dir or None,
        endpoint=cfg.endpoint or None,
    )
    try:
        folder = pull_repo(cfg.repo_id, filename=cfg.filename or None, **hub)
    except CheckpointError as err:
        raise SystemExit(f"pull: {err}") from None
    print(folder)
    return folder


def pull_repo(repo_id: str, filename: str | None = None, **hub: Any) -> Path:
    """Fetch a repo's files into the Hub cache; return the snapshot folder."""
    if filename:
        return Path(download_file(repo_id, filename, **hub)).parent
    config = download_file(repo_id, CONFIG_NAME, optional=True, **hub)
    if config is not None and checkpoint_kind(read_config(Path(config).parent)) is not None:
        folder = resolve_checkpoint(repo_id, **hub)  # config + weights, pinned to one commit
    else:  # an SB3 policy repo (huggingface_sb3 also writes a config.json): <name>.zip
        name = repo_id.rsplit("/", 1)[-1] + ".zip"
        hint = (
            f"it holds neither {CONFIG_NAME} (a checkpoint) nor {name} (an SB3 policy); pass "
            "--filename"
        )
        folder = Path(download_file(repo_id, name, missing_hint=hint, **hub)).parent
    pinned = {**hub, "revision": folder.name} if len(folder.name) == 40 else hub
    for extra in (CARD_NAME, RESULTS_NAME):
        download_file(repo_id, extra, optional=True, **pinned)
    return folder
