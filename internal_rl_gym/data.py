"""Demonstration datasets: the (o_1, a_1, ..., a_T, o_{T+1}) sequences the base model learns from.

A dataset is one compressed ``.npz`` file with ragged episodes stored back to back:

| key | shape | meaning |
|---|---|---|
| ``observations`` | (sum(T+1), D) float32, or (sum(T+1), ceil(D/8)) uint8 | o_1..o_{T+1} of every episode; binary observations (the grid) are bit-packed (``np.packbits``) |
| ``actions`` | (sum(T),) int64 or (sum(T), A) float32 | a_1..a_T |
| ``targets`` | (sum(T),) int64 | the colour the expert was heading for at each step (evaluation only) |
| ``subgoals`` | (sum(T),) int64 | the ground-truth abstract subgoal at each step (evaluation only) |
| ``lengths`` | (n_episodes,) int64 | T of each episode |
| ``tasks`` | (n_episodes, max_task_len) int64 | each episode's task, padded with -1 |
| ``metadata`` | 0-d str | JSON: env id and kwargs, expert, epsilon, seed, obs_dim, packing |

Labels (targets, subgoals, tasks) are never inputs to a model; they exist for probes and metrics.
Files are written to a temporary name and renamed, so a crash never leaves a partial dataset.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from internal_rl_gym._io import atomic_write_file

FORMAT_VERSION = 1


@dataclass
class Demonstrations:
    """Ragged expert episodes in flat arrays (see the module docstring for the layout)."""

    observations: np.ndarray
    actions: np.ndarray
    targets: np.ndarray
    subgoals: np.ndarray
    lengths: np.ndarray
    tasks: np.ndarray
    obs_dim: int
    packed: bool
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.lengths = np.asarray(self.lengths, dtype=np.int64)
        self.act_offsets = np.concatenate([[0], np.cumsum(self.lengths)])
        self.obs_offsets = np.concatenate([[0], np.cumsum(self.lengths + 1)])
        if self.act_offsets[-1] != len(self.actions):
            raise ValueError(
                f"Dataset is inconsistent: lengths sum to {self.act_offsets[-1]} steps but there "
                f"are {len(self.actions)} actions."
            )
        if self.obs_offsets[-1] != len(self.observations):
            raise ValueError(
                f"Dataset is inconsistent: expected {self.obs_offsets[-1]} observations "
                f"(T+1 per episode), found {len(self.observations)}."
            )
        width = -(-self.obs_dim // 8) if self.packed else self.obs_dim
        if self.observations.ndim != 2 or self.observations.shape[1] != width:
            what = f"ceil({self.obs_dim}/8) = {width} bytes" if self.packed else f"{width}"
            raise ValueError(
                f"Dataset is inconsistent: obs_dim is {self.obs_dim}, so each observation row "
                f"must hold {what}, but observations have shape {self.observations.shape}. "
                "Pass the obs_dim of the observations you stored."
            )

    @property
    def n_episodes(self) -> int:
        return len(self.lengths)

    @property
    def n_steps(self) -> int:
        return int(self.act_offsets[-1])

    @property
    def discrete(self) -> bool:
        return self.actions.ndim == 1

    def decode_observations(self, rows: np.ndarray) -> np.ndarray:
        """Float32 observations for flat row indices ``rows`` (unpacking bits if needed)."""
        obs = self.observations[rows]
        if self.packed:
            return np.unpackbits(obs, axis=-1, count=self.obs_dim).astype(np.float32)
        return obs.astype(np.float32, copy=False)

    def episode(self, i: int) -> dict[str, np.ndarray]:
        """Episode ``i`` as a dict of arrays: obs (T+1, D), actions (T, ...), targets, subgoals."""
        a0, a1 = self.act_offsets[i], self.act_offsets[i + 1]
        o0, o1 = self.obs_offsets[i], self.obs_offsets[i + 1]
        return {
            "obs": self.decode_observations(np.arange(o0, o1)),
            "actions": self.actions[a0:a1],
            "targets": self.targets[a0:a1],
            "subgoals": self.subgoals[a0:a1],
            "task": self.tasks[i][self.tasks[i] >= 0],
        }

    def batch(
        self, episodes: np.ndarray, max_len: int | None = None, decode: bool = True
    ) -> dict[str, np.ndarray]:
        """Pad episodes to a common length T: obs (B, T+1, D), actions (B, T), mask (B, T), ...

        ``max_len`` crops episodes that are longer (keeping their start). With ``decode=False``
        a bit-packed dataset's obs stay packed, (B, T+1, ceil(D/8)) uint8, 32x smaller than
        float32: a trainer unpacks them where the model runs (``agents.data_sources``).
        """
        episodes = np.asarray(episodes)
        lens = self.lengths[episodes]
        if max_len is not None:
            lens = np.minimum(lens, max_len)
        t = int(lens.max())
        b = len(episodes)
        steps = np.arange(t)
        mask = steps[None, :] < lens[:, None]
        act_rows = self.act_offsets[episodes][:, None] + np.minimum(
            steps[None, :], lens[:, None] - 1
        )
        obs_steps = np.arange(t + 1)
        obs_rows = self.obs_offsets[episodes][:, None] + np.minimum(
            obs_steps[None, :], lens[:, None]
        )
        if decode or not self.packed:
            obs = self.decode_observations(obs_rows.reshape(-1)).reshape(b, t + 1, self.obs_dim)
        else:
            obs = self.observations[obs_rows]
        actions = self.actions[act_rows]
        return {
            "obs": obs,
            "actions": actions,
            "mask": mask,
            "targets": np.where(mask, self.targets[act_rows], -1),
            "subgoals": np.where(mask, self.subgoals[act_rows], -1),
            "lengths": lens,
        }

    def split(self, n_holdout: int) -> tuple[Demonstrations, Demonstrations]:
        """(train, held-out): the last ``n_holdout`` episodes are held out.

        Both parts are views of this dataset's arrays, not copies: copying the train part of
        a 2M-step ant dataset held a second 0.5 GB while the whole file was still loaded.
        """
        if not 0 < n_holdout < self.n_episodes:
            raise ValueError(f"n_holdout must be in 1..{self.n_episodes - 1}, got {n_holdout}.")
        cut = self.n_episodes - n_holdout
        return self.episode_range(0, cut), self.episode_range(cut, self.n_episodes)

    def episode_range(self, start: int, stop: int) -> Demonstrations:
        """Episodes ``start..stop-1`` as views of this dataset's arrays (no copy)."""
        a0, a1 = self.act_offsets[start], self.act_offsets[stop]
        o0, o1 = self.obs_offsets[start], self.obs_offsets[stop]
        return Demonstrations(
            observations=self.observations[o0:o1],
            actions=self.actions[a0:a1],
            targets=self.targets[a0:a1],
            subgoals=self.subgoals[a0:a1],
            lengths=self.lengths[start:stop],
            tasks=self.tasks[start:stop],
            obs_dim=self.obs_dim,
            packed=self.packed,
            metadata=dict(self.metadata),
        )

    def select(self, episodes: np.ndarray) -> Demonstrations:
        """A new dataset made of the given episodes."""
        episodes = np.asarray(episodes)
        act_rows = np.concatenate(
            [np.arange(self.act_offsets[i], self.act_offsets[i + 1]) for i in episodes]
        )
        obs_rows = np.concatenate(
            [np.arange(self.obs_offsets[i], self.obs_offsets[i + 1]) for i in episodes]
        )
        return Demonstrations(
            observations=self.observations[obs_rows],
            actions=self.actions[act_rows],
            targets=self.targets[act_rows],
            subgoals=self.subgoals[act_rows],
            lengths=self.lengths[episodes],
            tasks=self.tasks[episodes],
            obs_dim=self.obs_dim,
            packed=self.packed,
            metadata=dict(self.metadata),
        )

    # --- files -----------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write to ``path`` (``.npz``) atomically."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(path.suffix + ".npz")
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = dict(self.metadata, obs_dim=self.obs_dim, packed=self.packed, format=FORMAT_VERSION)

        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:  # a file object: numpy adds no ".npz" to the temp name
                np.savez_compressed(
                    f,
                    observations=self.observations,
                    actions=self.actions,
                    targets=self.targets,
                    subgoals=self.subgoals,
                    lengths=self.lengths,
                    tasks=self.tasks,
                    metadata=np.array(json.dumps(meta)),
                )

        atomic_write_file(path, write)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Demonstrations:
        """Read a dataset written by :meth:`save` (or ``internal-rl collect``)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"No dataset at {path}. Create one with `internal-rl collect --out {path}`."
            )
        try:
            with np.load(path, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
        except Exception as err:  # noqa: BLE001 - report any unreadable file the same way
            raise ValueError(f"{path} is not a readable demonstration dataset: {err}") from err
        missing = {"observations", "actions", "lengths", "metadata"} - set(arrays)
        if missing:
            raise ValueError(f"{path} is missing {sorted(missing)}; was it written by collect?")
        meta = json.loads(str(arrays["metadata"]))
        n_steps = int(arrays["lengths"].sum())
        empty = np.full(n_steps, -1, dtype=np.int64)
        return cls(
            observations=arrays["observations"],
            actions=arrays["actions"],
            targets=arrays.get("targets", empty),
            subgoals=arrays.get("subgoals", empty),
            lengths=arrays["lengths"],
            tasks=arrays.get("tasks", np.full((len(arrays["lengths"]), 1), -1)),
            obs_dim=int(meta["obs_dim"]),
            packed=bool(meta["packed"]),
            metadata=meta,
        )

    @classmethod
    def concatenate(cls, parts: list[Demonstrations]) -> Demonstrations:
        """Join datasets with the same observation format."""
        if not parts:
            raise ValueError("Nothing to concatenate.")
        width = max(p.tasks.shape[1] for p in parts)
        tasks = np.concatenate(
            [
                np.pad(p.tasks, ((0, 0), (0, width - p.tasks.shape[1])), constant_values=-1)
                for p in parts
            ]
        )
        return cls(
            observations=np.concatenate([p.observations for p in parts]),
            actions=np.concatenate([p.actions for p in parts]),
            targets=np.concatenate([p.targets for p in parts]),
            subgoals=np.concatenate([p.subgoals for p in parts]),
            lengths=np.concatenate([p.lengths for p in parts]),
            tasks=tasks,
            obs_dim=parts[0].obs_dim,
            packed=parts[0].packed,
            metadata=dict(parts[0].metadata),
        )
