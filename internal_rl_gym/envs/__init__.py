"""Task environments of the paper: GridPinpad (discrete) and AntPinpad (MuJoCo)."""

from internal_rl_gym.envs.grid_pinpad import GridPinpadEnv

__all__ = ["GridPinpadEnv"]
