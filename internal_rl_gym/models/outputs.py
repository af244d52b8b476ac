"""What :class:`~internal_rl_gym.models.base_model.BaseModel` returns (head outputs, losses)
and the per-layer caches it steps with (:class:`ModelState` and its two architectures)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from torch import Tensor

__all__ = [
    "HeadOutput",
    "BaseModelOutput",
    "LossOutput",
    "ModelState",
    "TransformerState",
    "HawkState",
]


@dataclass
class HeadOutput:
    """Predictions read from the final residual stream ``e_L`` (leading dims as the input).

    ``action_logits`` (…, n_actions) for discrete actions; ``action_mean`` and
    ``action_log_std`` (…, action_dim) for continuous ones; with a mixture head
    (``action_components`` K > 1) they are (…, K, action_dim) and ``action_mix_logits`` (…, K)
    weighs the components. ``obs_pred`` (…, obs_dim) predicts ``o_{t+1}`` (logits for
    ``obs_loss="bce"``, values for ``"mse"``).
    """

    obs_pred: Tensor | None
    action_logits: Tensor | None = None
    action_mean: Tensor | None = None
    action_log_std: Tensor | None = None
    action_mix_logits: Tensor | None = None

    def expected_action(self) -> Tensor:
        """The continuous head's mean action (…, action_dim): ``action_mean`` for one Gaussian,
        ``Σ_k π_k μ_k`` for a mixture (what a policy trained by regression would output)."""
        if self.action_mean is None:
            raise ValueError(
                "expected_action needs a continuous action head; a discrete head's best action "
                "is action_logits.argmax(-1)"
            )
        if self.action_mix_logits is None:
            return self.action_mean
        pi = self.action_mix_logits.float().softmax(-1).unsqueeze(-1)
        return (pi * self.action_mean.float()).sum(-2).to(self.action_mean.dtype)


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
