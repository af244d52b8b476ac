"""internal-rl-gym: environments and models for internal reinforcement learning.

Importing the package registers its environment ids with Gymnasium::

    import gymnasium as gym
    import internal_rl_gym

    env = gym.make("GridPinpad-v0")

See :func:`register_envs` for the full list.
"""

from __future__ import annotations

import gymnasium

__version__ = "0.1.0"


def register_envs() -> None:
    """Register every environment id of the package (called on import; safe to call again)."""

    def register(id: str, entry_point: str, **kwargs) -> None:
        if id not in gymnasium.registry:
            gymnasium.register(id=id, entry_point=entry_point, **kwargs)

    # The paper's gridworld-pinpad (§A.1). The env truncates at max_steps (T=100) itself.
    # gym.make_vec builds the natively batched GridPinpadVectorEnv by default (vector_entry_point);
    # vectorization_mode="sync" gives a SyncVectorEnv of single envs.
    register(
        "GridPinpad-v0",
        "internal_rl_gym.envs.grid_pinpad:GridPinpadEnv",
        vector_entry_point="internal_rl_gym.envs.grid_vector:GridPinpadVectorEnv",
    )
    # The paper's ant-pinpad (§A.2): sparse reward, T=500 (the env truncates itself).
    register("AntPinpad-v0", "internal_rl_gym.envs.ant_pinpad:AntPinpadEnv")
    # The same task with route hints to every colour in the torso's frame (not in the paper):
    # what CPU-scale ant base models are trained on (see AntPinpadEnv's Observation Space).
    register(
        "AntPinpadRoutes-v0",
        "internal_rl_gym.envs.ant_pinpad:AntPinpadEnv",
        kwargs={"relative_frame": "heading", "route_hints": True},
    )
    # ... and with the colour of the cell underfoot (not in the paper either): the event the
    # pretraining tasks' rule needs a model to remember, as the grid encoders provide it.
    register(
        "AntPinpadRoutes-v1",
        "internal_rl_gym.envs.ant_pinpad:AntPinpadEnv",
        kwargs={"relative_frame": "heading", "route_hints": True, "colour_underfoot": True},
    )
    # For training experts only: per-cell direction hints in the observation + velocity reward.
    # A separate id, so the sparse AntPinpad-v0 stays exactly the paper's task.
    register("AntPinpadShaped-v0", "internal_rl_gym.envs.ant_pinpad:AntPinpadShapedEnv")

    # Internal RL (§5): observation = residual stream, action = controller code z, one step =
    # one abstract action. The generic id takes any env id, base model and metacontroller;
    # the named ids are the same env with the embedded default checkpoints and the paper's
    # post-training task.
    internal = "internal_rl_gym.internal_control:InternalControlEnv"
    register("InternalControl-v0", internal)
    register(
        "InternalControl-Pinpad-v0",
        internal,
        kwargs={
            "env_id": "GridPinpad-v0",
            "base_model": "pinpad-transformer",
            "metacontroller": "pinpad-metacontroller",
            "task": "post",
        },
    )
    # The oracle of internal RL: the same env, but an action picks one of the ground-truth
    # subgoal controllers (Discrete(4)) and an abstract step ends when the true subgoal changes.
    # It verifies the RL side apart from discovery; internal RL should approach it.
    register(
        "InternalControl-Pinpad-Oracle-v0",
        internal,
        kwargs={
            "env_id": "GridPinpad-v0",
            "base_model": "pinpad-transformer",
            "metacontroller": "pinpad-subgoal-controllers",
            "task": "post",
        },
    )
    # The ant steers a base model of AntPinpadRoutes-v1 (the paper's observation plus the route
    # to each colour and the colour underfoot), whose mixture head acts with its mean action; an
    # ant subgoal takes ~65 primitive steps, so an abstract step may last up to 200.
    # Earlier ids steered other weights and are retired (gym.make names the current one): v0
    # (ant-hawk in AntPinpad-v0), v1 and Oracle-v0 (ant-transformer's step-55,000 weights), v2
    # and Oracle-v1 (its step-85,000 weights, before the heading-kick fine-tunes).
    ant = {
        "env_id": "AntPinpadRoutes-v1",
        "task": "post",
        "primitive_sampling": "mean",
        "max_primitive_steps": 200,
    }
    register(
        "InternalControl-Ant-v3",
        internal,
        kwargs={**ant, "base_model": "ant-transformer", "metacontroller": "ant-metacontroller"},
    )
    register(
        "InternalControl-Ant-Oracle-v2",
        internal,
        kwargs={
            **ant,
            "base_model": "ant-transformer",
            "metacontroller": "ant-subgoal-controllers",
        },
    )


register_envs()

from internal_rl_gym.data import Demonstrations  # noqa: E402
from internal_rl_gym.envs import GridPinpadEnv  # noqa: E402

# Loaded on first use, so that `import internal_rl_gym` for the envs alone does not import torch.
_LAZY = {
    "load_base_model": "internal_rl_gym.hub",
    "load_metacontroller": "internal_rl_gym.hub",
    "load_subgoal_controllers": "internal_rl_gym.hub",
    "load_policy_from_hub": "internal_rl_gym.hub",
    "InternalControlEnv": "internal_rl_gym.internal_control",
    "InternalControlWrapper": "internal_rl_gym.internal_control",
    "InternalControlVecEnv": "internal_rl_gym.internal_control",
    "make_internal_control_vec_env": "internal_rl_gym.internal_control",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'internal_rl_gym' has no attribute {name!r}")


__all__ = ["Demonstrations", "GridPinpadEnv", "register_envs", "__version__", *_LAZY]
