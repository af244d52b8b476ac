"""The hindsight posterior: a segment's code is inferred from the segment's end state."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from agents.discover import DiscoverConfig, discover
from internal_rl_gym.hub import load_metacontroller
from internal_rl_gym.models import Metacontroller
from internal_rl_gym.models.metacontroller import segment_end_index
from tests.conftest import build_tiny_grid_models
from tests.test_discover import _config as discover_config


def _meta(d: int = 8, n_z: int = 4, **kw) -> Metacontroller:
    torch.manual_seed(0)
    return Metacontroller(d, 1, n_z=n_z, rank=2, code="categorical", posterior="hindsight", **kw)


def test_segment_end_index_is_the_next_start_or_the_episode_length():
    starts = torch.tensor([[1, 0, 0, 1, 0, 0], [1, 0, 1, 0, 0, 0]], dtype=torch.bool)
    ends = segment_end_index(starts, torch.tensor([6, 4]))
    assert ends.tolist() == [[3, 3, 3, 6, 6, 6], [2, 2, 4, 4, 4, 4]]


def test_a_code_is_held_per_segment_and_read_only_from_its_end_state():
    meta = _meta().eval()
    e = torch.randn(2, 6, 8)
    e_h = torch.randn(2, 7, 8)
    starts = torch.tensor([[1, 0, 0, 1, 0, 0], [1, 0, 0, 0, 0, 0]], dtype=torch.bool)
    out = meta.hindsight_forward(e, e_h, starts, sample=False)
    codes = out.z.argmax(-1)
    assert (codes[:, :3] == codes[:, :1]).all() and (codes[0, 3:] == codes[0, 3]).all()
    assert torch.allclose(out.z.sum(-1), torch.ones(2, 6))  # one-hot
    # changing the stream anywhere but the end states (indices 3, 6 and 6) changes no code
    other = e_h.clone()
    other[:, [0, 1, 2, 4, 5]] = torch.randn(2, 5, 8)
    assert torch.equal(meta.hindsight_forward(e, other, starts, sample=False).mu, out.mu)
    # changing the first segment's end state changes its posterior, not the second segment's
    other = e_h.clone()
    other[0, 3] = torch.randn(8)
    mu = meta.hindsight_forward(e, other, starts, sample=False).mu
    assert not torch.allclose(mu[0, :3], out.mu[0, :3]) and torch.equal(mu[0, 3:], out.mu[0, 3:])


def test_a_sampled_code_is_one_draw_per_segment():
    meta = _meta(n_z=16).train()
    starts = torch.zeros(4, 10, dtype=torch.bool)
    starts[:, [0, 5]] = True
    gen = torch.Generator().manual_seed(0)
    out = meta.hindsight_forward(
        torch.randn(4, 10, 8), torch.randn(4, 11, 8), starts, generator=gen
    )
    codes = out.z.argmax(-1)
    assert (codes[:, :5] == codes[:, :1]).all() and (codes[:, 5:] == codes[:, 5:6]).all()


def test_the_switching_unit_learns_the_given_segments():
    base, _ = build_tiny_grid_models()
    meta = Metacontroller(base.d_model, 1, n_z=4, rank=2, code="categorical", posterior="hindsight")
    torch.manual_seed(0)
    e = torch.randn(8, 12, base.d_model)
    starts = torch.zeros(8, 12, dtype=torch.bool)
    starts[:, [0, 4, 8]] = True
    e[:, [4, 8], :4] += 3.0  # the segment starts are visible in the stream
    e_h, actions = torch.randn(8, 13, base.d_model), torch.randint(0, 4, (8, 12))
    mask = torch.ones(8, 12, dtype=torch.bool)
    opt = torch.optim.Adam(meta.parameters(), lr=1e-2)
    first = None
    for _ in range(150):
        res = meta.hindsight_elbo(base, e, e_h, starts, actions, mask, alpha=0.0)
        first = first if first is not None else res.switch_bce.item()
        opt.zero_grad()
        res.loss.backward()
        opt.step()
    assert res.switch_bce.item() < 0.1 * first
    beta = meta.hindsight_forward(e, e_h, starts, mask, sample=False).beta
    assert torch.equal(beta > 0.5, starts)


def test_a_hindsight_metacontroller_refuses_the_plain_forward_and_needs_categorical_codes():
    with pytest.raises(ValueError, match="hindsight_forward"):
        _meta()(torch.randn(1, 3, 8))
    with pytest.raises(ValueError, match="categorical"):
        Metacontroller(8, 1, posterior="hindsight")
    with pytest.raises(ValueError, match="posterior"):
        Metacontroller(8, 1, code="categorical", posterior="future")
    with pytest.raises(ValueError, match=r"\(B, T \+ 1, d\)"):
        _meta().hindsight_forward(torch.randn(1, 3, 8), torch.randn(1, 3, 8), torch.ones(1, 3))


def test_posterior_survives_save_and_load(tmp_path):
    meta = _meta(hindsight_layer=2)
    meta.save_pretrained(tmp_path / "m")
    loaded = load_metacontroller(tmp_path / "m")
    assert (loaded.posterior, loaded.hindsight_layer) == ("hindsight", 2)
    e_h = torch.randn(1, 5, 8)
    starts = torch.tensor([[1, 0, 1, 0]], dtype=torch.bool)
    a = meta.eval().hindsight_forward(torch.randn(1, 4, 8), e_h, starts, sample=False).mu
    b = loaded.hindsight_forward(torch.randn(1, 4, 8), e_h, starts, sample=False).mu
    assert torch.allclose(a, b)


def _config(tiny_checkpoints, out, **kw) -> DiscoverConfig:
    """`tests/test_discover.py`'s tiny run, with the hindsight posterior."""
    hindsight = dict(
        alpha=[0.0],
        posterior="hindsight",
        code="categorical",
        segments_from=tiny_checkpoints["metacontroller"],
    )
    return discover_config(tiny_checkpoints, out, **{**hindsight, **kw})


@pytest.mark.parametrize("data", ["online", "file"])
def test_discover_trains_a_hindsight_metacontroller(tiny_checkpoints, tmp_path, data):
    kw = {}
    if data == "file":
        from internal_rl_gym.envs.grid_expert import collect_grid_demonstrations

        collect_grid_demonstrations(40, "pretraining", seed=1).save(tmp_path / "clean.npz")
        kw["data"] = str(tmp_path / "clean.npz")
    summary = discover(_config(tiny_checkpoints, tmp_path / "d", **kw))
    run = summary["runs"][0]
    assert 0.0 <= run["segments_from_f1"] <= 1.0 and np.isfinite(run["nll"])
    meta = load_metacontroller(tmp_path / "d" / "alpha_0" / "model")
    assert meta.posterior == "hindsight" and meta.discrete_codes
    report = json.loads((tmp_path / "d" / "alpha_0" / "report.json").read_text())
    assert report["segments_from_f1"] == run["segments_from_f1"]
    assert (tmp_path / "d" / "beta_trace.png").exists()


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(segments_from=""), "needs --segments-from"),
        (dict(code="gaussian"), "needs --code categorical"),
        (dict(symmetry_decode=True), "drop --symmetry-decode"),
        (dict(posterior="sequence"), "only with --posterior hindsight"),
        (dict(posterior="future"), "unknown --posterior"),
        (dict(hindsight_layer=9), "--hindsight-layer must be in"),
    ],
)
def test_discover_says_which_hindsight_option_is_wrong(tiny_checkpoints, tmp_path, change, message):
    with pytest.raises(ValueError, match=message):
        discover(_config(tiny_checkpoints, tmp_path / "d", **change))


def test_a_window_of_two_also_reads_the_step_after_the_end_state_within_the_episode():
    meta = _meta(hindsight_window=2).eval()
    e, e_h = torch.randn(1, 6, 8), torch.randn(1, 7, 8)
    starts = torch.tensor([[1, 0, 0, 1, 0, 0]], dtype=torch.bool)
    mask = torch.tensor([[1, 1, 1, 1, 1, 0]], dtype=torch.bool)  # 5 steps: last observation 5
    out = meta.hindsight_forward(e, e_h, starts, mask, sample=False)
    other = e_h.clone()
    other[0, 4] = torch.randn(8)  # the step after the first segment's end state (3)
    mu = meta.hindsight_forward(e, other, starts, mask, sample=False).mu
    assert not torch.allclose(mu[0, :3], out.mu[0, :3]) and torch.equal(mu[0, 3:], out.mu[0, 3:])
    other = e_h.clone()
    other[0, 6] = torch.randn(8)  # past the episode's last observation: never read
    assert torch.equal(meta.hindsight_forward(e, other, starts, mask, sample=False).mu, out.mu)
