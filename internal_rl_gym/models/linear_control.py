"""Linear residual control, ``ê = e + U e`` (paper Eq. 1): the intervention the paper's
controllers apply to the base model's residual stream."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["Intervention", "apply_linear_control"]

#: A function mapping the residual stream at one layer to its controlled version, shape-preserving:
#: ``(B, T, d) -> (B, T, d)`` in whole-sequence calls, ``(B, d) -> (B, d)`` when stepping.
Intervention = Callable[[Tensor], Tensor]


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
