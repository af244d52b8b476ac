"""Where training batches come from: a dataset file, or fresh grid expert episodes generated on
the fly (the paper's 256k x 1024 grid sequences suggest fresh sampling from the cheap expert)."""

from __future__ import annotations

import signal
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from internal_rl_gym.data import Demonstrations
from internal_rl_gym.envs.grid_expert import collect_grid_demonstrations


class EpisodePool:
    """Serves length-bucketed batches of episodes from a :class:`Demonstrations` pool.

    Batches are formed from episodes of similar length (less padding, about 1.7x faster on the
    grid) and served in random order. With ``refresh`` set, the pool is regenerated every time it
    has been served once (online data); otherwise it is reshuffled.
    """

    def __init__(
        self,
        data: Demonstrations | None,
        batch_size: int,
        seed: int,
        refresh=None,
        max_len: int | None = None,
    ) -> None:
        if data is None and refresh is None:
            raise ValueError("EpisodePool needs a dataset or a refresh function.")
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)
        self.refresh = refresh
        self.max_len = max_len
        self.generation = 0
        self.data = data if data is not None else refresh(self.generation)
        self._queue: list[np.ndarray] = []
        self._passes = 0

    def _plan(self) -> None:
        n = self.data.n_episodes
        order = self.rng.permutation(n)
        chunk = self.batch_size * 32
        batches = []
        for s in range(0, n, chunk):
            idx = order[s : s + chunk]
            idx = idx[np.argsort(self.data.lengths[idx], kind="stable")]
            batches += [idx[i : i + self.batch_size] for i in range(0, len(idx), self.batch_size)]
        batches = [b for b in batches if len(b) == self.batch_size] or batches
        self._queue = [batches[i] for i in self.rng.permutation(len(batches))]

    def next_batch(self, decode: bool = True) -> dict[str, np.ndarray]:
        """The next batch (:meth:`Demonstrations.batch`); ``decode=False`` leaves bit-packed
        observations packed, for :func:`observations_to_device`."""
        if not self._queue:
            if self.refresh is not None and self._passes > 0:
                self.generation += 1
                self.data = self.refresh(self.generation)
            self._passes += 1
            self._plan()
        return self.data.batch(self._queue.pop(), max_len=self.max_len, decode=decode)

    def close(self) -> None:
        """Stop background generation (online pools with worker processes)."""
        close = getattr(self.refresh, "close", None)
        if close is not None:
            close()


#: Row ``b`` holds the 8 bits of byte ``b`` as float32, most significant first (``np.packbits``
#: order): unpacking is then one embedding lookup, several times faster than shifts and masks.
_BYTE_BITS = torch.from_numpy(
    np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).astype(np.float32)
)
_byte_bits_on: dict[torch.device, torch.Tensor] = {}


def observations_to_device(obs: np.ndarray, obs_dim: int, device) -> torch.Tensor:
    """Float32 observations (..., obs_dim) on ``device`` from a batch's obs, packed or not.

    Bit-packed obs (uint8, ``next_batch(decode=False)``) travel packed and are unpacked there:
    a grid batch of 1024 episodes is ~90 MB as float32 and ~3 MB packed, so on a GPU the
    copy and the host-side unpacking, not the model, would otherwise bound a training step.
    """
    x = torch.as_tensor(obs).to(device, non_blocking=True)
    if x.dtype != torch.uint8:
        return x.float()
    if x.shape[-1] != (obs_dim + 7) // 8:
        raise ValueError(
            f"packed observations have {x.shape[-1]} bytes per step, but obs_dim={obs_dim} "
            f"needs {(obs_dim + 7) // 8}"
        )
    table = _byte_bits_on.setdefault(x.device, _BYTE_BITS.to(x.device))
    bits = torch.nn.functional.embedding(x.long(), table)
    return bits.flatten(-2)[..., :obs_dim]


#: Episodes per generation task when online data is made by worker processes; fixed so that the
#: data stream depends on the seed, not on the number of workers.
ONLINE_CHUNK = 2048


def _chunk_seed(seed: int, generation: int, chunk: int) -> int:
    return int(
        np.random.SeedSequence([seed, generation, chunk]).generate_state(1, np.uint64)[0] >> 1
    )


class _ParallelGridRefresh:
    """Pools of fresh expert episodes made by ``workers`` processes, one generation ahead: while
    training reads pool ``g``, the workers already generate ``g + 1``."""

    def __init__(self, task: str, pool_size: int, seed: int, epsilon: float, workers: int) -> None:
        import concurrent.futures
        import multiprocessing

        self.task, self.pool_size, self.seed, self.epsilon = task, pool_size, seed, epsilon
        # spawn, not fork: the parent has torch's thread pools running
        ctx = multiprocessing.get_context("spawn")
        # the workers ignore Ctrl-C (the terminal sends it to the whole process group): the
        # training loop handles it, finishing and checkpointing its step, then shuts them down
        self.executor = concurrent.futures.ProcessPoolExecutor(
            workers,
            mp_context=ctx,
            initializer=signal.signal,
            initargs=(signal.SIGINT, signal.SIG_IGN),
        )
        self.pending: dict[int, list] = {}

    def _submit(self, generation: int) -> None:
        sizes = [
            min(ONLINE_CHUNK, self.pool_size - start)
            for start in range(0, self.pool_size, ONLINE_CHUNK)
        ]
        self.pending[generation] = [
            # submitted by reference: a worker needs only the numpy expert
            self.executor.submit(
                collect_grid_demonstrations,
                n,
                self.task,
                epsilon=self.epsilon,
                seed=_chunk_seed(self.seed, generation, chunk),
            )
            for chunk, n in enumerate(sizes)
        ]

    def __call__(self, generation: int) -> Demonstrations:
        if generation not in self.pending:
            self._submit(generation)
        parts = [f.result() for f in self.pending.pop(generation)]
        self._submit(generation + 1)
        return Demonstrations.concatenate(parts)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


def online_grid_pool(
    task: str,
    pool_size: int,
    batch_size: int,
    seed: int,
    epsilon: float = 0.0,
    workers: int = 0,
) -> EpisodePool:
    """Fresh GridPinpad expert episodes, regenerated each time the pool has been used once.

    ``workers=0`` generates in this process, when a pool runs out. ``workers >= 1`` generates in
    that many worker processes, in chunks of :data:`ONLINE_CHUNK` episodes, one pool ahead of
    training (what a GPU needs at large batch sizes: one core makes ~67k expert steps/s, a batch
    of 1024 episodes is ~32k steps). The two modes give different (equally valid) streams; for
    ``workers >= 1`` the stream depends on ``seed`` only, not on the number of workers.
    """
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    if workers:
        refresh = _ParallelGridRefresh(task, pool_size, seed, epsilon, workers)
    else:

        def refresh(generation: int) -> Demonstrations:
            return collect_grid_demonstrations(
                pool_size, task, epsilon=epsilon, seed=seed * 1_000_003 + generation
            )

    return EpisodePool(None, batch_size, seed, refresh=refresh)


def residual_stream_batches(
    base,
    layer: int,
    episode_batches: Iterator[dict[str, np.ndarray]],
    expert_probs: bool = False,
    symmetry_seed: int | None = None,
    full_streams: Sequence[int] = (),
) -> Iterator[dict[str, torch.Tensor]]:
    """Episode batches (:meth:`EpisodePool.next_batch`) run through the frozen base model up to
    ``layer``: ``e`` (B, T, d) float32 residual stream, ``actions``, ``mask`` and the ground-truth
    ``subgoals`` (B, T), all on the base model's device. With ``full_streams`` also
    ``streams[l]`` (B, T + 1, d) for each listed layer: the stream of every observation
    including the one after the last action (what a hindsight posterior reads). With ``expert_probs`` also the grid
    expert's action distribution ``expert_probs`` (B, T, 4): uniform over its shortest-path
    actions towards the current target, the distribution each demonstrated action was drawn from.

    With ``symmetry_seed`` (grid only) each episode is also seen in a random other frame (one
    of the grid's 8 rotations and mirror images, :data:`grid_core.SYMMETRIES`, drawn from that
    seed): ``e_sym``, ``actions_sym`` and, with ``expert_probs``, ``expert_probs_sym``.
    """
    rng = np.random.default_rng(symmetry_seed)
    for b in episode_batches:
        streams: dict[int, torch.Tensor] = {}
        if full_streams:
            obs_all = observations_to_device(b["obs"], base.obs_dim, base.device)
            streams = stream_layers(base, obs_all, sorted({*full_streams, layer}))
            obs = obs_all[:, :-1]
            e = streams[layer][:, :-1]  # the model is causal: the last observation changes nothing
        else:
            obs = observations_to_device(b["obs"][:, :-1], base.obs_dim, base.device)
            with torch.no_grad():  # the layers below ``layer`` do not depend on what trains there
                e = base.run_layers(base.embed(obs), 0, layer).float()
        out = {
            "e": e,
            "actions": torch.as_tensor(b["actions"], device=base.device),
            "mask": torch.as_tensor(b["mask"], device=base.device),
            "subgoals": torch.as_tensor(b["subgoals"], device=base.device),
        }
        if expert_probs:
            from internal_rl_gym.envs.grid_expert import optimal_action_mask

            optimal = optimal_action_mask(b).astype(np.float32)
            probs = optimal / np.maximum(optimal.sum(-1, keepdims=True), 1.0)
            out["expert_probs"] = torch.as_tensor(probs, device=base.device)
        if symmetry_seed is not None:
            out.update(_in_other_frames(base, layer, obs, out, rng))
        if full_streams:
            out["streams"] = {k: streams[k] for k in full_streams}
        yield out


@torch.no_grad()
def stream_layers(base, obs: torch.Tensor, layers: Sequence[int]) -> dict[int, torch.Tensor]:
    """The float32 residual stream at each of ``layers`` (sorted, ascending) for observations
    (B, T, obs_dim), from one pass of the frozen base model."""
    out, e, at = {}, base.embed(obs), 0
    for k in layers:
        e = base.run_layers(e, at, k)
        out[k], at = e.float(), k
    return out


def _in_other_frames(base, layer: int, obs: torch.Tensor, batch: dict, rng) -> dict:
    """The batch's episodes each mirrored/turned by a random grid symmetry other than the
    identity: their residual stream at ``layer`` and their actions in that frame."""
    from internal_rl_gym.envs import grid_core

    size = base.config.grid_size
    which = rng.integers(1, len(grid_core.SYMMETRIES), size=obs.shape[0])
    obs_sym = obs.clone()
    perm = np.zeros((obs.shape[0], grid_core.N_ACTIONS), dtype=np.int64)
    for s in np.unique(which):
        turns, mirror = grid_core.SYMMETRIES[s]
        rows = torch.as_tensor(np.flatnonzero(which == s), device=obs.device)
        obs_sym[rows] = grid_core.transform_grid_observations(obs[rows], turns, mirror, size)
        perm[which == s] = grid_core.symmetry_action_permutation(turns, mirror)
    perm_t = torch.as_tensor(perm, device=obs.device)
    with torch.no_grad():
        e_sym = base.run_layers(base.embed(obs_sym), 0, layer).float()
    actions = batch["actions"]
    out = {
        "e_sym": e_sym,
        "actions_sym": perm_t.gather(1, actions.clamp(min=0)).where(actions >= 0, actions),
    }
    if "expert_probs" in batch:  # probs_sym[..., perm[a]] = probs[..., a]
        p = batch["expert_probs"]
        index = perm_t[:, None, :].expand_as(p)
        out["expert_probs_sym"] = torch.zeros_like(p).scatter(-1, index, p)
    return out


def fresh_activation_batches(
    base,
    layer: int,
    task: str,
    pool_size: int,
    batch_size: int,
    seed: int,
    expert_probs: bool = False,
    workers: int = 0,
    symmetry_seed: int | None = None,
    full_streams: Sequence[int] = (),
) -> Iterator[dict[str, torch.Tensor]]:
    """Endless :func:`residual_stream_batches` of fresh expert episodes of ``task``.

    Whatever trains at ``layer`` (ground-truth controllers, the metacontroller) reads a residual
    stream that encodes the whole layout, so it memorises a fixed set of a few thousand episodes;
    fresh episodes every batch prevent that. ``workers``: generate them in that many processes
    (:func:`online_grid_pool`; on a GPU the generation, not the model, is otherwise the bound).
    """
    if workers:  # enough chunks per pool to keep every worker busy
        pool_size = max(pool_size, workers * ONLINE_CHUNK)
    # packed observations travel packed to a GPU; the expert's targets need them decoded
    decode = base.device.type == "cpu" or expert_probs

    def batches() -> Iterator[dict[str, torch.Tensor]]:
        # the pool (and its worker processes) starts with the first batch
        pool = online_grid_pool(task, pool_size, batch_size, seed, workers=workers)
        try:
            yield from residual_stream_batches(
                base,
                layer,
                iter(lambda: pool.next_batch(decode=decode), None),
                expert_probs,
                symmetry_seed,
                full_streams,
            )
        finally:  # the generator is closed or collected: stop the worker processes
            pool.close()

    return batches()
