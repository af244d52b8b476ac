"""The shared per-call stepping context (issue 32's fast path) computes exactly what each
attention layer computed on its own."""

from __future__ import annotations

import torch

from internal_rl_gym.models import BaseModel
from tests.test_base_models import OBS_DIM, tiny


def _run(model, rows_per_step: list[list[int]]) -> list[torch.Tensor]:
    """Step a batch of 4 rows (all rows, then subsets) and return every output."""
    torch.manual_seed(1)
    state = model.init_state(4)
    outs = []
    with torch.no_grad():
        for rows in rows_per_step:
            obs = torch.randn(len(rows), OBS_DIM)
            e = model.embed(obs)
            if len(rows) == 4:
                outs.append(model.step_layers(e, state, 0, model.n_layers))
            else:
                r = torch.tensor(rows)
                outs.append(model.step_layers(e, state, 0, 1, rows=r))
                outs.append(model.step_layers(outs[-1], state, 1, model.n_layers, rows=r))
        head, _ = model.step(torch.randn(4, OBS_DIM), state)
        outs.append(head.action_logits)
    return [o.detach() for o in outs] + [k.detach() for k in state.keys]


def test_shared_context_matches_each_layer_computing_its_own(monkeypatch):
    torch.manual_seed(0)
    model = tiny("transformer")
    schedule = [[0, 1, 2, 3], [1, 3], [0, 1, 2, 3], [2], [0, 3], [0, 1, 2, 3]]
    fast = _run(model, schedule)
    # without the context, every layer computes its positions, slots and buckets itself
    monkeypatch.setattr(
        BaseModel, "_step_contexts", lambda self, state, start, pos, *a, **k: [None] * len(pos)
    )
    slow = _run(model, schedule)
    assert len(fast) == len(slow)
    for a, b in zip(fast, slow):
        assert torch.equal(a, b)


def test_engine_history_step_matches_the_metacontrollers_gru():
    from internal_rl_gym.internal_control import InternalControlEnv

    env = InternalControlEnv()  # the embedded defaults
    core = env._core
    torch.manual_seed(0)
    with torch.inference_mode():
        for n in (1, 5, 64):
            e, h = 3 * torch.randn(n, core.base.d_model), torch.randn(n, core.h.shape[1])
            assert torch.equal(core._update_history(e, h), core.meta.update_history(e, h))


class _SpyMeta:
    """A metacontroller stand-in: its ``history`` and an ``update_history`` that records its
    calls and returns its own (recognisable) values."""

    def __init__(self, history):
        if history is not None:
            self.history = history
        self.calls = 0

    def update_history(self, e, h):
        self.calls += 1
        return h + 2.0 * e[:, : h.shape[1]]


def test_engine_history_step_takes_the_gru_cell_only_for_a_plain_one_layer_gru():
    """The fast path (``torch.gru_cell``) for a one-layer, biased, unidirectional GRU in the
    inputs' dtype; anything else goes through the metacontroller's own ``update_history``.
    Mutants (core ``_update_history`` 1-19, 32-35): the history looked up under another name,
    on None or without a default (the fast path never taken, or AttributeError); one of the
    conditions inverted, moved or joined with ``or`` (the fast path taken for two layers, two
    directions, no bias, float64 inputs, or not for the plain GRU); ``update_history`` called
    without ``e`` or ``h``."""
    import gymnasium as gym

    from internal_rl_gym.internal_control import InternalControlWrapper
    from tests.conftest import build_tiny_grid_models

    core = InternalControlWrapper(gym.make("GridPinpad-v0"), *build_tiny_grid_models())._core
    torch.manual_seed(0)
    e, h = torch.randn(3, 16), torch.randn(3, 8)
    plain = torch.nn.GRU(16, 8, batch_first=True)
    core.meta = _SpyMeta(plain)
    with torch.inference_mode():
        fast = core._update_history(e, h)
        _, want = plain(e[:, None], h[None].contiguous())
    assert core.meta.calls == 0
    torch.testing.assert_close(fast, want[0])
    others = [
        (torch.nn.GRU(16, 8, num_layers=2, batch_first=True), e, h),
        (torch.nn.GRU(16, 8, bidirectional=True, batch_first=True), e, h),
        (torch.nn.GRU(16, 8, bias=False, batch_first=True), e, h),
        (plain, e.double(), h.double()),
        (torch.nn.LSTM(16, 8, batch_first=True), e, h),
        (None, e, h),  # no `history` attribute at all
    ]
    for history, e_in, h_in in others:
        core.meta = _SpyMeta(history)
        with torch.inference_mode():
            out = core._update_history(e_in, h_in)
        assert core.meta.calls == 1, history
        torch.testing.assert_close(out, h_in + 2.0 * e_in[:, :8])
