"""Model cards (``README.md``) for checkpoints and policies shared on the Hugging Face Hub.

Three kinds, one template each: ``internal_rl_gym/hub_cards/<kind>.md``, shipped as package data
and read into :data:`TEMPLATES` (kind → text) at import:

===================  ==================================  ====================================
kind                 what                                metadata ``library_name``
===================  ==================================  ====================================
``base_model``       a pretrained frozen base model      ``internal-rl-gym``
``metacontroller``   a metacontroller (z, β, decoder)    ``internal-rl-gym``
``policy``           an SB3 policy ``.zip`` (internal    ``stable-baselines3``
                     RL or a raw-action baseline)
===================  ==================================  ====================================

:func:`render_card` fills a template. The YAML front matter is built with
``huggingface_hub.ModelCardData`` and ``EvalResult`` (``library_name``, ``tags`` with the env
id, ``reinforcement-learning`` and ``deep-reinforcement-learning``, and a ``model-index`` with
the measured metrics as ``"mean +/- std"``), so ``huggingface_hub.ModelCard(text).data`` reads
it back.

The measured numbers come from ``results``, an evaluation JSON as the pipeline writes it. Any
of these shapes works::

    {"metrics": {"success_rate": {"mean": 0.93, "std": 0.26}, "mean_reward": 0.93},
     "n_eval_episodes": 100, "env_id": "InternalControl-Pinpad-v0"}
    {"mean_reward": 0.93, "std_reward": 0.26, "n_evaluation_episodes": 100}   # SB3 results.json
    {"env_success": 0.81, "probe_mid": 0.97, "accuracy_determined": 0.99}      # flat report

A flat report's numbers are all metrics (except settings such as ``seed`` or ``alpha``); a
metric's spread is read from ``std_<name>``, ``<name>_std`` or, for ``mean_<x>``,
``std_<x>``. Text fields the card needs (``env_id``, ``training_command``, ``data``,
``preset``, ``env_kwargs``, ``algo``, ``notes``: a "Limitations" paragraph under the numbers;
``config`` as the hyperparameter table) are taken from ``results`` when not passed explicitly.

The module stays whole (issue 31): it is one rendering path (:func:`metrics_from_results`,
:func:`card_data` for the front matter, :func:`render_card` and its section helpers) that reads
best in one place.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from importlib import resources
from string import Template
from typing import Any

KINDS = ("base_model", "metacontroller", "policy")
LIBRARY_NAMES = {
    "base_model": "internal-rl-gym",
    "metacontroller": "internal-rl-gym",
    "policy": "stable-baselines3",
}

CITATION = """\
@article{kobayashi2025emergent,
  title   = {Emergent temporal abstractions in autoregressive models enable hierarchical
             reinforcement learning},
  author  = {Kobayashi and others},
  journal = {arXiv preprint arXiv:2512.20605},
  year    = {2025},
  url     = {https://arxiv.org/abs/2512.20605}
}"""

_ABOUT = (
    "It was made with the `internal-rl-gym` package, an implementation of *Emergent temporal\n"
    "abstractions in autoregressive models enable hierarchical reinforcement learning*\n"
    "(Kobayashi et al., [arXiv 2512.20605](https://arxiv.org/abs/2512.20605))."
)

# The templates are `string.Template`s (`${name}` is filled by `render_card`; `$$` is a `$`),
# one file each in internal_rl_gym/hub_cards/, shipped as package data.


def _load_templates() -> dict[str, str]:
    folder = resources.files("internal_rl_gym") / "hub_cards"
    return {kind: (folder / f"{kind}.md").read_text(encoding="utf-8") for kind in KINDS}


TEMPLATES: dict[str, str] = _load_templates()

# Fields a caller may pass to render_card, per kind (anything else is a typo: TypeError).
_COMMON = {
    "repo_id",
    "results",
    "title",
    "model_name",
    "env_id",
    "training_command",
    "training_config",
    "data",
    "license",
    "extra_tags",
    "notes",
}
FIELDS: dict[str, set[str]] = {
    "base_model": _COMMON | {"config", "n_parameters", "preset"},
    "metacontroller": _COMMON
    | {"config", "n_parameters", "base_model_name", "base_model_fingerprint"},
    "policy": _COMMON | {"algo", "filename", "env_kwargs", "base_model_name", "metacontroller"},
}

_NOT_METRICS = {
    "seed",
    "alpha",
    "tolerance",
    "n_eval_episodes",
    "n_evaluation_episodes",
    "episodes",
    "env_episodes",
    "step",
    "steps",
    "total_timesteps",
    "timesteps",
    "n_envs",
    "seconds",
    "wall_seconds",
}
_NOT_RECORDED = "not recorded"


# ---------------------------------------------------------------------------------------------
# metrics


def metrics_from_results(
    results: Mapping[str, Any] | None,
) -> dict[str, tuple[float, float | None]]:
    """``{name: (mean, std or None)}`` from an evaluation JSON (see the module docstring)."""
    if not results:
        return {}
    out: dict[str, tuple[float, float | None]] = {}
    explicit = results.get("metrics")
    if isinstance(explicit, Mapping):
        for name, v in explicit.items():
            if isinstance(v, Mapping) and _is_number(v.get("mean")):
                std = v.get("std")
                out[name] = (float(v["mean"]), float(std) if _is_number(std) else None)
            elif isinstance(v, (list, tuple)) and len(v) == 2 and all(map(_is_number, v)):
                out[name] = (float(v[0]), float(v[1]))
            elif _is_number(v):
                out[name] = (float(v), None)
        return out
    numbers = {k: float(v) for k, v in results.items() if _is_number(v)}
    for name, value in numbers.items():
        if name in _NOT_METRICS or name.startswith("std_") or name.endswith("_std"):
            continue
        partners = [f"std_{name}", f"{name}_std"]
        if name.startswith("mean_"):
            partners.append("std_" + name[len("mean_") :])
        std = next((numbers[p] for p in partners if p in numbers), None)
        out[name] = (value, std)
    return out


def format_metric(mean: float, std: float | None) -> str | float:
    """``"0.93 +/- 0.26"`` (the Hub's convention for RL results), or the bare value."""
    if std is None:
        return float(_fmt(mean))
    return f"{_fmt(mean)} +/- {_fmt(std)}"


def _fmt(x: float) -> str:
    if x == 0 or not math.isfinite(x) or abs(x) >= 0.1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# ---------------------------------------------------------------------------------------------
# metadata


def card_data(kind: str, **fields: Any):
    """The card's metadata as a ``huggingface_hub.ModelCardData``."""
    from huggingface_hub import EvalResult, ModelCardData

    f = _complete(kind, fields)
    env_id = f["env_id"]
    tags = ["internal-rl-gym", "reinforcement-learning", "deep-reinforcement-learning"]
    if kind == "policy":
        tags = [env_id, *tags, "stable-baselines3"]
        if str(env_id).startswith("InternalControl"):
            tags.append("hierarchical-rl")
    else:
        tags = [env_id, *tags, "hierarchical-rl", kind.replace("_", "-")]
        tags += ["model_hub_mixin", "pytorch_model_hub_mixin"]  # what the mixin itself adds
    tags += list(f.get("extra_tags") or [])
    tags = list(dict.fromkeys(t for t in tags if t and t != _NOT_RECORDED))
    dataset = env_id if env_id != _NOT_RECORDED else "unknown"
    evals = [
        EvalResult(
            task_type="reinforcement-learning",
            task_name="reinforcement-learning",
            dataset_type=dataset,
            dataset_name=dataset,
            metric_type=name,
            metric_name=name,
            metric_value=format_metric(mean, std),
            verified=False,
        )
        for name, (mean, std) in f["metric_values"].items()
    ]
    return ModelCardData(
        library_name=LIBRARY_NAMES[kind],
        license=f.get("license"),
        tags=tags,
        model_name=f["model_name"],
        eval_results=evals or None,
    )


# ---------------------------------------------------------------------------------------------
# rendering


def _control_layer_summary(c: dict[str, Any]) -> str:
    """The layer controllers steer by default (``control_layer``; None = L/2)."""
    recorded, n_layers = c.get("control_layer"), c.get("n_layers")
    if recorded is None:
        half = n_layers // 2 if isinstance(n_layers, int) else "L/2"
        return f"{half} (L/2, the paper's default; not chosen by measurement)"
    return f"{recorded} (chosen by measurement: where ground-truth controllers steer best)"


def render_card(kind: str, **fields: Any) -> str:
    """A complete ``README.md`` (YAML front matter + markdown) for one checkpoint or policy.

    Common fields: ``repo_id``, ``results`` (the evaluation JSON, a dict), ``env_id``,
    ``training_command``, ``training_config`` (a dict, shown as a hyperparameter table),
    ``data``, ``title``, ``model_name``, ``license``, ``extra_tags``. Base models and
    metacontrollers also take ``config`` (their ``config.json``) and ``n_parameters``; base
    models ``preset``; policies ``algo``, ``filename``, ``env_kwargs`` and the
    ``base_model_name`` / ``metacontroller`` the environment ran. Missing text fields read
    "not recorded".
    """
    f = _complete(kind, fields)
    text = Template(TEMPLATES[kind]).substitute(
        {
            **{k: v for k, v in f.items() if isinstance(v, str)},
            "metadata": card_data(kind, **fields).to_yaml(),
            "metrics": _metrics_section(f),
            "training": _training_section(kind, f),
            "citation": CITATION,
            "about": _ABOUT,
        }
    )
    return text


def _complete(kind: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Fill every template field from the explicit fields, ``results`` and ``config``."""
    if kind not in KINDS:
        raise ValueError(f"unknown card kind {kind!r}; expected one of {', '.join(KINDS)}")
    unknown = set(fields) - FIELDS[kind]
    if unknown:
        raise TypeError(
            f"render_card({kind!r}) got unknown field(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(FIELDS[kind]))}"
        )
    results = dict(fields.get("results") or {})
    config = dict(fields.get("config") or {})
    f: dict[str, Any] = dict(fields)
    for key in ("env_id", "training_command", "data", "preset", "env_kwargs", "algo", "notes"):
        if f.get(key) in (None, "") and results.get(key) not in (None, ""):
            f[key] = results[key]
    if not f.get("training_config") and isinstance(results.get("config"), Mapping):
        f["training_config"] = results["config"]  # e.g. `internal-rl train`'s curve.json
    f["metric_values"] = metrics_from_results(results)
    f["n_eval"] = results.get("n_eval_episodes") or results.get("n_evaluation_episodes")
    repo_id = f.get("repo_id") or "<org>/<name>"
    f["repo_id"] = repo_id
    short = repo_id.rsplit("/", 1)[-1] if f.get("repo_id") != "<org>/<name>" else ""
    for key in ("training_command", "data"):
        f[key] = str(f.get(key) or _NOT_RECORDED)

    if kind == "base_model":
        f["env_id"] = str(f.get("env_id") or _guess_env(config) or _NOT_RECORDED)
        name = short or config.get("name") or "base model"
        f["model_name"] = str(f.get("model_name") or name)
        env = f" for {f['env_id']}" if f["env_id"] != _NOT_RECORDED else ""
        f["title"] = str(f.get("title") or f"{name}: base model{env}")
        f["preset"] = str(f.get("preset") or _guess_preset(config) or _NOT_RECORDED)
        arch = config.get("arch", "")
        f["architecture"] = {
            "transformer": "causal Transformer",
            "hawk": "Hawk (RG-LRU) network",
        }.get(arch, "model")
        f["details"] = _table(
            [
                ("environment", f"`{f['env_id']}`"),
                ("architecture", _arch_summary(config)),
                ("size preset", f["preset"]),
                ("parameters", _count(f.get("n_parameters"))),
                ("observation", _obs_summary(config)),
                ("actions", _action_summary(config)),
                ("control layer", _control_layer_summary(config)),
            ]
        )
    elif kind == "metacontroller":
        f["base_model_name"] = str(
            f.get("base_model_name") or config.get("base_model_name") or "<base model>"
        )
        fp = str(f.get("base_model_fingerprint") or config.get("base_model_fingerprint") or "")
        f["env_id"] = str(f.get("env_id") or _NOT_RECORDED)
        f["task_env_id"] = f["env_id"] if f.get("env_id") != _NOT_RECORDED else "GridPinpad-v0"
        name = short or "metacontroller"
        f["model_name"] = str(f.get("model_name") or name)
        f["title"] = str(f.get("title") or f"{name}: metacontroller for {f['base_model_name']}")
        f["layer"] = str(config.get("layer", "L/2"))
        f["n_z"] = str(config.get("n_z", "n_z"))
        categorical = config.get("code") == "categorical"
        f["code_summary"] = (
            f"one of {f['n_z']} one-hot codes" if categorical else f"{f['n_z']} dimensions"
        )
        if config.get("posterior") == "hindsight":
            f["objective"] = (
                "It was discovered without subgoal labels: each segment's code is inferred in "
                "hindsight from the residual stream of the segment's end state (layer "
                f"{config.get('hindsight_layer', 0)}), the segments come from another "
                "metacontroller's gate, and the controllers and the switching unit are trained "
                "on expert demonstrations (`internal-rl discover --posterior hindsight`)."
            )
        else:
            f["objective"] = (
                "It was discovered without subgoal labels by maximising an ELBO over expert "
                "demonstrations."
            )
        rank = config.get("rank")
        f["controller"] = "full-rank" if rank == 0 else f"rank-{rank}" if rank else "low-rank"
        f["details"] = _table(
            [
                ("base model", f"`{f['base_model_name']}`"),
                ("base model fingerprint (sha256)", f"`{fp}`" if fp else _NOT_RECORDED),
                ("environment", f"`{f['env_id']}`"),
                ("controlled layer", f["layer"]),
                ("controller code size n_z", f["n_z"]),
                ("controller", f"{f['controller']} `U = f_hyp(z)`"),
                ("parameters", _count(f.get("n_parameters"))),
            ]
        )
    else:  # policy
        f["env_id"] = str(f.get("env_id") or _NOT_RECORDED)
        algo = str(f.get("algo") or "ppo")
        f["algo_name"] = {
            "recurrentppo": "RecurrentPPO",
            "recurrent-ppo": "RecurrentPPO",
            "ppo_lstm": "RecurrentPPO",
        }.get(algo.lower(), algo.upper())
        f["model_name"] = str(f.get("model_name") or f["algo_name"])
        f["title"] = str(f.get("title") or f"{f['algo_name']} agent for {f['env_id']}")
        f["filename"] = str(f.get("filename") or f"{algo.lower()}-{env_name(f['env_id'])}.zip")
        env_kwargs = dict(f.get("env_kwargs") or {})
        f["env_kwargs"] = "".join(f", {k}={v!r}" for k, v in env_kwargs.items())
        internal = f["env_id"].startswith("InternalControl")
        f["summary"] = (
            "This is **internal RL**: each action is a controller code `z` for a frozen "
            "metacontroller, which steers a frozen base model's residual stream until its "
            "switching gate β starts a new abstract action."
            if internal
            else "It acts directly in the environment's own action space."
        )
        rows = [("environment", f"`{f['env_id']}`"), ("algorithm", f["algo_name"])]
        rows.append(("file", f"`{f['filename']}`"))
        base = f.get("base_model_name") or env_kwargs.get("base_model")
        meta = f.get("metacontroller") or env_kwargs.get("metacontroller")
        if base:
            rows.append(("base model", f"`{base}`"))
        if meta:
            rows.append(("metacontroller", f"`{meta}`"))
        if env_kwargs:
            kw = ", ".join(f"{k}={v!r}" for k, v in env_kwargs.items())
            rows.append(("env kwargs", f"`{kw}`"))
        f["details"] = _table(rows)
    return f


def _metrics_section(f: Mapping[str, Any]) -> str:
    metrics = f["metric_values"]
    if not metrics:
        return "No evaluation results were recorded for this checkpoint."
    rows = [(name, str(format_metric(mean, std))) for name, (mean, std) in metrics.items()]
    text = _table(rows, header=("metric", "value (mean +/- std)"))
    context = []
    if f.get("n_eval"):
        context.append(f"Measured on {f['n_eval']} evaluation episodes.")
    if f.get("env_id") and f["env_id"] != _NOT_RECORDED:
        context.append(f"Environment: `{f['env_id']}`.")
    if context:
        text += "\n\n" + " ".join(context)
    if f.get("notes"):
        text += f"\n\n### Limitations\n\n{f['notes']}"
    return text


def _training_section(kind: str, f: Mapping[str, Any]) -> str:
    parts = []
    if kind != "policy":
        parts.append(f"Data: {f['data']}")
    if f["training_command"] != _NOT_RECORDED:
        parts.append(f"```bash\n{f['training_command']}\n```")
    else:
        parts.append("The training command was not recorded.")
    config = f.get("training_config")
    if config:
        rows = [(str(k), f"`{json.dumps(v, default=str)}`") for k, v in config.items()]
        table = _table(rows, header=("hyperparameter", "value"))
        parts.append(f"<details><summary>Hyperparameters</summary>\n\n{table}\n\n</details>")
    return "\n\n".join(parts)


def _table(rows: list[tuple[str, str]], header: tuple[str, str] = ("", "")) -> str:
    def cell(s: str) -> str:
        return str(s).replace("|", "\\|").replace("\n", " ")

    lines = [f"| {cell(header[0])} | {cell(header[1])} |", "|---|---|"]
    lines += [f"| {cell(a)} | {cell(b)} |" for a, b in rows]
    return "\n".join(lines)


def _count(n: Any) -> str:
    return f"{int(n):,}" if _is_number(n) else _NOT_RECORDED


def _arch_summary(c: Mapping[str, Any]) -> str:
    if not c:
        return _NOT_RECORDED
    parts = [str(c.get("arch", "?")), f"d_model={c.get('d_model')}", f"{c.get('n_layers')} layers"]
    if c.get("arch") == "transformer":
        parts.append(f"{c.get('n_heads')} heads x {c.get('d_head')}")
    elif c.get("lru_width"):
        parts.append(f"LRU width {c.get('lru_width')}")
    parts.append(f"MLP {c.get('d_mlp')}")
    return ", ".join(parts)


def _obs_summary(c: Mapping[str, Any]) -> str:
    if "obs_dim" not in c:
        return _NOT_RECORDED
    return f"{c['obs_dim']}-dim, `{c.get('obs_encoder', 'linear')}` encoder"


def _action_summary(c: Mapping[str, Any]) -> str:
    if c.get("action_type") == "continuous":
        k = c.get("action_components", 1)
        head = "Gaussian head" if k == 1 else f"mixture of {k} Gaussians"
        return f"continuous, {c.get('action_dim')}-dim ({head})"
    if c.get("n_actions") is not None:
        return f"{c['n_actions']} discrete"
    return _NOT_RECORDED


def _guess_env(c: Mapping[str, Any]) -> str | None:
    if c.get("obs_encoder") in ("grid_cells", "grid_egocentric"):
        return "GridPinpad-v0"
    from internal_rl_gym.models.config import GRID_CPU_PRESET as grid

    discrete = c.get("action_type", "discrete") == "discrete"
    if discrete and c.get("obs_dim") == grid.obs_dim and c.get("n_actions") == grid.n_actions:
        return "GridPinpad-v0"  # a grid model with the linear encoder
    if c.get("arch") == "hawk" and c.get("action_type") == "continuous":
        return "AntPinpadRoutes-v0" if c.get("obs_dim") == 49 else "AntPinpad-v0"  # + route hints
    return None


def _guess_preset(c: Mapping[str, Any]) -> str | None:
    """Which size preset a base-model config matches (the card must say CPU or paper size)."""
    if not c:
        return None
    from internal_rl_gym.models import config as bm

    grid = {bm.GRID_CPU_PRESET: "CPU size", bm.GRID_PAPER_PRESET: "the paper's size"}
    ant = {bm.ANT_CPU_PRESET: "CPU size", bm.ANT_PAPER_PRESET: "the paper's size"}
    # the env's own presets first: grid-cpu and ant-cpu share their sizes
    presets = {**ant, **grid} if c.get("action_type") == "continuous" else {**grid, **ant}
    sizes = ("d_model", "n_layers", "n_heads", "d_head", "d_mlp")
    for preset, size in presets.items():
        p = preset.to_dict()
        if not all(c.get(k, p[k]) == p[k] for k in sizes):
            continue
        arch = c.get("arch", p["arch"])
        if arch == p["arch"] and c.get("lru_width", p["lru_width"]) == p["lru_width"]:
            return f"`{p['name']}` ({size})"
        if arch != p["arch"] and arch == "transformer":  # `--preset P --arch transformer`
            return f"`{p['name']}` sizes with `--arch transformer` ({size})"
    return f"custom (d_model={c.get('d_model')}, {c.get('n_layers')} layers; not a preset)"


def env_name(env_id: str) -> str:
    """The SB3-community form of an env id: drop a ``module:`` prefix, ``/`` becomes ``-``."""
    return env_id.split(":")[-1].replace("/", "-")
