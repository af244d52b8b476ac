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

Its parts live beside it: the constructor arguments and presets in
:mod:`~internal_rl_gym.models.config`, the outputs and stepping state in
:mod:`~internal_rl_gym.models.outputs`, the linear control in
:mod:`~internal_rl_gym.models.linear_control` and the grid observation encoders in
:mod:`~internal_rl_gym.models.encoders`. Their names stay importable from this module.
The module stays over 600 lines for the one class left, on purpose: its two execution modes
share their checks and per-block helpers and must compute the same function, so they stay
together.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import Tensor, nn
from torch.distributions import (
    Categorical,
    Distribution,
    Independent,
    MixtureSameFamily,
    Normal,
)

from internal_rl_gym.models.config import (
    ACTION_TYPES,
    ANT_CPU_PRESET,
    ANT_PAPER_PRESET,
    ARCHS,
    GRID_CPU_PRESET,
    GRID_PAPER_PRESET,
    OBS_ENCODERS,
    OBS_LOSSES,
    BaseModelConfig,
)
from internal_rl_gym.models.config import validate_config as _validate_config
from internal_rl_gym.models.encoders import GridCellEncoder, GridEgocentricEncoder
from internal_rl_gym.models.layers import (
    HawkBlock,
    RMSNorm,
    StepContext,
    TransformerBlock,
    init_linear_,
    step_contexts,
)
from internal_rl_gym.models.linear_control import Intervention, apply_linear_control
from internal_rl_gym.models.outputs import (
    BaseModelOutput,
    HawkState,
    HeadOutput,
    LossOutput,
    ModelState,
    TransformerState,
)

# The configuration, outputs, control and encoders live in their own modules; the names stay
# importable from here (older code and pickles refer to internal_rl_gym.models.base_model).
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
    "GridEgocentricEncoder",
    "apply_linear_control",
    "Intervention",
    "GRID_CPU_PRESET",
    "GRID_PAPER_PRESET",
    "ANT_CPU_PRESET",
    "ANT_PAPER_PRESET",
    "ACTION_TYPES",
    "ARCHS",
    "OBS_ENCODERS",
    "OBS_LOSSES",
]

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


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
      ``rel_buckets`` buckets up to ``rel_max_distance``, KV cache of ``max_len`` steps; with
      ``attention_window`` W each step attends to the last W steps only) or
      ``"hawk"`` (RG-LRU recurrent blocks of width ``lru_width`` (default ``d_model``), gates
      block-diagonal with ``n_heads`` blocks, causal Conv1D of width ``conv_width``).
    * ``obs_encoder``: ``"linear"``, ``"grid_cells"`` (:class:`GridCellEncoder`) or
      ``"grid_egocentric"`` (:class:`GridEgocentricEncoder`); the grid encoders require
      ``obs_dim == grid_size² · grid_channels`` with the agent in the last channel.
    * ``action_type``: ``"discrete"`` (``n_actions``, categorical) or ``"continuous"``
      (``action_dim``, diagonal Gaussian with state-dependent log-std clamped to [-5, 2]; with
      ``action_components`` K > 1 a mixture of K such Gaussians, whose weights are also read
      from the stream, so that the model can commit to one of several directions instead of
      averaging them).
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
        action_components: int = 1,
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
        attention_window: int | None = None,
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
            action_components=action_components,
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
            attention_window=attention_window,
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
        self.action_components = action_components

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
                    d_model,
                    n_heads,
                    d_head,
                    d_mlp,
                    rel_buckets,
                    rel_max_distance,
                    init_scale,
                    attention_window,
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
            self.action_mean = nn.Linear(d_model, action_components * action_dim)
            self.action_log_std = nn.Linear(d_model, action_components * action_dim)
            init_linear_(self.action_mean, init_scale)
            init_linear_(self.action_log_std, init_scale)
            if action_components > 1:
                self.action_mix = nn.Linear(d_model, action_components)
                init_linear_(self.action_mix, init_scale)
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
        mean = self.action_mean(x).to(dtype)
        log_std = self.action_log_std(x).to(dtype).clamp(LOG_STD_MIN, LOG_STD_MAX)
        if self.action_components == 1:
            return HeadOutput(obs_pred=obs_pred, action_mean=mean, action_log_std=log_std)
        shape = (*mean.shape[:-1], self.action_components, self.config.action_dim)
        return HeadOutput(
            obs_pred=obs_pred,
            action_mean=mean.reshape(shape),
            action_log_std=log_std.reshape(shape),
            action_mix_logits=self.action_mix(x).to(dtype),
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
        contexts = [None] * (end - start)
        if active is None and start < end:
            contexts = self._step_contexts(state, start, state.layer_lengths[start:end], longest)
        for k, l in enumerate(range(start, end)):
            e_t = self._step_block(l, e_t, state, longest, active, contexts[k])
        return e_t

    def _step_contexts(
        self, state: ModelState, start: int, pos: Tensor, longest: int, rows: Tensor | None = None
    ) -> list[StepContext | None]:
        """What the attention layers ``start+1..`` of one inference step share (positions
        ``pos`` (layers, n)), computed once for all of them; ``None`` each for a Hawk state or
        when a gradient flows (then every layer computes its own)."""
        if not isinstance(state, TransformerState) or torch.is_grad_enabled():
            return [None] * pos.shape[0]
        attn = self.blocks[start].attn
        return step_contexts(attn, pos, longest + 1, rows, state.batch_size, state.max_len)

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
        self,
        l: int,
        e_t: Tensor,
        state: ModelState,
        longest: int,
        active: Tensor | None = None,
        context: StepContext | None = None,
    ) -> Tensor:
        """Block ``l + 1`` on one timestep; ``longest`` bounds the attended cache slots.

        With an ``active`` mask, inactive rows still compute (one batched call) but do not
        advance: a transformer row's write lands in the slot just past its length, which is
        never attended and is overwritten by its next real step; a Hawk row keeps its state.
        """
        block = self.blocks[l]
        if isinstance(state, TransformerState):
            e_t, state.keys[l], state.values[l] = block.step(
                e_t,
                state.keys[l],
                state.values[l],
                state.layer_lengths[l],
                longest + 1,
                None,
                context,
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
        contexts = self._step_contexts(state, start, pos, longest, rows)
        for k, l in enumerate(range(start, end)):
            block = self.blocks[l]
            if isinstance(state, TransformerState):
                e_t, state.keys[l], state.values[l] = block.step(
                    e_t, state.keys[l], state.values[l], pos[k], longest + 1, rows, contexts[k]
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
        contexts = self._step_contexts(state, 0, state.layer_lengths, longest)
        e = self.embed(obs_t)
        residuals = []
        for l in range(self.n_layers + 1):
            residuals.append(e)
            if intervention is not None and l == layer:
                e = self._intervene(intervention, e)
            if l < self.n_layers:
                e = self._step_block(l, e, state, longest, None, contexts[l])
        return self.heads(e), residuals

    # ---------------------------------------------------------------- likelihoods

    def action_distribution(
        self, head: HeadOutput, validate_args: bool | None = None
    ) -> Distribution:
        """``Categorical`` over ``n_actions``, ``Independent(Normal)`` over ``action_dim``, or
        for a mixture head ``MixtureSameFamily`` of ``action_components`` such Gaussians.

        ``validate_args=False`` skips torch's argument checks, which read values back from the
        device (a host sync per call): for training loops that have checked their data."""
        v = validate_args
        if self.action_type == "discrete":
            return Categorical(logits=head.action_logits, validate_args=v)
        normal = Normal(head.action_mean, head.action_log_std.exp(), validate_args=v)
        gaussian = Independent(normal, 1, validate_args=v)
        if head.action_mix_logits is None:
            return gaussian
        mix = Categorical(logits=head.action_mix_logits, validate_args=v)
        return MixtureSameFamily(mix, gaussian, validate_args=v)

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
