"""The AntPinpad expert's locomotion: a direction-conditioned trot gait, and the first stage of its
tuning (the fastest fall-free straight walk). The grid planner that steers it, the shipped
parameters and the second tuning stage are in :mod:`~internal_rl_gym.envs.ant_expert`.

**Gait.** A central pattern generator with its own clock ``phase`` (frequency ``freq`` Hz) drives
a trot: the diagonal leg pairs (1, 3) and (2, 4) are half a period apart. The desired direction,
rotated into the torso frame, is projected on each leg's tangential direction; the hip swings
with amplitude ``hip_amp`` times that projection, the ankle oscillates around ``ankle_mid`` with
amplitude ``ankle_amp`` and a hip-ankle phase lag ``phase_lag`` (which sets when the foot is down
during the sweep). Joint targets are tracked by a PD law (``kp``, ``kd``) whose output, clipped to
[-1, 1], is the action: torques, as the env expects. Because of the clock, the action is not a
function of the current observation alone; a sequence model imitates it from the history.
"""

from __future__ import annotations

# isort: off
import internal_rl_gym.envs._require_mujoco  # noqa: F401  (a clear error without MuJoCo)
# isort: on

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import mujoco
import numpy as np

from internal_rl_gym.envs.ant_pinpad import AntPinpadEnv

__all__ = ["WALK_SEARCH_RANGES", "GaitParams", "gait_action", "search_walking_gait", "walk_speed"]

# Joint layout of Gymnasium's ant.xml. Legs 1..4 point at 45, 135, 225 and 315 degrees.
_LEG_ANGLES = np.deg2rad([45.0, 135.0, 225.0, 315.0])
_TANGENTS = np.stack([-np.sin(_LEG_ANGLES), np.cos(_LEG_ANGLES)], axis=1)  # (4, 2) hip sweep dir.
_ANKLE_DOWN_SIGN = np.array([1.0, -1.0, -1.0, 1.0])  # sign of the ankle angle that pushes down
_HIP_QPOS = np.array([7, 9, 11, 13])  # qpos index of hip_1..hip_4 (ankle = +1)
_HIP_QVEL = _HIP_QPOS - 1
_HIP_ACT = np.array([2, 4, 6, 0])  # actuator index of hip_1..hip_4 (ankle = +1)
_PAIR_PHASE = np.array([0.0, np.pi, 0.0, np.pi])  # trot: diagonal pairs (1, 3) and (2, 4)
_ANKLE_RANGE = (np.deg2rad(30.0) + 0.005, np.deg2rad(70.0) - 0.005)


@dataclass(frozen=True)
class GaitParams:
    """The trot gait's parameters (angles in radians, frequency in Hz, gains per radian)."""

    freq: float = 3.217
    hip_amp: float = 0.533
    ankle_mid: float = 0.65
    ankle_amp: float = 0.132
    phase_lag: float = 5.325
    kp: float = 1.08
    kd: float = 0.107

    def as_array(self) -> np.ndarray:
        return np.array(list(asdict(self).values()), dtype=np.float64)


def gait_action(
    qpos: np.ndarray, qvel: np.ndarray, phase: float, direction: np.ndarray, p: GaitParams
) -> np.ndarray:
    """Torques (8,) in [-1, 1] that move the ant along the world-frame unit ``direction``."""
    w, qx, qy, qz = qpos[3:7]
    yaw = np.arctan2(2.0 * (w * qz + qx * qy), 1.0 - 2.0 * (qy * qy + qz * qz))
    c, s = np.cos(yaw), np.sin(yaw)
    d = (c * direction[0] + s * direction[1], -s * direction[0] + c * direction[1])
    proj = _TANGENTS @ d
    proj /= max(np.abs(proj).max(), 1e-6)  # same sweep amplitude in every direction
    hip = p.hip_amp * proj * np.cos(phase + _PAIR_PHASE)
    down = p.ankle_mid + p.ankle_amp * np.sin(phase + _PAIR_PHASE + p.phase_lag)
    ankle = _ANKLE_DOWN_SIGN * np.clip(down, *_ANKLE_RANGE)
    u = np.empty(8)
    u[_HIP_ACT] = p.kp * (hip - qpos[_HIP_QPOS]) - p.kd * qvel[_HIP_QVEL]
    u[_HIP_ACT + 1] = p.kp * (ankle - qpos[_HIP_QPOS + 1]) - p.kd * qvel[_HIP_QVEL + 1]
    return np.clip(u, -1.0, 1.0)


#: Stage 1's search space (uniform ranges; angles in rad, frequency in Hz). The ankle range keeps
#: the foot's down-angle inside the joint's limits (30-70 deg = 0.52-1.22 rad) for most of a cycle.
WALK_SEARCH_RANGES: dict[str, tuple[float, float]] = {
    "freq": (1.0, 4.0),
    "hip_amp": (0.1, 0.6),
    "ankle_mid": (0.55, 1.0),
    "ankle_amp": (0.0, 0.35),
    "phase_lag": (0.0, 2.0 * np.pi),
    "kp": (1.0, 8.0),
    "kd": (0.0, 0.4),
}


def walk_speed(
    env: AntPinpadEnv,
    gait: GaitParams,
    direction: np.ndarray,
    seed: int,
    seconds: float = 5.0,
    min_up: float = 0.5,
) -> float | None:
    """Mean speed (m/s) along the unit ``direction`` of a straight walk, or ``None`` if it falls.

    The env is reset with ``seed`` (random start pose and yaw) and then simulated directly
    (``frame_skip`` MuJoCo steps per action, as ``env.step``) with the gait's action for a fixed
    world ``direction``: the pinpad's rules (colours, wall, grid edge) do not apply, the floor is
    flat everywhere. A fall is the torso's height leaving ``env.healthy_z_range``, its up axis
    tilting below ``min_up`` (cosine with the vertical) or a non-finite state.
    """
    env.reset(seed=seed)
    model, data = env.model, env.data
    direction = np.asarray(direction, dtype=np.float64)
    start = data.qpos[:2].copy()
    lo, hi = env.healthy_z_range
    dphase = 2.0 * np.pi * gait.freq * env.dt
    n_steps = max(1, int(round(seconds / env.dt)))
    phase = 0.0
    for _ in range(n_steps):
        data.ctrl[:] = gait_action(data.qpos, data.qvel, phase, direction, gait)
        mujoco.mj_step(model, data, nstep=env.frame_skip)
        phase = (phase + dphase) % (2.0 * np.pi)
        qx, qy = data.qpos[4], data.qpos[5]
        up = 1.0 - 2.0 * (qx * qx + qy * qy)  # z component of the torso's up axis
        if not (lo <= data.qpos[2] <= hi) or up < min_up or not np.isfinite(data.qvel).all():
            return None
    return float((data.qpos[:2] - start) @ direction / (n_steps * env.dt))


def search_walking_gait(
    n_candidates: int = 750,
    seed: int = 0,
    n_directions: int = 6,
    seconds_per_walk: float = 5.0,
    ranges: Mapping[str, tuple[float, float]] | None = None,
    init: GaitParams | None = None,
    decimals: int | None = 3,
    env_kwargs: dict[str, Any] | None = None,
    history: list[dict[str, Any]] | None = None,
    verbose: bool = False,
) -> tuple[GaitParams, float]:
    """Stage 1 of the expert's tuning: random search for the fastest fall-free straight walk.

    ``n_directions`` walks (directions uniform on the circle, each from its own random start pose,
    see :func:`walk_speed`) are drawn once from ``seed`` and shared by all candidates. Each
    candidate draws every parameter uniformly from ``ranges`` (default
    :data:`WALK_SEARCH_RANGES`; a missing key keeps that range), rounded to ``decimals``; its score
    is the mean speed along the commanded directions, and a candidate that falls in any walk is
    rejected. ``init`` (if given) is scored first as candidate 0. Deterministic under ``seed``.
    ``history`` (a list) receives one ``{"gait", "speed"}`` record per candidate (speed ``None``
    for a fall). Returns the best gait and its speed (m/s); raises if every candidate fell.
    """
    if n_candidates < 1 and init is None:
        raise ValueError(f"n_candidates must be >= 1, got {n_candidates}.")
    if n_directions < 1:
        raise ValueError(f"n_directions must be >= 1, got {n_directions}.")
    rng_ranges = dict(WALK_SEARCH_RANGES)
    for k, v in (ranges or {}).items():
        if k not in rng_ranges:
            raise ValueError(f"Unknown gait parameter {k!r}; expected one of {list(rng_ranges)}.")
        rng_ranges[k] = (float(v[0]), float(v[1]))
    names = [f.name for f in fields(GaitParams)]
    lows = np.array([rng_ranges[k][0] for k in names])
    highs = np.array([rng_ranges[k][1] for k in names])
    rng = np.random.default_rng(seed)
    angles = rng.uniform(0.0, 2.0 * np.pi, n_directions)
    directions = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    walk_seeds = [int(x) for x in rng.integers(2**31 - 1, size=n_directions)]
    candidates = [init] if init is not None else []
    for _ in range(n_candidates):
        v = rng.uniform(lows, highs)
        if decimals is not None:
            v = np.round(v, decimals)
        candidates.append(GaitParams(*(float(x) for x in v)))
    env = AntPinpadEnv(task="post", **(env_kwargs or {}))
    best: tuple[GaitParams | None, float] = (None, -np.inf)
    for i, cand in enumerate(candidates):
        speeds = []
        for d, s in zip(directions, walk_seeds):
            v = walk_speed(env, cand, d, s, seconds_per_walk)
            if v is None:
                break
            speeds.append(v)
        speed = float(np.mean(speeds)) if len(speeds) == n_directions else None
        if history is not None:
            history.append({"gait": asdict(cand), "speed": speed})
        if speed is not None and speed > best[1]:
            best = (cand, speed)
            if verbose:
                print(f"walk candidate {i}: {speed:.3f} m/s {cand}", flush=True)
    env.close()
    if best[0] is None:
        raise RuntimeError(f"All {len(candidates)} candidates fell; widen or move the ranges.")
    return best[0], best[1]
