"""Import guard of the MuJoCo environments: MuJoCo is an optional extra (``[ant]``).

Imported first by every AntPinpad module, so a missing MuJoCo says how to install it instead of
failing deep inside Gymnasium. GridPinpad and InternalControl on the grid do not need it.
"""

try:
    import mujoco  # noqa: F401
except ImportError as err:
    raise ImportError(
        "AntPinpad needs MuJoCo, an optional extra of internal-rl-gym: pip install "
        "'internal-rl-gym[ant]' (or: pip install 'gymnasium[mujoco]'). GridPinpad and "
        "InternalControl on the grid work without it."
    ) from err
