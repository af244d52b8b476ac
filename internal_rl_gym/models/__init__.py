"""Base autoregressive models (causal Transformer, Hawk) with a controllable residual stream."""

from internal_rl_gym.models.base_model import BaseModel
from internal_rl_gym.models.config import (
    ANT_CPU_PRESET,
    ANT_PAPER_PRESET,
    GRID_CPU_PRESET,
    GRID_PAPER_PRESET,
    BaseModelConfig,
)
from internal_rl_gym.models.linear_control import Intervention, apply_linear_control
from internal_rl_gym.models.metacontroller import Metacontroller, SubgoalControllers
from internal_rl_gym.models.outputs import (
    BaseModelOutput,
    HawkState,
    HeadOutput,
    LossOutput,
    ModelState,
    TransformerState,
)

__all__ = [
    "ANT_CPU_PRESET",
    "ANT_PAPER_PRESET",
    "GRID_CPU_PRESET",
    "GRID_PAPER_PRESET",
    "BaseModel",
    "BaseModelConfig",
    "BaseModelOutput",
    "HawkState",
    "HeadOutput",
    "Metacontroller",
    "SubgoalControllers",
    "Intervention",
    "LossOutput",
    "ModelState",
    "TransformerState",
    "apply_linear_control",
]
