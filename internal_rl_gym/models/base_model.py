"""The base autoregressive model with a readable and writable residual stream (paper §2, Eq. 5).

The model sees only observations (one token per timestep) and predicts, from the prefix
``o_{1:t}``, the action ``a_t`` and the next observation ``o_{t+1}``. The backbone is a causal
Transformer (gridworld, Table A16) or a Hawk recurrent network (ant, Table A15).

Residual stream indexing: ``e_0`` = token embedding, ``e_l`` = output of block ``l`` for
``l = 1..n_layers``. An *intervention* ``f`` at layer ``l`` replaces ``e_l`` by ``ê_l = f(e_l)``
before block ``l + 1`` runs; the paper's controllers are linear, ``ê = e + U e``
(:func:`apply_linear_control`).

Two execution modes compute the same function:

* whole sequences: :meth:`BaseModel.forward`, :meth:`BaseModel.run_layers`, :meth:`BaseModel.loss`;
* one timestep at a time for many episodes in a batch (each row at its own position):
  :meth:`BaseModel.init_state`, :meth:`BaseModel.step_layers`, :meth:`BaseModel.step`,
  :meth:`BaseModel.reset_state`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import Tensor, nn
from torch.distributions import Categorical, Distribution, Independent, Normal

from internal_rl_gym.models.layers import HawkBlock, RMSNorm, TransformerBlock, init_linear_

__all__ = [
    "BaseModel",
    "BaseModelConfig",
    "BaseModelOutput",
    "HeadOutput",
    "LossOutput",
    "ModelState",
    "TransformerState",
    "HawkState",
    "GridCellEncoder",
    "apply_linear_control",
    "Intervention",
    "GRID_CPU_PRESET",
    "GRID_PAPER_PRESET",
    "ANT_CPU_PRESET",
    "ANT_PAPER_PRESET",
]

#: A function mapping the residual stream at one layer to its controlled version, shape-preserving:
#: ``(B, T, d) -> (B, T, d)`` in whole-sequence calls, ``(B, d) -> (B, d)`` when stepping.
Intervention = Callable[[Tensor], Tensor]

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0

ARCHS = ("transformer", "hawk")
ACTION_TYPES = ("discrete", "continuous")
OBS_ENCODERS = ("linear", "grid_cells", "grid_egocentric")
OBS_LOSSES = ("bce", "mse")


# --------------------------------------------------------------------------------------------
# configuration


@dataclass(frozen=True)
class BaseModelConfig:
    """The constructor arguments of :class:`BaseModel` (same names, same defaults).

    ``obs_dim`` and ``n_actions`` (discrete) or ``action_dim`` (continuous) depend on the env:
    fill them with :meth:`replace` or :meth:`with_spaces` before building a model.
    """

    arch: str = "transformer"
    obs_dim: int | None = None
    n_actions: int | None = None
    action_dim: int | None = None
    action_type: str = "discrete"
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


# --------------------------------------------------------------------------------------------
# outputs and recurrent state


@dataclass
class HeadOutput:
    """Predictions read from the final residual stream ``e_L`` (leading dims as the input).

    ``action_logits`` (…, n_actions) for discrete actions; ``action_mean`` and
    ``action_log_std`` (…, action_dim) for continuous ones; ``obs_pred`` (…, obs_dim) predicts
    ``o_{t+1}`` (logits for ``obs_loss="bce"``, values for ``"mse"``).
    """

    obs_pred: Tensor | None
    action_logits: Tensor | None = None
    action_mean: Tensor | None = None
    action_log_std: Tensor | None = None


@dataclass
class BaseModelOutput(HeadOutput):
    """:class:`HeadOutput` of a whole-sequence forward pass, plus the residual stream.

    ``residuals``: ``[e_0, …, e_L]`` (each (B, T, d)) when requested; the entry at the intervened
    layer is the *uncontrolled* ``e_l`` (what a controller observes), and ``controlled`` is
    ``ê_l`` (what the blocks above received).
    """

    residuals: list[Tensor] | None = None
    controlled: Tensor | None = None


@dataclass
class LossOutput:
    """Paper Eq. 5 averaged over valid steps. ``loss`` is differentiable."""

    loss: Tensor
    action_nll: Tensor
    obs_loss: Tensor
    action_accuracy: Tensor | None = None

    def __getitem__(self, key: str) -> Tensor | None:
        return getattr(self, key)

    def to_dict(self) -> dict[str, float]:
        """Detached floats, for logging."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {k: float(v.detach()) for k, v in values.items() if isinstance(v, Tensor)}


@dataclass
class ModelState:
    """Per-layer caches for stepping. ``layer_lengths`` (n_layers, B) long counts the timesteps
    each layer has consumed in each row's current episode (layers may be stepped separately,
    e.g. the frozen lower half once per step and the controlled upper half later)."""

    layer_lengths: Tensor

    @property
    def lengths(self) -> Tensor:
        """(B,) timesteps consumed in each row's episode (by the most advanced layer)."""
        return self.layer_lengths.max(dim=0).values

    @property
    def batch_size(self) -> int:
        return self.layer_lengths.shape[1]

    def clone(self) -> ModelState:
        """A deep copy (tensors cloned), e.g. to branch a rollout."""
        fields = dataclasses.fields(self)
        return dataclasses.replace(self, **{f.name: _clone(getattr(self, f.name)) for f in fields})


def _clone(x: Any) -> Any:
    if isinstance(x, Tensor):
        return x.clone()
    if isinstance(x, list):
        return [_clone(v) for v in x]
    return x


@dataclass
class TransformerState(ModelState):
    """KV caches: ``keys[l]``, ``values[l]`` of shape (B, n_heads, max_len, d_head) for block
    ``l + 1``; slot ``p`` of row ``b`` holds position ``p`` of that row's episode."""

    keys: list[Tensor] = dataclasses.field(default_factory=list)
    values: list[Tensor] = dataclasses.field(default_factory=list)
    max_len: int = 0


@dataclass
class HawkState(ModelState):
    """Recurrent state: ``h[l]`` (B, lru_width) RG-LRU hidden state and ``conv[l]``
    (B, conv_width - 1, lru_width) the Conv1D's last inputs, for block ``l + 1``."""

    h: list[Tensor] = dataclasses.field(default_factory=list)
    conv: list[Tensor] = dataclasses.field(default_factory=list)


# --------------------------------------------------------------------------------------------
# linear residual control


def _align_batch(m: Tensor, e: Tensor) -> Tensor:
    """Insert singleton dims after ``m``'s batch dims so they align *from the left* with
    ``e``'s leading dims (a per-sequence (B, d, d) matrix then applies at every timestep)."""
    n_missing = (e.dim() - 1) - (m.dim() - 2)
    if n_missing < 0:
        raise ValueError(
            f"controller of shape {tuple(m.shape)} has more batch dims than the residual "
            f"stream of shape {tuple(e.shape)}"
        )
    for _ in range(n_missing):
        m = m.unsqueeze(-3)
    return m


def apply_linear_control(e: Tensor, U: Tensor | tuple[Tensor, Tensor]) -> Tensor:
    """``ê = e + U e`` (paper Eq. 1) for a residual stream ``e`` of shape (…, d).

    ``U`` is either a dense matrix of shape (*batch, d, d) or a low-rank pair ``(A, Bm)`` with
    ``U = A Bmᵀ`` and ``A``, ``Bm`` of shape (*batch, d, r). Batch dims align with ``e``'s
    leading dims from the left and broadcast, so ``U`` may be (B, T, d, d) per step,
    (B, d, d) per sequence or (d, d) shared. The low-rank form computes ``(eᵀ Bm) Aᵀ`` without
    materialising a d×d matrix.
    """
    d = e.shape[-1]
    if isinstance(U, (tuple, list)):
        A, Bm = U
        if A.shape[-2] != d or Bm.shape[-2] != d or A.shape[-1] != Bm.shape[-1]:
            raise ValueError(
                f"low-rank controller factors must be (..., d={d}, r) each, got A "
                f"{tuple(A.shape)} and Bm {tuple(Bm.shape)}"
            )
        A, Bm = _align_batch(A, e), _align_batch(Bm, e)
        coef = torch.matmul(e.unsqueeze(-2), Bm)  # (…, 1, r)
        return e + torch.matmul(coef, A.transpose(-1, -2)).squeeze(-2)
    if U.shape[-2:] != (d, d):
        raise ValueError(f"controller must be (..., {d}, {d}), got {tuple(U.shape)}")
    U = _align_batch(U, e)
    return e + torch.matmul(U, e.unsqueeze(-1)).squeeze(-1)


# --------------------------------------------------------------------------------------------
# observation encoders


class GridCellEncoder(nn.Module):
    """One token from a multi-hot grid observation laid out cell-major, (cells, channels).

    Two branches over the cells, summed:

    * where: per cell ``f = ReLU(W_c x_cell + p_cell)`` (shared ``W_c``, learned cell embedding
      ``p``), then ``W (flatten f)``: what is where (the agent's position, the layout);
    * what: per cell ``g = ReLU(V_c x_cell)`` without position, summed over cells, then
      ``V g_sum``: position-free within-cell conjunctions, e.g. "the agent stands on colour c"
      wherever that is. Every visit of every cell trains the same weights, which is what lets
      a small model learn which colours were visited (the task state) from few examples.
    """

    def __init__(
        self, grid_size: int, grid_channels: int, cell_features: int, d_model: int, scale: float
    ) -> None:
        super().__init__()
        self.cells, self.channels = grid_size * grid_size, grid_channels
        self.cell_linear = nn.Linear(grid_channels, cell_features)
        self.cell_embedding = nn.Parameter(torch.empty(self.cells, cell_features))
        self.out = nn.Linear(self.cells * cell_features, d_model)
        self.pooled_linear = nn.Linear(grid_channels, cell_features)
        self.pooled_out = nn.Linear(cell_features, d_model)
        for layer in (self.cell_linear, self.out, self.pooled_linear, self.pooled_out):
            init_linear_(layer, scale)
        with torch.no_grad():
            self.cell_embedding.normal_(0.0, (scale / grid_channels) ** 0.5)
            # a negative bias makes the pooled units conjunctions (on only if >= 2 channels fire)
            self.pooled_linear.bias.fill_(-0.5 * float(self.pooled_linear.weight.abs().mean()))

    def forward(self, obs: Tensor) -> Tensor:
        x = obs.unflatten(-1, (self.cells, self.channels))
        f = F.relu(self.cell_linear(x) + self.cell_embedding)
        g = F.relu(self.pooled_linear(x)).sum(-2)
        return self.out(f.flatten(-2)) + self.pooled_out(g)


class GridEgocentricEncoder(nn.Module):
    """One token from a multi-hot grid observation, seen from the agent (cell-major layout, the
    agent in the last channel).

    The grid is re-indexed around the agent's cell into a ``(2G-1) x (2G-1)`` view (cells
    beyond the grid's edge get an extra "outside" channel), so "colour c is two cells to the
    right" is one linear feature, and token = ``W (flatten view)`` plus the position-free pooled
    branch of :class:`GridCellEncoder` ("the agent stands on colour c"). It is a fixed function of
    the observation (the paper's interface: one token per observation); it spares a small model
    from learning to compare the agent's cell with every colour's cell, which on CPU budgets
    otherwise stalls at movement heuristics.
    """

    def __init__(
        self, grid_size: int, grid_channels: int, cell_features: int, d_model: int, scale: float
    ) -> None:
        super().__init__()
        g = grid_size
        self.cells, self.channels, self.view = g * g, grid_channels, 2 * g - 1
        # index[a, v]: absolute cell seen at view position v when the agent is in cell a
        # (self.cells = the padding "outside" cell).
        index = torch.full((self.cells, self.view * self.view), self.cells, dtype=torch.long)
        for a in range(self.cells):
            ar, ac = divmod(a, g)
            for i in range(self.view):
                for j in range(self.view):
                    r, c = ar + i - (g - 1), ac + j - (g - 1)
                    if 0 <= r < g and 0 <= c < g:
                        index[a, i * self.view + j] = r * g + c
        self.register_buffer("index", index, persistent=False)
        # view_of_cell[a, c]: view position of absolute cell c when the agent is in cell a, and
        # outside[a, v]: whether view position v lies beyond the grid (for the sparse path)
        view_of_cell = torch.empty(self.cells, self.cells, dtype=torch.long)
        outside = torch.ones(self.cells, self.view * self.view)
        for a in range(self.cells):
            inside = index[a] < self.cells
            view_of_cell[a, index[a][inside]] = torch.nonzero(inside).flatten()
            outside[a, inside] = 0.0
        self.register_buffer("view_of_cell", view_of_cell, persistent=False)
        self.register_buffer("outside", outside, persistent=False)
        self._outside_cache: tuple[Tensor, int, Tensor] | None = None
        n_in = self.view * self.view * grid_channels
        self.out = nn.Linear(n_in, d_model)
        self.pooled_linear = nn.Linear(grid_channels, cell_features)
        self.pooled_out = nn.Linear(cell_features, d_model)
        for layer in (self.out, self.pooled_linear, self.pooled_out):
            init_linear_(layer, scale)
        with torch.no_grad():
            self.pooled_linear.bias.fill_(-0.5 * float(self.pooled_linear.weight.abs().mean()))

    def forward(self, obs: Tensor) -> Tensor:
        # CPU inference takes the sparse path (on a GPU its nonzero() would sync the host);
        # hooks on the linear layer (captures, pruning) need the dense one
        out = self.out
        if (
            obs.device.type == "cpu"
            and not (torch.is_grad_enabled() or torch.is_autocast_enabled("cpu"))
            and type(out) is nn.Linear
            and not (out._forward_hooks or out._forward_pre_hooks)
        ):
            return self._forward_sparse(obs)
        return self._forward_view(obs)

    def _forward_view(self, obs: Tensor) -> Tensor:
        x = obs.unflatten(-1, (self.cells, self.channels))  # (..., cells, C)
        agent = x[..., -1].argmax(-1)  # (...)
        # the agent channel is constant at the view's centre: reuse it as "outside the grid"
        cells = F.pad(x[..., :-1], (0, 1))
        outside = torch.zeros_like(cells[..., :1, :])
        outside[..., -1] = 1.0
        padded = torch.cat([cells, outside], dim=-2)  # (..., cells + 1, C)
        idx = self.index[agent]  # (..., view²)
        view = torch.gather(padded, -2, idx.unsqueeze(-1).expand(*idx.shape, self.channels))
        g = F.relu(self.pooled_linear(x)).sum(-2)
        return self.out(view.flatten(-2)) + self.pooled_out(g)

    def _outside_term(self) -> Tensor:
        """(cells, d_model) float32: what the view's outside-the-grid positions add for each
        agent cell; cached until the weights change (a write through ``weight.data`` bypasses
        the version counter: call ``_outside_cache = None`` after one)."""
        w = self.out.weight
        cache = self._outside_cache
        # the cache holds the weights it was computed from, so their memory cannot be reused
        # by a new tensor that would match on address and version
        if cache is None or cache[0].data_ptr() != w.data_ptr() or cache[1] != w._version:
            outside_columns = w.detach()[:, self.channels - 1 :: self.channels].float()
            cache = (w.detach(), w._version, self.outside @ outside_columns.T)
            self._outside_cache = cache
        return cache[2]

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        return {**state, "_outside_cache": None}  # pickles and copies recompute it

    def _forward_sparse(self, obs: Tensor) -> Tensor:
        """The same function for inference, from the observation's few non-zero entries: a
        grid observation sets about one channel per coloured cell, so summing the linear
        layer's columns they select costs far less than building the view (one row's cost no
        longer grows with the view's size, which is what stepping a batch pays per row)."""
        lead = obs.shape[:-1]
        x = obs.reshape(-1, self.cells, self.channels)
        agent = x[..., -1].argmax(-1)  # (N,)
        row, cell, channel = torch.nonzero(x[..., :-1], as_tuple=True)
        if 2 * row.numel() > x[..., :-1].numel():  # mostly non-zero inputs: the view is cheaper
            return self._forward_view(obs)
        w = self.out.weight
        column = self.view_of_cell[agent[row], cell] * self.channels + channel
        # sums in float32, as the dense matmul accumulates, whatever the weights' dtype
        contrib = w.T.index_select(0, column).float() * x[row, cell, channel].float()[:, None]
        y = (self._outside_term()[agent] + self.out.bias.float()).index_add(0, row, contrib)
        g = F.relu(self.pooled_linear(x)).sum(-2)
        return (y.to(w.dtype) + self.pooled_out(g)).reshape(*lead, y.shape[-1])


# --------------------------------------------------------------------------------------------
# the model


class BaseModel(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="internal-rl-gym",
    tags=["internal-rl-gym", "reinforcement-learning"],
    paper_url="https://arxiv.org/abs/2512.20605",
):
    """Autoregressive sequence model over observations, with action and next-observation heads.

    All constructor arguments are keyword-only and JSON-able (``save_pretrained`` writes them to
    ``config.json``); see :class:`BaseModelConfig` for the field list and the presets.

    * ``arch``: ``"transformer"`` (causal attention, T5 relative position biases with
      ``rel_buckets`` buckets up to ``rel_max_distance``, KV cache of ``max_len`` steps) or
      ``"hawk"`` (RG-LRU recurrent blocks of width ``lru_width`` (default ``d_model``), gates
      block-diagonal with ``n_heads`` blocks, causal Conv1D of width ``conv_width``).
    * ``obs_encoder``: ``"linear"``, ``"grid_cells"`` (:class:`GridCellEncoder`) or
      ``"grid_egocentric"`` (:class:`GridEgocentricEncoder`); the grid encoders require
      ``obs_dim == grid_size² · grid_channels`` with the agent in the last channel.
    * ``action_type``: ``"discrete"`` (``n_actions``, categorical) or ``"continuous"``
      (``action_dim``, diagonal Gaussian with state-dependent log-std clamped to [-5, 2]).
    * ``obs_loss``: ``"bce"`` (binary observations, logits) or ``"mse"`` (unit-variance Gaussian).
    * ``init_scale``: variance scaling of all initialisers (weights ~ N(0, init_scale / fan_in)).
    """

    def __init__(
        self,
        *,
        arch: str = "transformer",
        obs_dim: int,
        n_actions: int | None = None,
        action_dim: int | None = None,
        action_type: str = "discrete",
        d_model: int = 128,
        n_layers: int = 6,
        n_heads: int = 4,
        d_head: int = 32,
        d_mlp: int = 512,
        obs_encoder: str = "linear",
        grid_size: int = 7,
        grid_channels: int = 13,
        cell_features: int = 32,
        obs_loss: str = "mse",
        max_len: int = 256,
        rel_buckets: int = 32,
        rel_max_distance: int = 128,
        lru_width: int | None = None,
        conv_width: int = 4,
        init_scale: float = 0.1,
        name: str = "",
        control_layer: int | None = None,
    ) -> None:
        super().__init__()
        self.config = BaseModelConfig(
            arch=arch,
            obs_dim=obs_dim,
            n_actions=n_actions,
            action_dim=action_dim,
            action_type=action_type,
            d_model=d_model,
            n_layers=n_layers,
            n_heads=n_heads,
            d_head=d_head,
            d_mlp=d_mlp,
            obs_encoder=obs_encoder,
            grid_size=grid_size,
            grid_channels=grid_channels,
            cell_features=cell_features,
            obs_loss=obs_loss,
            max_len=max_len,
            rel_buckets=rel_buckets,
            rel_max_distance=rel_max_distance,
            lru_width=lru_width,
            conv_width=conv_width,
            init_scale=init_scale,
            name=name,
            control_layer=control_layer,
        )
        _validate_config(self.config)
        self.arch, self.action_type, self.obs_loss_type = arch, action_type, obs_loss
        self.obs_dim, self.d_model, self.n_layers = obs_dim, d_model, n_layers
        self.n_heads, self.d_head, self.max_len = n_heads, d_head, max_len
        self.lru_width = lru_width or d_model
        self.conv_width = conv_width

        # observation → token e_0
        if obs_encoder == "grid_cells":
            self.encoder: nn.Module = GridCellEncoder(
                grid_size, grid_channels, cell_features, d_model, init_scale
            )
        elif obs_encoder == "grid_egocentric":
            self.encoder = GridEgocentricEncoder(
                grid_size, grid_channels, cell_features, d_model, init_scale
            )
        else:
            self.encoder = nn.Linear(obs_dim, d_model)
            init_linear_(self.encoder, init_scale)

        # blocks 1..L
        if arch == "transformer":
            blocks = [
                TransformerBlock(
                    d_model, n_heads, d_head, d_mlp, rel_buckets, rel_max_distance, init_scale
                )
                for _ in range(n_layers)
            ]
        else:
            blocks = [
                HawkBlock(d_model, self.lru_width, n_heads, d_mlp, conv_width, init_scale)
                for _ in range(n_layers)
            ]
        self.blocks = nn.ModuleList(blocks)

        # heads on norm(e_L)
        self.final_norm = RMSNorm(d_model)
        if action_type == "discrete":
            self.action_head = nn.Linear(d_model, n_actions)
            init_linear_(self.action_head, init_scale)
        else:
            self.action_mean = nn.Linear(d_model, action_dim)
            self.action_log_std = nn.Linear(d_model, action_dim)
            init_linear_(self.action_mean, init_scale)
            init_linear_(self.action_log_std, init_scale)
        self.obs_head = nn.Linear(d_model, obs_dim)
        init_linear_(self.obs_head, init_scale)

    # ---------------------------------------------------------------- construction, properties

    @classmethod
    def from_config(cls, cfg: BaseModelConfig) -> BaseModel:
        """Build a freshly initialised model from a :class:`BaseModelConfig`."""
        if cfg.obs_dim is None:
            raise ValueError(
                "config has obs_dim=None; fill it first, e.g. "
                "cfg.with_spaces(env.observation_space, env.action_space)"
            )
        return cls(**cfg.to_dict())

    @property
    def device(self) -> torch.device:
        return self.obs_head.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.obs_head.weight.dtype

    @property
    def control_layer(self) -> int:
        """The layer controllers steer by default: the checkpoint's recorded ``control_layer``,
        or L/2 (the paper's choice) when none is recorded."""
        recorded = self.config.control_layer
        return self.n_layers // 2 if recorded is None else int(recorded)

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def extra_repr(self) -> str:
        return f"arch={self.arch}, name={self.config.name!r}, n_params={self.n_params:,}"

    # ---------------------------------------------------------------- whole sequences

    def _as_obs(self, obs: Any, ndim: int, what: str) -> Tensor:
        obs = torch.as_tensor(obs, device=self.device)
        if obs.dim() != ndim or obs.shape[-1] != self.obs_dim:
            shape = "(B, T, obs_dim)" if ndim == 3 else "(B, obs_dim)"
            raise ValueError(
                f"{what}: expected observations of shape {shape} with obs_dim={self.obs_dim}, "
                f"got shape {tuple(obs.shape)}"
            )
        return obs.to(self.dtype)

    def _check_layer(self, layer: int, what: str = "layer") -> None:
        if not isinstance(layer, int) or not 0 <= layer <= self.n_layers:
            raise ValueError(
                f"{what} must be an int in [0, n_layers={self.n_layers}] "
                f"(0 = after the embedding, l = after block l), got {layer!r}"
            )

    def _check_intervention(self, intervention: Intervention | None, layer: int | None) -> None:
        if intervention is not None and layer is None:
            raise ValueError("an intervention needs the layer it applies at (layer=...)")
        if layer is not None:
            self._check_layer(layer)

    @staticmethod
    def _intervene(intervention: Intervention, e: Tensor) -> Tensor:
        e_hat = intervention(e)
        if not isinstance(e_hat, Tensor) or e_hat.shape != e.shape:
            got = tuple(e_hat.shape) if isinstance(e_hat, Tensor) else type(e_hat).__name__
            raise ValueError(
                f"intervention must return a tensor shaped like its input {tuple(e.shape)}, "
                f"got {got}"
            )
        return e_hat

    def embed(self, obs: Tensor) -> Tensor:
        """Observations (…, obs_dim) → residual stream ``e_0`` (…, d_model)."""
        obs = torch.as_tensor(obs, device=self.device)
        if obs.dim() < 1 or obs.shape[-1] != self.obs_dim:
            raise ValueError(
                f"expected observations with last dimension obs_dim={self.obs_dim}, "
                f"got shape {tuple(obs.shape)}"
            )
        # .to(dtype): under bf16 autocast the residual stream itself stays in fp32; sums of
        # bf16 sublayer outputs into a bf16 stream lose precision and destabilise training
        return self.encoder(obs.to(self.dtype)).to(self.dtype)

    def run_layers(self, e: Tensor, start: int, end: int) -> Tensor:
        """Run blocks ``start+1..end`` causally on a whole sequence ``e_start`` (B, T, d) and
        return ``e_end``. ``run_layers(embed(obs), 0, n_layers)`` runs the full stack."""
        self._check_layer(start, "start")
        self._check_layer(end, "end")
        if start > end:
            raise ValueError(f"start={start} must not exceed end={end}")
        if e.dim() != 3 or e.shape[-1] != self.d_model:
            raise ValueError(
                f"expected a residual stream (B, T, d_model={self.d_model}), got {tuple(e.shape)}"
            )
        for block in self.blocks[start:end]:
            e = block(e)
        return e

    def heads(self, e_L: Tensor, predict_obs: bool = True) -> HeadOutput:
        """Action and next-observation predictions from the final residual ``e_L`` (…, d).

        ``predict_obs=False`` skips the observation head (``obs_pred`` is then ``None``): acting
        needs only the action head.
        """
        x = self.final_norm(e_L)
        dtype = self.dtype  # fp32 outputs under bf16 autocast: losses and log-probs in fp32
        obs_pred = self.obs_head(x).to(dtype) if predict_obs else None
        if self.action_type == "discrete":
            return HeadOutput(obs_pred=obs_pred, action_logits=self.action_head(x).to(dtype))
        log_std = self.action_log_std(x).to(dtype).clamp(LOG_STD_MIN, LOG_STD_MAX)
        return HeadOutput(
            obs_pred=obs_pred, action_mean=self.action_mean(x).to(dtype), action_log_std=log_std
        )

    def forward(
        self,
        obs: Tensor,
        intervention: Intervention | None = None,
        layer: int | None = None,
        return_residuals: bool = False,
    ) -> BaseModelOutput:
        """Whole-sequence pass on ``obs`` (B, T, obs_dim), with an optional intervention applied
        to ``e_layer`` (layer 0 = right after the embedding) before block ``layer + 1``."""
        self._check_intervention(intervention, layer)
        e = self.embed(self._as_obs(obs, 3, "forward"))
        residuals: list[Tensor] = []
        controlled = None
        for l in range(self.n_layers + 1):
            residuals.append(e)
            if intervention is not None and l == layer:
                e = controlled = self._intervene(intervention, e)
            if l < self.n_layers:
                e = self.blocks[l](e)
        head = self.heads(e)
        return BaseModelOutput(
            **vars(head),
            residuals=residuals if return_residuals else None,
            controlled=controlled,
        )

    # ---------------------------------------------------------------- stepping

    def init_state(self, batch_size: int, device: torch.device | str | None = None) -> ModelState:
        """Empty caches for ``batch_size`` episodes (all at position 0)."""
        device = torch.device(device) if device is not None else self.device
        L, B = self.n_layers, batch_size
        lengths = torch.zeros(L, B, dtype=torch.long, device=device)
        if self.arch == "transformer":
            shape = (B, self.n_heads, self.max_len, self.d_head)

            def zeros() -> Tensor:
                return torch.zeros(shape, dtype=self.dtype, device=device)

            return TransformerState(
                layer_lengths=lengths,
                keys=[zeros() for _ in range(L)],
                values=[zeros() for _ in range(L)],
                max_len=self.max_len,
            )
        return HawkState(
            layer_lengths=lengths,
            h=[torch.zeros(B, self.lru_width, dtype=self.dtype, device=device) for _ in range(L)],
            conv=[
                torch.zeros(B, self.conv_width - 1, self.lru_width, dtype=self.dtype, device=device)
                for _ in range(L)
            ],
        )

    def reset_state(self, state: ModelState, mask: Tensor | Any) -> ModelState:
        """Restart the episodes of the rows where ``mask`` (B,) is True (in place; also
        returned)."""
        mask = torch.as_tensor(mask, device=state.layer_lengths.device).bool()
        if mask.shape != (state.batch_size,):
            raise ValueError(
                f"reset mask must have shape ({state.batch_size},), got {tuple(mask.shape)}"
            )
        state.layer_lengths.masked_fill_(mask[None, :], 0)
        if isinstance(state, HawkState):
            state.h = [h.masked_fill(mask[:, None], 0.0) for h in state.h]
            state.conv = [c.masked_fill(mask[:, None, None], 0.0) for c in state.conv]
        # transformer: stale K/V beyond a row's length are never attended to
        return state

    def step_layers(
        self,
        e_t: Tensor,
        state: ModelState,
        start: int,
        end: int,
        active: Tensor | None = None,
        rows: Tensor | None = None,
    ) -> Tensor:
        """Run blocks ``start+1..end`` for ONE new timestep ``e_t`` per row, updating those
        layers' caches in ``state``; returns ``e_end`` for this timestep.

        A batch of episodes can move at different speeds in two ways:

        * ``active`` (B,) bool, with ``e_t`` (B, d): every row computes (one batched call) but
          only the active rows' caches take the new timestep; the other rows' outputs are
          meaningless.
        * ``rows`` (n,) long, distinct row indices, with ``e_t`` (n, d) holding their
          timesteps: only those rows compute and advance; returns (n, d). Cheaper when few
          rows move, which is what a lockstep batch of abstract steps mostly has.
        """
        self._check_layer(start, "start")
        self._check_layer(end, "end")
        if start > end:
            raise ValueError(f"start={start} must not exceed end={end}")
        if active is not None and rows is not None:
            raise ValueError("pass either active (a mask) or rows (indices), not both")
        if rows is not None:
            rows = torch.as_tensor(rows, device=state.layer_lengths.device).long().flatten()
            listed = rows.tolist()  # one host sync for all the checks
            n = len(listed)
            if n and (min(listed) < 0 or max(listed) >= state.batch_size):
                raise ValueError(
                    f"rows must index a batch of {state.batch_size} episodes, got {listed}"
                )
            if len(set(listed)) != n:
                raise ValueError(f"rows must be distinct, got {listed}")
            if listed == list(range(state.batch_size)):
                rows = None  # every row, in order: the plain path reads the cache without a gather
        else:
            n = state.batch_size
        if e_t.dim() != 2 or e_t.shape != (n, self.d_model):
            raise ValueError(
                f"expected one timestep of the residual stream, shape ({n}, "
                f"d_model={self.d_model}), got {tuple(e_t.shape)}"
            )
        longest = self._check_room(state, start, end, rows)
        if active is not None:
            active = torch.as_tensor(active, device=e_t.device).bool()
            if active.shape != (state.batch_size,):
                raise ValueError(
                    f"active mask must have shape ({state.batch_size},), got {tuple(active.shape)}"
                )
        if rows is not None:
            return self._step_rows(e_t, state, start, end, longest, rows)
        for l in range(start, end):
            e_t = self._step_block(l, e_t, state, longest, active)
        return e_t

    def _check_room(
        self, state: ModelState, start: int, end: int, rows: Tensor | None = None
    ) -> int:
        """Longest current episode among blocks ``start+1..end`` (of ``rows``, default all);
        raises if a transformer row has no cache slot left."""
        if not isinstance(state, (TransformerState, HawkState)):
            raise TypeError(f"unknown state type {type(state).__name__}")
        if start == end or not isinstance(state, TransformerState):
            return 0
        if rows is not None:
            if rows.numel() == 0:
                return 0
            per_row = state.layer_lengths[start:end].index_select(1, rows).max(dim=0).values
        else:
            per_row = state.layer_lengths[start:end].max(dim=0).values
        longest = int(per_row.max())  # one host sync per call
        if longest >= state.max_len:
            full = torch.nonzero(per_row >= state.max_len).flatten()
            if rows is not None:
                full = rows[full]
            raise ValueError(
                f"rows {full.tolist()} would exceed the context length max_len={state.max_len}; "
                "reset them (reset_state) or build the model with a larger max_len"
            )
        return longest

    def _step_block(
        self, l: int, e_t: Tensor, state: ModelState, longest: int, active: Tensor | None = None
    ) -> Tensor:
        """Block ``l + 1`` on one timestep; ``longest`` bounds the attended cache slots.

        With an ``active`` mask, inactive rows still compute (one batched call) but do not
        advance: a transformer row's write lands in the slot just past its length, which is
        never attended and is overwritten by its next real step; a Hawk row keeps its state.
        """
        block = self.blocks[l]
        if isinstance(state, TransformerState):
            e_t, state.keys[l], state.values[l] = block.step(
                e_t, state.keys[l], state.values[l], state.layer_lengths[l], longest + 1
            )
        else:
            h_old, conv_old = state.h[l], state.conv[l]
            e_t, state.h[l], state.conv[l] = block.step(e_t, h_old, conv_old)
            if active is not None:
                state.h[l] = torch.where(active[:, None], state.h[l], h_old)
                state.conv[l] = torch.where(active[:, None, None], state.conv[l], conv_old)
        state.layer_lengths[l] += 1 if active is None else active.long()
        return e_t

    def _step_rows(
        self, e_t: Tensor, state: ModelState, start: int, end: int, longest: int, rows: Tensor
    ) -> Tensor:
        """Blocks ``start+1..end`` on one timestep of the given rows only (see
        :meth:`step_layers`); their lengths are read and advanced once for all blocks."""
        if rows.numel() == 0 or start == end:
            return e_t
        lengths = state.layer_lengths[start:end]
        pos = lengths.index_select(1, rows)  # (end - start, n)
        for k, l in enumerate(range(start, end)):
            block = self.blocks[l]
            if isinstance(state, TransformerState):
                e_t, state.keys[l], state.values[l] = block.step(
                    e_t, state.keys[l], state.values[l], pos[k], longest + 1, rows
                )
            else:
                e_t, h, conv = block.step(e_t, state.h[l][rows], state.conv[l][rows])
                state.h[l] = state.h[l].index_copy(0, rows, h)
                state.conv[l] = state.conv[l].index_copy(0, rows, conv)
        lengths.index_add_(1, rows, torch.ones_like(pos))
        return e_t

    def step(
        self,
        obs_t: Tensor,
        state: ModelState,
        intervention: Intervention | None = None,
        layer: int | None = None,
    ) -> tuple[HeadOutput, list[Tensor]]:
        """One timestep for every row: embed ``obs_t`` (B, obs_dim), run all blocks (with the
        optional intervention at ``layer``) and read the heads.

        Returns ``(head_output, residuals)``, ``residuals = [e_0, …, e_L]`` each (B, d), the
        intervened layer's entry being the uncontrolled ``e_layer``.
        """
        self._check_intervention(intervention, layer)
        obs_t = self._as_obs(obs_t, 2, "step")
        if obs_t.shape[0] != state.batch_size:
            raise ValueError(
                f"step: got {obs_t.shape[0]} observations for a state of batch size "
                f"{state.batch_size}"
            )
        longest = self._check_room(state, 0, self.n_layers)
        e = self.embed(obs_t)
        residuals = []
        for l in range(self.n_layers + 1):
            residuals.append(e)
            if intervention is not None and l == layer:
                e = self._intervene(intervention, e)
            if l < self.n_layers:
                e = self._step_block(l, e, state, longest)
        return self.heads(e), residuals

    # ---------------------------------------------------------------- likelihoods

    def action_distribution(
        self, head: HeadOutput, validate_args: bool | None = None
    ) -> Distribution:
        """``Categorical`` over ``n_actions`` or ``Independent(Normal)`` over ``action_dim``.

        ``validate_args=False`` skips torch's argument checks, which read values back from the
        device (a host sync per call): for training loops that have checked their data."""
        v = validate_args
        if self.action_type == "discrete":
            return Categorical(logits=head.action_logits, validate_args=v)
        normal = Normal(head.action_mean, head.action_log_std.exp(), validate_args=v)
        return Independent(normal, 1, validate_args=v)

    def check_action_range(self, actions: Tensor) -> None:
        """Raise if discrete ``actions`` fall outside ``[0, n_actions)``. Call it where the
        actions are host tensors: on a GPU the check reads a value back (a device sync)."""
        if self.action_type != "discrete":
            return
        bad = (actions < 0) | (actions >= self.config.n_actions)
        if bool(bad.any()):
            raise ValueError(
                f"discrete actions must lie in [0, {self.config.n_actions}) for this base model, "
                f"got {sorted(set(actions[bad].tolist()))[:8]}"
            )

    def loss(
        self,
        obs: Tensor,
        actions: Tensor,
        mask: Tensor | None = None,
        obs_coef: float = 0.01,
        intervention: Intervention | None = None,
        layer: int | None = None,
    ) -> LossOutput:
        """Paper Eq. 5: mean over valid steps of ``-ln p(a_t|o_{1:t}) + obs_coef·ℓ(o_{t+1})``.

        ``obs`` (B, T+1, obs_dim) holds ``o_1..o_{T+1}`` (the model reads ``o_1..o_T``);
        ``actions`` (B, T) integer (discrete) or (B, T, action_dim) float (continuous);
        ``mask`` (B, T) bool marks valid steps. ``ℓ`` is BCE-with-logits summed over observation
        dims (``obs_loss="bce"``) or ``0.5·‖pred - o‖²`` (``"mse"``, unit-variance Gaussian NLL
        up to a constant).
        """
        obs = self._as_obs(obs, 3, "loss")
        B, T = obs.shape[0], obs.shape[1] - 1
        if T < 1:
            raise ValueError(f"loss needs obs with at least 2 timesteps (o_1..o_T+1), got {T + 1}")
        # checked where they are (host arrays: no device sync), then moved to the model
        actions = torch.as_tensor(actions)
        if self.action_type == "discrete":
            if actions.shape != (B, T) or actions.is_floating_point():
                raise ValueError(
                    f"discrete actions must be an integer tensor of shape (B, T) = ({B}, {T}) "
                    f"(obs holds T+1 steps), got {actions.dtype} {tuple(actions.shape)}"
                )
            self.check_action_range(actions)
            actions = actions.to(self.device).long()
        else:
            expected = (B, T, self.config.action_dim)
            if actions.shape != expected:
                raise ValueError(
                    f"continuous actions must have shape (B, T, action_dim) = {expected} "
                    f"(obs holds T+1 steps), got {tuple(actions.shape)}"
                )
            actions = actions.to(self.device, self.dtype)
        if mask is None:
            mask = torch.ones(B, T, dtype=torch.bool, device=self.device)
        else:
            mask = torch.as_tensor(mask, device=self.device)
            if mask.shape != (B, T):
                raise ValueError(
                    f"mask must have shape (B, T) = ({B}, {T}), got {tuple(mask.shape)}"
                )
        weights = mask.to(self.dtype)
        n_valid = weights.sum().clamp(min=1.0)

        out = self.forward(obs[:, :-1], intervention=intervention, layer=layer)
        dist = self.action_distribution(out, validate_args=False)  # actions checked above
        action_nll = -dist.log_prob(actions)  # (B, T)
        target = obs[:, 1:]
        if self.obs_loss_type == "bce":
            obs_l = F.binary_cross_entropy_with_logits(out.obs_pred, target, reduction="none")
        else:
            obs_l = 0.5 * (out.obs_pred - target).pow(2)
        obs_l = obs_l.sum(-1)  # (B, T)

        def masked_mean(x: Tensor) -> Tensor:
            return (x * weights).sum() / n_valid

        accuracy = None
        if self.action_type == "discrete":
            accuracy = masked_mean((out.action_logits.argmax(-1) == actions).to(self.dtype))
        return LossOutput(
            loss=masked_mean(action_nll + obs_coef * obs_l),
            action_nll=masked_mean(action_nll),
            obs_loss=masked_mean(obs_l),
            action_accuracy=accuracy,
        )


def _validate_config(c: BaseModelConfig) -> None:
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
    if c.init_scale <= 0:
        raise ValueError(f"init_scale must be positive, got {c.init_scale!r}")
    if c.control_layer is not None and (
        not isinstance(c.control_layer, int) or not 0 <= c.control_layer <= c.n_layers
    ):
        raise ValueError(
            f"control_layer must be an int in 0..n_layers={c.n_layers} (0 = the embedding), or "
            f"None for L/2; got {c.control_layer!r}. Pick it with `internal-rl probe`."
        )
