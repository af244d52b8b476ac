"""Task environments of the paper: GridPinpad (discrete) and AntPinpad (MuJoCo)."""

from internal_rl_gym.envs.grid_pinpad import GridPinpadEnv
from internal_rl_gym.envs.grid_vector import GridPinpadVectorEnv

__all__ = ["GridPinpadEnv", "GridPinpadVectorEnv"]
