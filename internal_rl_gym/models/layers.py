"""Building blocks of the base models (paper Tables A15, A16).

Every sequence module has two entry points that compute the same function:

* ``forward(x)`` on a whole sequence ``x`` of shape ``(B, T, d)``, causally, from an empty state;
* ``step(x_t, ...)`` on one new timestep ``x_t`` of shape ``(B, d)`` plus that layer's cache
  (attention K/V, or the RG-LRU hidden state and the Conv1D buffer), returning the output and the
  updated cache.

Stepping through a sequence reproduces ``forward`` to float rounding (the two paths share the same
per-timestep arithmetic wherever the order of operations matters).

Initialisers follow the paper's "variance scaling 0.1": weights ~ N(0, init_scale / fan_in),
biases zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "RMSNorm",
    "MLP",
    "RelativePositionBias",
    "relative_position_bucket",
    "CausalSelfAttention",
    "TransformerBlock",
    "BlockDiagonalLinear",
    "CausalConv1D",
    "RGLRU",
    "RecurrentBlock",
    "HawkBlock",
    "variance_scaling_",
    "init_linear_",
]


# --------------------------------------------------------------------------------------------
# initialisers


def variance_scaling_(tensor: Tensor, fan_in: int, scale: float) -> Tensor:
    """In-place ``N(0, scale / fan_in)`` (a truncation-free variance-scaling initialiser)."""
    with torch.no_grad():
        return tensor.normal_(0.0, math.sqrt(scale / max(1, fan_in)))


def init_linear_(layer: nn.Linear, scale: float) -> None:
    """Variance-scaling weights (fan-in), zero bias."""
    variance_scaling_(layer.weight, layer.in_features, scale)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


def _write_slot(cache: Tensor, pos: Tensor, value: Tensor) -> Tensor:
    """``cache[b, :, pos[b]] = value[b]`` for a ``(B, H, M, D)`` cache and ``(B, H, D)`` value.

    In place when no gradient flows (the usual inference case); otherwise out of place, so that
    tensors saved for backward by earlier steps are not overwritten.
    """
    if torch.is_grad_enabled() and (value.requires_grad or cache.requires_grad):
        slot = torch.arange(cache.shape[2], device=cache.device) == pos[:, None]  # (B, M)
        return torch.where(slot[:, None, :, None], value[:, :, None, :].to(cache.dtype), cache)
    rows = torch.arange(cache.shape[0], device=cache.device)
    cache[rows, :, pos] = value.to(cache.dtype)
    return cache


def _write_rows_slot(cache: Tensor, index: tuple[Tensor, Tensor, Tensor], value: Tensor) -> Tensor:
    """``cache[rows[j], :, pos[j]] = value[j]`` for ``index = (rows[:, None], heads[None, :],
    pos[:, None])``; in place unless a gradient flows."""
    if torch.is_grad_enabled() and (value.requires_grad or cache.requires_grad):
        return cache.index_put(index, value.to(cache.dtype))
    return cache.index_put_(index, value.to(cache.dtype))


# --------------------------------------------------------------------------------------------
# shared


class RMSNorm(nn.Module):
    """Root-mean-square layer norm with a learned gain (initialised to one)."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        if x.dtype == self.weight.dtype:
            return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)
        # bf16 activations under autocast: normalise in the weight's precision
        return F.rms_norm(x.to(self.weight.dtype), (x.shape[-1],), self.weight, self.eps).to(
            x.dtype
        )


class MLP(nn.Module):
    """``Linear(d → d_mlp) → ReLU → Linear(d_mlp → d)``."""

    def __init__(self, d_model: int, d_mlp: int, init_scale: float) -> None:
        super().__init__()
        self.fc_in = nn.Linear(d_model, d_mlp)
        self.fc_out = nn.Linear(d_mlp, d_model)
        init_linear_(self.fc_in, init_scale)
        init_linear_(self.fc_out, init_scale)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc_out(F.relu(self.fc_in(x)))


# --------------------------------------------------------------------------------------------
# transformer


def relative_position_bucket(distance: Tensor, num_buckets: int, max_distance: int) -> Tensor:
    """T5 bucket of a causal (``bidirectional=False``) distance ``query_pos - key_pos >= 0``.

    Distances below ``num_buckets // 2`` get their own bucket; larger ones share logarithmically
    wider buckets up to ``max_distance``, beyond which everything falls in the last bucket.
    Negative distances (future keys, masked anyway) map to bucket 0.
    """
    n = distance.clamp(min=0)
    max_exact = num_buckets // 2
    if max_exact < 1 or max_distance <= max_exact:
        return n.clamp(max=num_buckets - 1)
    large = (
        max_exact
        + (
            torch.log(n.clamp(min=max_exact).float() / max_exact)
            / math.log(max_distance / max_exact)
            * (num_buckets - max_exact)
        ).long()
    )
    large = large.clamp(max=num_buckets - 1)
    return torch.where(n < max_exact, n, large)


class RelativePositionBias(nn.Module):
    """Per-head learned bias on attention logits, indexed by the bucketed relative distance."""

    def __init__(self, n_heads: int, num_buckets: int, max_distance: int, init_scale: float):
        super().__init__()
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.table = nn.Embedding(num_buckets, n_heads)
        variance_scaling_(self.table.weight, 1, init_scale)

    def forward(self, distance: Tensor, top: int | None = None) -> Tensor:
        """``distance`` (any shape, long) → bias ``(*distance.shape, n_heads)``. ``top``: an
        upper bound of ``distance`` known on the host, which spares reading its max back from
        the device (a sync per call on a GPU)."""
        return self.table(self.buckets(distance, top))

    def buckets(self, distance: Tensor, top: int | None = None) -> Tensor:
        """:func:`relative_position_bucket` through a lookup table (stepping calls this once per
        layer per timestep, so the logarithm is computed once per distance, not every time)."""
        lut = getattr(self, "_lut", None)
        if top is None:
            top = int(distance.max()) if distance.numel() else 0
        if lut is None or lut.device != distance.device or top >= len(lut):
            size = max(2 * top + 1, 256)
            lut = relative_position_bucket(
                torch.arange(size, device=distance.device), self.num_buckets, self.max_distance
            )
            self._lut = lut
        return lut[distance.clamp(min=0)]


def hidden_keys(distance: Tensor, window: int | None) -> Tensor:
    """True where a query may not read a key ``distance = query_pos - key_pos`` steps back: the
    future, and with an attention ``window`` every key ``window`` or more steps in the past."""
    if window is None:
        return distance < 0
    return (distance < 0) | (distance >= window)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with T5 relative position biases and a KV-cache step.

    With ``window`` set, each token attends to itself and the ``window - 1`` tokens before it
    (sliding-window attention), in both execution modes."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_head: int,
        rel_buckets: int,
        rel_max_distance: int,
        init_scale: float,
        window: int | None = None,
    ) -> None:
        super().__init__()
        self.n_heads, self.d_head, self.window = n_heads, d_head, window
        self.qkv = nn.Linear(d_model, 3 * n_heads * d_head, bias=False)
        self.out = nn.Linear(n_heads * d_head, d_model, bias=False)
        init_linear_(self.qkv, init_scale)
        init_linear_(self.out, init_scale)
        self.rel_bias = RelativePositionBias(n_heads, rel_buckets, rel_max_distance, init_scale)
        self.register_buffer("head_index", torch.arange(n_heads), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        B, T, _ = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_heads, self.d_head).permute(2, 0, 3, 1, 4)
        pos = torch.arange(T, device=x.device)
        distance = pos[:, None] - pos[None, :]  # (T_query, T_key)
        bias = self.rel_bias(distance, top=T - 1).permute(2, 0, 1).to(q.dtype)  # (H, T, T)
        bias = bias.masked_fill(hidden_keys(distance, self.window), float("-inf"))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.unsqueeze(0))
        return self.out(y.transpose(1, 2).reshape(B, T, self.n_heads * self.d_head))

    def step(
        self,
        x: Tensor,
        keys: Tensor,
        values: Tensor,
        pos: Tensor,
        n_slots: int,
        rows: Tensor | None = None,
        context: StepContext | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One token per row. ``x`` (B, d); ``keys``/``values`` (B, H, max_len, d_head);
        ``pos`` (B,) long = this token's position in its row's episode; only the first
        ``n_slots`` (> max(pos)) cache slots are read. With ``rows`` (n,), ``x`` and ``pos``
        hold only those rows of the cache's batch, and only they are read and written.
        ``context`` (from :func:`step_contexts`, matching ``pos``/``n_slots``/``rows``) spares
        recomputing what all layers share; it is ignored when a gradient flows."""
        B = x.shape[0]
        q, k, v = self.qkv(x).view(B, 3, self.n_heads, self.d_head).unbind(1)  # (B, H, dh)
        if context is not None and not (
            torch.is_grad_enabled() and (x.requires_grad or keys.requires_grad)
        ):
            return self._step_in_context(q, k, v, keys, values, context)
        if rows is None:
            keys = _write_slot(keys, pos, k)
            values = _write_slot(values, pos, v)
            k_read, v_read = keys[:, :, :n_slots], values[:, :, :n_slots]
        else:
            index = (rows[:, None], self.head_index[None, :], pos[:, None])
            keys = _write_rows_slot(keys, index, k)
            values = _write_rows_slot(values, index, v)
            k_read = keys[:, :, :n_slots].index_select(0, rows)
            v_read = values[:, :, :n_slots].index_select(0, rows)
        slots = torch.arange(n_slots, device=x.device)
        distance = pos[:, None] - slots[None, :]  # (B, n_slots)
        # pos < n_slots, so n_slots - 1 bounds every distance
        bias = self.rel_bias(distance, top=n_slots - 1).permute(0, 2, 1).to(q.dtype)
        bias = bias.masked_fill(hidden_keys(distance, self.window)[:, None, :], float("-inf"))
        y = F.scaled_dot_product_attention(
            q.unsqueeze(2), k_read, v_read, attn_mask=bias.unsqueeze(2)
        )  # (B, H, 1, dh)
        return self.out(y.reshape(B, self.n_heads * self.d_head)), keys, values

    def _step_in_context(
        self, q: Tensor, k: Tensor, v: Tensor, keys: Tensor, values: Tensor, ctx: StepContext
    ) -> tuple[Tensor, Tensor, Tensor]:
        """:meth:`step` without gradients, from a :class:`StepContext` shared by the layers of
        one stepping call: the same values, in fewer and cheaper tensor operations."""
        n, H, D = k.shape
        if keys.is_contiguous() and values.is_contiguous():  # one index_copy_ per cache
            keys.view(-1, D).index_copy_(0, ctx.slot, k.reshape(-1, D).to(keys.dtype))
            values.view(-1, D).index_copy_(0, ctx.slot, v.reshape(-1, D).to(values.dtype))
        else:
            index = (ctx.row_index[:, None], self.head_index[None, :], ctx.pos[:, None])
            keys.index_put_(index, k.to(keys.dtype))
            values.index_put_(index, v.to(values.dtype))
        k_read, v_read = keys[:, :, : ctx.n_slots], values[:, :, : ctx.n_slots]
        if ctx.rows is not None:
            k_read, v_read = k_read.index_select(0, ctx.rows), v_read.index_select(0, ctx.rows)
        bias = self.rel_bias.table(ctx.bucket).permute(0, 2, 1).to(q.dtype)
        bias = bias.masked_fill(ctx.future, float("-inf"))
        y = F.scaled_dot_product_attention(
            q.unsqueeze(2), k_read, v_read, attn_mask=bias.unsqueeze(2)
        )  # (n, H, 1, dh)
        return self.out(y.reshape(n, H * self.d_head)), keys, values


@dataclass
class StepContext:
    """What the attention layers of one stepping call share, computed once for all of them
    (:func:`step_contexts`): the flat cache slots written, the relative-distance buckets and
    the causal mask of each row."""

    rows: Tensor | None  # (n,) rows of the cache's batch, or None for every row in order
    row_index: Tensor  # (n,) the rows' indices in the cache (arange when rows is None)
    pos: Tensor  # (n,) this token's position in each row's episode
    n_slots: int  # cache slots read (> max(pos))
    slot: Tensor  # (n * H,) flat index of (row, head, pos) in a (B * H * max_len, d_head) view
    bucket: Tensor  # (n, n_slots) bucket of each read slot's distance
    future: Tensor  # (n, 1, n_slots) bool: slots masked (after this token, or out of the window)


def step_contexts(
    attn: CausalSelfAttention,
    pos: Tensor,
    n_slots: int,
    rows: Tensor | None,
    batch_size: int,
    max_len: int,
) -> list[StepContext]:
    """One :class:`StepContext` per layer from ``pos`` (n_layers, n), each layer's positions,
    built with a few batched operations for all layers (``attn``: any of the layers; they share
    the bucketing)."""
    device = pos.device
    row_index = rows if rows is not None else torch.arange(batch_size, device=device)
    H = attn.n_heads
    slot = (row_index[:, None] * H + attn.head_index[None, :]) * max_len  # (n, H)
    slot = (slot[None] + pos[:, :, None]).flatten(1)  # (layers, n * H)
    distance = pos[:, :, None] - torch.arange(n_slots, device=device)  # (layers, n, n_slots)
    # pos < n_slots, so n_slots - 1 bounds every distance
    bucket = attn.rel_bias.buckets(distance, top=n_slots - 1)
    future = hidden_keys(distance, attn.window).unsqueeze(-2)  # (layers, n, 1, n_slots)
    return [
        StepContext(rows, row_index, pos[k], n_slots, slot[k], bucket[k], future[k])
        for k in range(pos.shape[0])
    ]


class TransformerBlock(nn.Module):
    """Pre-norm block: ``x + Attn(norm(x))``, then ``x + MLP(norm(x))``."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_head: int,
        d_mlp: int,
        rel_buckets: int,
        rel_max_distance: int,
        init_scale: float,
        window: int | None = None,
    ) -> None:
        super().__init__()
        self.norm_attn = RMSNorm(d_model)
        self.attn = CausalSelfAttention(
            d_model, n_heads, d_head, rel_buckets, rel_max_distance, init_scale, window
        )
        self.norm_mlp = RMSNorm(d_model)
        self.mlp = MLP(d_model, d_mlp, init_scale)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm_attn(x))
        return x + self.mlp(self.norm_mlp(x))

    def step(
        self,
        x: Tensor,
        keys: Tensor,
        values: Tensor,
        pos: Tensor,
        n_slots: int,
        rows: Tensor | None = None,
        context: StepContext | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        h, keys, values = self.attn.step(
            self.norm_attn(x), keys, values, pos, n_slots, rows, context
        )
        x = x + h
        return x + self.mlp(self.norm_mlp(x)), keys, values


# --------------------------------------------------------------------------------------------
# Hawk (Griffin paper's recurrent block with the RG-LRU)


class BlockDiagonalLinear(nn.Module):
    """``width → width`` linear map made of ``n_blocks`` independent square blocks ("heads")."""

    def __init__(self, width: int, n_blocks: int, init_scale: float) -> None:
        super().__init__()
        if width % n_blocks:
            raise ValueError(f"width {width} is not divisible by the number of blocks {n_blocks}")
        self.n_blocks, self.block = n_blocks, width // n_blocks
        self.weight = nn.Parameter(torch.empty(n_blocks, self.block, self.block))
        self.bias = nn.Parameter(torch.zeros(n_blocks, self.block))
        variance_scaling_(self.weight, self.block, init_scale)

    def forward(self, x: Tensor) -> Tensor:
        xb = x.unflatten(-1, (self.n_blocks, self.block))
        y = torch.einsum("...hi,hij->...hj", xb, self.weight) + self.bias
        return y.flatten(-2)


class CausalConv1D(nn.Module):
    """Depthwise causal temporal convolution: ``y_t = b + Σ_k w_k ⊙ x_{t-k}``, k < width."""

    def __init__(self, width: int, conv_width: int, init_scale: float) -> None:
        super().__init__()
        self.conv_width = conv_width
        self.weight = nn.Parameter(torch.empty(conv_width, width))  # weight[k] multiplies x_{t-k}
        self.bias = nn.Parameter(torch.zeros(width))
        variance_scaling_(self.weight, conv_width, init_scale)

    def forward(self, x: Tensor) -> Tensor:
        T, K = x.shape[1], self.conv_width
        xp = F.pad(x, (0, 0, K - 1, 0))  # zeros before the first step
        y = self.bias.expand_as(x)
        for k in range(K):
            y = y + self.weight[k] * xp[:, K - 1 - k : K - 1 - k + T]
        return y

    def step(self, x: Tensor, buffer: Tensor) -> tuple[Tensor, Tensor]:
        """``x`` (B, W); ``buffer`` (B, K-1, W) = the last K-1 inputs, oldest first."""
        K = self.conv_width
        window = torch.cat([buffer, x.unsqueeze(1)], dim=1)  # (B, K, W)
        y = self.bias.expand_as(x)
        for k in range(K):
            y = y + self.weight[k] * window[:, K - 1 - k]
        return y, window[:, 1:]


class RGLRU(nn.Module):
    """Real-Gated Linear Recurrent Unit (Griffin, De et al. 2024).

    ``r_t = σ(W_a x_t + b_a)``, ``i_t = σ(W_x x_t + b_x)``, ``a_t = max(σ(Λ)^(c·r_t), e^-4)`` (c = 8),
    ``h_t = a_t ⊙ h_{t-1} + sqrt(1 - a_t²) ⊙ (i_t ⊙ x_t)``, ``h_0 = 0``.
    The gates ``W_a``, ``W_x`` are block-diagonal with ``n_heads`` blocks; ``σ(Λ)`` is
    initialised uniformly in [0.9, 0.999].
    """

    c: float = 8.0
    #: Floor on ``log a_t`` (a_t >= e^-4 ~ 0.018): forgetting is already near total there, and
    #: the floor keeps the chunked scan in ``forward`` finite (``exp(-Σ log a)`` over a chunk).
    min_log_a: float = -4.0
    #: Timesteps per chunk of the scan in ``forward``: the recurrence runs in closed form inside
    #: a chunk and sequentially across chunks (T / chunk Python steps instead of T).
    chunk: int = 16

    def __init__(
        self,
        width: int,
        n_heads: int,
        init_scale: float,
        a_min: float = 0.9,
        a_max: float = 0.999,
    ) -> None:
        super().__init__()
        self.gate_a = BlockDiagonalLinear(width, n_heads, init_scale)
        self.gate_x = BlockDiagonalLinear(width, n_heads, init_scale)
        a0 = torch.empty(width).uniform_(a_min, a_max)
        self.a_param = nn.Parameter(torch.logit(a0))  # Λ, with σ(Λ) = a0

    def _coefficients(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Per-timestep ``(log a_t, sqrt(1 - a_t²) ⊙ i_t ⊙ x_t)``; any leading shape."""
        r = torch.sigmoid(self.gate_a(x))
        i = torch.sigmoid(self.gate_x(x))
        log_a = (-self.c * F.softplus(-self.a_param) * r).clamp(min=self.min_log_a)
        multiplier = torch.sqrt(-torch.expm1(2.0 * log_a))  # sqrt(1 - a²), stable near a = 1
        return log_a, multiplier * (i * x)

    def forward(self, x: Tensor) -> Tensor:
        if self.chunk * -self.min_log_a > 80:  # exp(80) is near float32's limit
            raise ValueError(
                f"RGLRU.chunk={self.chunk} with min_log_a={self.min_log_a} overflows the scan "
                "in float32; keep chunk * -min_log_a <= 80 (e.g. chunk <= 20)."
            )
        log_a, b = self._coefficients(x)  # (B, T, W) each, vectorised over time
        dtype, (n_batch, n_time, width) = b.dtype, b.shape
        log_a, b = log_a.float(), b.float()
        pad = (-n_time) % self.chunk
        if pad:
            log_a, b = F.pad(log_a, (0, 0, 0, pad)), F.pad(b, (0, 0, 0, pad))
        shape = (n_batch, -1, self.chunk, width)
        # Inside a chunk, with L_t = Σ_{s<=t} log a_s: h_t = e^{L_t} (h_0 + Σ_{s<=t} e^{-L_s} b_s).
        cum_log_a = log_a.reshape(shape).cumsum(2)
        weighted = (torch.exp(-cum_log_a) * b.reshape(shape)).cumsum(2)
        decay = torch.exp(cum_log_a)
        h = torch.zeros_like(b[:, 0])
        out = []
        for k in range(cum_log_a.shape[1]):  # across chunks the recurrence is sequential
            chunk = decay[:, k] * (weighted[:, k] + h[:, None])
            out.append(chunk)
            h = chunk[:, -1]
        return torch.cat(out, dim=1)[:, :n_time].to(dtype)

    def step(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        log_a, b = self._coefficients(x)
        h = torch.exp(log_a) * h + b
        return h, h


class RecurrentBlock(nn.Module):
    """Hawk temporal-mixing block:
    ``Linear_out( GeLU(Linear_gate(x)) ⊙ RG_LRU(Conv1D(Linear_in(x))) )``."""

    def __init__(
        self, d_model: int, lru_width: int, n_heads: int, conv_width: int, init_scale: float
    ) -> None:
        super().__init__()
        self.linear_gate = nn.Linear(d_model, lru_width)
        self.linear_in = nn.Linear(d_model, lru_width)
        self.conv = CausalConv1D(lru_width, conv_width, init_scale)
        self.rg_lru = RGLRU(lru_width, n_heads, init_scale)
        self.linear_out = nn.Linear(lru_width, d_model)
        for layer in (self.linear_gate, self.linear_in, self.linear_out):
            init_linear_(layer, init_scale)

    def forward(self, x: Tensor) -> Tensor:
        gate = F.gelu(self.linear_gate(x))
        y = self.rg_lru(self.conv(self.linear_in(x)))
        return self.linear_out(gate * y)

    def step(self, x: Tensor, h: Tensor, conv_buffer: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        gate = F.gelu(self.linear_gate(x))
        u, conv_buffer = self.conv.step(self.linear_in(x), conv_buffer)
        y, h = self.rg_lru.step(u, h)
        return self.linear_out(gate * y), h, conv_buffer


class HawkBlock(nn.Module):
    """Pre-norm block: ``x + RecurrentBlock(norm(x))``, then ``x + MLP(norm(x))``."""

    def __init__(
        self,
        d_model: int,
        lru_width: int,
        n_heads: int,
        d_mlp: int,
        conv_width: int,
        init_scale: float,
    ) -> None:
        super().__init__()
        self.norm_mix = RMSNorm(d_model)
        self.mix = RecurrentBlock(d_model, lru_width, n_heads, conv_width, init_scale)
        self.norm_mlp = RMSNorm(d_model)
        self.mlp = MLP(d_model, d_mlp, init_scale)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.mix(self.norm_mix(x))
        return x + self.mlp(self.norm_mlp(x))

    def step(self, x: Tensor, h: Tensor, conv_buffer: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        m, h, conv_buffer = self.mix.step(self.norm_mix(x), h, conv_buffer)
        x = x + m
        return x + self.mlp(self.norm_mlp(x)), h, conv_buffer
