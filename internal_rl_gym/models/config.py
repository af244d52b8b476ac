"""The :class:`~internal_rl_gym.models.base_model.BaseModel` constructor arguments as a frozen
dataclass, the size presets, and the check that rejects inconsistent combinations."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BaseModelConfig",
    "GRID_CPU_PRESET",
    "GRID_PAPER_PRESET",
    "ANT_CPU_PRESET",
    "ANT_PAPER_PRESET",
    "validate_config",
]

ARCHS = ("transformer", "hawk")
ACTION_TYPES = ("discrete", "continuous")
OBS_ENCODERS = ("linear", "grid_cells", "grid_egocentric")
OBS_LOSSES = ("bce", "mse")


@dataclass(frozen=True)
class BaseModelConfig:
    """The constructor arguments of :class:`~internal_rl_gym.models.base_model.BaseModel` (same names, same defaults).

    ``obs_dim`` and ``n_actions`` (discrete) or ``action_dim`` (continuous) depend on the env:
    fill them with :meth:`replace` or :meth:`with_spaces` before building a model.
    """

    arch: str = "transformer"
    obs_dim: int | None = None
    n_actions: int | None = None
    action_dim: int | None = None
    action_type: str = "discrete"
    #: continuous actions: components of the Gaussian mixture head (1 = one diagonal Gaussian)
    action_components: int = 1
    d_model: int = 128
    n_layers: int = 6
    n_heads: int = 4
    d_head: int = 32
    d_mlp: int = 512
    obs_encoder: str = "linear"
    grid_size: int = 7
    grid_channels: int = 13
    cell_features: int = 32
    obs_loss: str = "mse"
    max_len: int = 256
    #: transformer: attend to the last ``attention_window`` steps only (None = the whole episode)
    attention_window: int | None = None
    rel_buckets: int = 32
    rel_max_distance: int = 128
    lru_width: int | None = None
    conv_width: int = 4
    init_scale: float = 0.1
    name: str = ""
    #: the layer whose residual stream controllers steer by default (None = L/2, the paper's
    #: choice); chosen by measurement with ``internal-rl probe`` and recorded with the checkpoint
    control_layer: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (the ``config.json`` content)."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> BaseModelConfig:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def with_spaces(self, observation_space: Any, action_space: Any) -> BaseModelConfig:
        """Fill ``obs_dim`` and the action fields from Gymnasium spaces (Box obs; Discrete or Box
        actions)."""
        obs_dim = int(observation_space.shape[-1])
        if hasattr(action_space, "n"):
            return self.replace(
                obs_dim=obs_dim, action_type="discrete", n_actions=int(action_space.n)
            )
        return self.replace(
            obs_dim=obs_dim, action_type="continuous", action_dim=int(action_space.shape[-1])
        )


#: Gridworld-pinpad, sized for CPU training (GridPinpad-v0: 7x7 cells x 13 channels, 4 actions),
#: with the egocentric grid encoder (it learns to navigate faster than the allocentric
#: "grid_cells" encoder: benchmarks/results/pretrain_diagnostics.json).
GRID_CPU_PRESET = BaseModelConfig(
    arch="transformer",
    obs_dim=7 * 7 * 13,
    n_actions=4,
    action_type="discrete",
    d_model=128,
    n_layers=6,
    n_heads=4,
    d_head=32,
    d_mlp=512,
    obs_encoder="grid_egocentric",
    grid_size=7,
    grid_channels=13,
    obs_loss="bce",
    name="grid-cpu",
)
#: Gridworld-pinpad at the paper's size (Tables A4, A16).
GRID_PAPER_PRESET = GRID_CPU_PRESET.replace(d_model=256, d_head=64, name="grid-paper")
#: Ant-pinpad (Hawk), sized for CPU. Set ``obs_dim`` and ``action_dim`` from the env.
ANT_CPU_PRESET = BaseModelConfig(
    arch="hawk",
    action_type="continuous",
    d_model=128,
    n_layers=6,
    n_heads=4,
    d_mlp=512,
    obs_encoder="linear",
    obs_loss="mse",
    name="ant-cpu",
)
#: Ant-pinpad at the paper's size (Tables A5, A15: 8 layers, LRU 256 with 8 heads).
ANT_PAPER_PRESET = ANT_CPU_PRESET.replace(
    d_model=256, n_layers=8, n_heads=8, lru_width=256, name="ant-paper"
)


def validate_config(c: BaseModelConfig) -> None:
    """Raise ``ValueError`` naming the first inconsistent constructor argument."""

    def choice(name: str, options: tuple[str, ...]) -> None:
        if getattr(c, name) not in options:
            raise ValueError(f"{name} must be one of {options}, got {getattr(c, name)!r}")

    choice("arch", ARCHS)
    choice("action_type", ACTION_TYPES)
    choice("obs_encoder", OBS_ENCODERS)
    choice("obs_loss", OBS_LOSSES)
    positive = ["obs_dim", "d_model", "n_layers", "n_heads", "d_head", "d_mlp", "max_len"]
    positive += ["rel_buckets", "rel_max_distance", "conv_width", "grid_size", "grid_channels"]
    positive += ["cell_features"]
    for name in positive:
        v = getattr(c, name)
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if c.action_type == "discrete" and (not isinstance(c.n_actions, int) or c.n_actions < 1):
        raise ValueError(f"discrete actions need n_actions >= 1, got {c.n_actions!r}")
    if c.action_type == "continuous" and (not isinstance(c.action_dim, int) or c.action_dim < 1):
        raise ValueError(f"continuous actions need action_dim >= 1, got {c.action_dim!r}")
    k = c.action_components
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"action_components must be a positive int, got {k!r}")
    if k > 1 and c.action_type != "continuous":
        raise ValueError(
            f"action_components={k} needs continuous actions (a Gaussian mixture head); "
            "discrete actions are already a categorical over n_actions: leave it at 1"
        )
    if c.obs_encoder in ("grid_cells", "grid_egocentric"):
        expected = c.grid_size * c.grid_size * c.grid_channels
        if c.obs_dim != expected:
            raise ValueError(
                f"obs_encoder={c.obs_encoder!r} needs obs_dim == grid_size² · grid_channels = "
                f"{c.grid_size}² · {c.grid_channels} = {expected}, got obs_dim={c.obs_dim}"
            )
    if c.arch == "hawk":
        width = c.lru_width or c.d_model
        if width % c.n_heads:
            raise ValueError(
                f"hawk: lru_width={width} must be divisible by n_heads={c.n_heads} "
                "(block-diagonal RG-LRU gates)"
            )
    w = c.attention_window
    if w is not None:
        if c.arch != "transformer":
            raise ValueError(
                f"attention_window={w} limits a transformer's attention; arch={c.arch!r} has "
                "none: leave it at None"
            )
        if not isinstance(w, int) or w < 1:
            raise ValueError(f"attention_window must be a positive int or None, got {w!r}")
    if c.init_scale <= 0:
        raise ValueError(f"init_scale must be positive, got {c.init_scale!r}")
    if c.control_layer is not None and (
        not isinstance(c.control_layer, int) or not 0 <= c.control_layer <= c.n_layers
    ):
        raise ValueError(
            f"control_layer must be an int in 0..n_layers={c.n_layers} (0 = the embedding), or "
            f"None for L/2; got {c.control_layer!r}. Pick it with `internal-rl probe`."
        )
