"""Observation encoders for multi-hot grid observations (cell-major, the agent in the last
channel): each maps one observation to one token ``e_0`` of the base model."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from internal_rl_gym.models.layers import init_linear_

__all__ = ["GridCellEncoder", "GridEgocentricEncoder"]


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
