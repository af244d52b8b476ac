"""The metacontroller: temporal integration, where it writes, its causal mode, and discovery."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from internal_rl_gym.models import Metacontroller
from tests.conftest import build_tiny_grid_models


def meta_with_gate(bias: float, seed: int = 0, gate_temperature: float = 1.0) -> Metacontroller:
    torch.manual_seed(seed)
    meta = Metacontroller(
        d_model=16, layer=1, n_z=4, n_h=8, n_s=8, rank=4, gate_temperature=gate_temperature
    )
    with torch.no_grad():
        meta.switch_net[-1].bias.fill_(bias)
        meta.switch_net[-1].weight.zero_()
    return meta.eval()


def test_temporal_integration_holds_and_replaces():
    meta = meta_with_gate(0.0)
    e = torch.randn(2, 5, 16)
    z_tilde = torch.randn(2, 5, 4)
    hold = meta.forward_with_codes(e, z_tilde, torch.tensor([[1.0, 0, 0, 0, 0]] * 2))
    assert torch.allclose(hold.z, z_tilde[:, :1].expand(-1, 5, -1))
    replace = meta.forward_with_codes(e, z_tilde, torch.ones(2, 5))
    assert torch.allclose(replace.z, z_tilde)
    half = meta.forward_with_codes(e, z_tilde, torch.tensor([[1.0, 0.5, 0, 0, 0]] * 2))
    assert torch.allclose(half.z[:, 1], 0.5 * z_tilde[:, 1] + 0.5 * z_tilde[:, 0])


@pytest.mark.parametrize("bias, switches", [(30.0, True), (-30.0, False)])
def test_learned_gate_drives_integration(bias, switches):
    meta = meta_with_gate(bias)
    out = meta(torch.randn(3, 6, 16), sample=False)
    assert torch.all(out.beta[:, 0] == 1.0)  # the first step always takes a new code
    if switches:
        assert torch.allclose(out.z, out.mu, atol=1e-5)
    else:
        assert torch.allclose(out.z, out.mu[:, :1].expand_as(out.mu), atol=1e-5)


def test_gumbel_gate_is_noisy_in_training_and_exact_without_sampling():
    meta = meta_with_gate(0.0, gate_temperature=0.25)  # logit 0: σ = 0.5 without noise
    e = torch.randn(64, 6, 16)
    plain = meta(e, sample=False, gumbel_gate=True).beta[:, 1:]
    assert torch.allclose(plain, torch.full_like(plain, 0.5))
    gen = torch.Generator().manual_seed(0)
    noisy = meta(e, generator=gen, gumbel_gate=True).beta[:, 1:]
    assert noisy.std() > 0.3  # a coin flip, mostly near 0 or 1
    assert ((noisy < 0.1) | (noisy > 0.9)).float().mean() > 0.6  # P = 2σ(-0.55) = 0.73
    assert abs(noisy.mean().item() - 0.5) < 0.1  # unbiased: P(open) = σ(logit)
    again = meta(e, generator=torch.Generator().manual_seed(0), gumbel_gate=True).beta
    assert torch.equal(again[:, 1:], noisy)


def test_gate_temperature_sharpens_the_noise_free_gate_everywhere():
    meta = meta_with_gate(1.0, gate_temperature=0.5)
    e = torch.randn(2, 4, 16)
    expected = torch.sigmoid(torch.tensor(2.0))
    assert torch.allclose(meta(e, sample=False).beta[:, 1:], expected)
    h, z = meta.initial_state(2)
    assert torch.allclose(meta.switch(e[:, 1], h, z), expected)  # the causal mode agrees
    with pytest.raises(ValueError, match="gate_temperature"):
        Metacontroller(d_model=16, layer=1, gate_temperature=0.0)


def test_controller_changes_nothing_below_its_layer():
    base, meta = build_tiny_grid_models()
    obs = torch.zeros(2, 7, 637)
    obs[..., 12::13] = torch.rand(2, 7, 49) > 0.9
    z = torch.randn(2, 7, 4)
    plain = base(obs, return_residuals=True)
    controlled = base(
        obs, intervention=lambda e: meta.control(e, z), layer=meta.layer, return_residuals=True
    )
    for l in range(meta.layer + 1):
        assert torch.equal(plain.residuals[l], controlled.residuals[l])
    assert not torch.allclose(plain.action_logits, controlled.action_logits)


def test_causal_mode_reproduces_the_training_forward():
    torch.manual_seed(1)
    meta = Metacontroller(d_model=16, layer=1, n_z=4, n_h=8, n_s=8, rank=4).eval()
    with torch.no_grad():
        meta.switch_net[-1].bias.fill_(0.5)
    e = torch.randn(3, 9, 16)
    with torch.no_grad():
        out = meta(e, sample=False)
        s = meta.embed_sequence(e)
        h, z = meta.initial_state(3)
        for t in range(9):
            mu, _ = meta.encode(e[:, t], h, s)
            beta = meta.switch(e[:, t], h, z) if t else torch.ones(3)
            z = beta[:, None] * mu + (1 - beta[:, None]) * z
            torch.testing.assert_close(beta, out.beta[:, t], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(z, out.z[:, t], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(
                meta.control(e[:, t], z), out.e_hat[:, t], atol=1e-5, rtol=1e-5
            )
            h = meta.update_history(e[:, t], h)
        trace = meta.switching_trace(e, out.z)
    torch.testing.assert_close(trace, out.beta, atol=1e-5, rtol=1e-5)


def test_expert_targets_give_the_expected_nll():
    """Cross-entropy to a distribution p = the NLL of each action a, averaged with weights p(a)."""
    base, _ = build_tiny_grid_models(seed=3)
    meta = Metacontroller(d_model=16, layer=1, n_z=4, n_h=8, n_s=8, rank=4)
    e = torch.randn(2, 5, 16)
    mask = torch.ones(2, 5, dtype=torch.bool)
    p = torch.tensor([0.1, 0.2, 0.3, 0.4])

    def nll(**kw):  # the same sampled codes on every call
        gen = torch.Generator().manual_seed(0)
        return meta.elbo(base, e, mask=mask, alpha=0.0, generator=gen, **kw).action_nll

    per_action = torch.stack([nll(actions=torch.full((2, 5), a)) for a in range(4)])
    soft = nll(actions=None, target_probs=p.expand(2, 5, 4))
    torch.testing.assert_close(soft, (p * per_action).sum())


def test_full_rank_controller():
    meta = Metacontroller(d_model=8, layer=1, n_z=2, n_h=4, n_s=4, rank=0)
    u = meta.decode(torch.randn(3, 2))
    assert u.shape == (3, 8, 8)
    e = torch.randn(3, 8)
    z = torch.randn(3, 2)
    torch.testing.assert_close(
        meta.control(e, z), e + torch.einsum("bij,bj->bi", meta.decode(z), e)
    )
    torch.testing.assert_close(meta.decode(z, gain=2.5), 2.5 * meta.decode(z))


def test_gain_scales_the_low_rank_push():
    meta = Metacontroller(d_model=8, layer=1, n_z=2, n_h=4, n_s=4, rank=3)
    e, z = torch.randn(3, 8), torch.randn(3, 2)
    push = meta.control(e, z) - e
    scaled = meta.apply_controller(e, meta.decode(z, gain=0.5)) - e
    torch.testing.assert_close(scaled, 0.5 * push)


def test_tiny_discovery_run_lowers_the_loss():
    from agents.discover import cache_activations, evaluate_metacontroller
    from internal_rl_gym.envs.grid_expert import collect_grid_demonstrations

    base, _ = build_tiny_grid_models(seed=3)
    data = collect_grid_demonstrations(48, "pretraining", seed=0)
    cached = cache_activations(base, data, layer=1)
    torch.manual_seed(0)
    meta = Metacontroller(d_model=16, layer=1, n_z=4, n_h=8, n_s=8, rank=4)
    opt = torch.optim.AdamW(meta.parameters(), lr=3e-3)
    idx = np.arange(48)
    e, act, mask = cached.batch(idx)
    losses = []
    for _ in range(60):
        res = meta.elbo(base, e, act, mask, alpha=0.1)
        opt.zero_grad()
        res.loss.backward()
        opt.step()
        losses.append(res.loss.item())
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.05
    report = evaluate_metacontroller(meta, base, cached, alpha=0.1)
    assert 0.0 <= report["switch_f1"] <= 1.0
    assert 0 <= report["z_active_dims"] <= 4 and 0.0 <= report["z_subgoal_probe"] <= 1.0
    assert report["true_subgoals_per_episode"] == pytest.approx(3.0)


def test_switch_alignment_metric():
    from agents.discover import match_switches, true_boundaries

    assert true_boundaries(np.array([0, 0, 0, 2, 2, 1, 1])) == [3, 5]
    assert match_switches([3, 5], [3, 5], 1) == (2, 2, 2)
    assert match_switches([4, 9], [3, 5], 1) == (1, 2, 2)
    assert match_switches([2, 3, 4], [3], 1) == (1, 3, 1)  # one true boundary, matched once


def test_abstract_action_check_reports_segments():
    from agents.discover import abstract_action_check

    base, meta = build_tiny_grid_models(switch_bias=-1.0)
    report = abstract_action_check(base, meta, n_episodes=4, n_envs=2)
    assert report["segments"] > 0
    assert 0.0 <= report["pair_fraction"] <= report["any_visit_fraction"] <= 1.0


@pytest.mark.parametrize("bad_action", [-1, 4])
def test_elbo_rejects_actions_outside_the_base_models_action_space(bad_action):
    base, meta = build_tiny_grid_models(seed=1)
    e = torch.randn(2, 5, base.d_model)
    actions = torch.zeros(2, 5, dtype=torch.long)
    actions[1, 3] = bad_action
    with pytest.raises(ValueError, match=r"actions must lie in \[0, 4\)"):
        meta.elbo(base, e, actions, torch.ones(2, 5, dtype=torch.bool), alpha=0.1)


def test_per_step_embedding_varies_over_steps_and_ignores_padding():
    """``embedder="per_step"``: one s_t per step (the sequence embedder gives one per episode),
    different across steps, and padded steps change nothing."""
    torch.manual_seed(2)
    meta = Metacontroller(d_model=16, layer=1, n_z=4, n_h=8, n_s=8, embedder="per_step").eval()
    e = torch.randn(2, 8, 16)
    mask = torch.ones(2, 8, dtype=torch.bool)
    mask[1, 5:] = False
    with torch.no_grad():
        s = meta.embed_sequence(e, mask)
        assert s.shape == (2, 8, 8) and not torch.allclose(s[0, 2], s[0, 3])
        padded = e.clone()
        padded[1, 5:] = 99.0
        torch.testing.assert_close(meta.embed_sequence(padded, mask)[1, :5], s[1, :5])
        assert meta(e, mask).e_hat.shape == e.shape
    with pytest.raises(ValueError, match="embedder must be"):
        Metacontroller(d_model=16, layer=1, embedder="hawk")


def test_per_step_embedder_survives_save_and_load(tmp_path):
    from internal_rl_gym.hub import load_checkpoint

    meta = Metacontroller(d_model=16, layer=1, n_z=4, n_h=8, n_s=8, embedder="per_step")
    meta.save_pretrained(tmp_path / "m")
    assert load_checkpoint(Metacontroller, tmp_path / "m").embedder_kind == "per_step"


def test_categorical_codes_are_one_hot_with_kl_to_the_uniform_prior():
    torch.manual_seed(3)
    meta = Metacontroller(d_model=16, layer=1, n_z=4, n_h=8, n_s=8, rank=4, code="categorical")
    e = torch.randn(2, 6, 16)
    out = meta(e)
    z_tilde_rows = out.z[:, 0]  # β_1 = 1: the first code is the sampled one-hot z̃
    assert torch.equal(z_tilde_rows.detach().sum(-1), torch.ones(2))
    assert set(z_tilde_rows.detach().flatten().tolist()) <= {0.0, 1.0}
    q = out.mu  # the posterior's class probabilities
    expected = (q * (q.log() + torch.log(torch.tensor(4.0)))).sum(-1)
    torch.testing.assert_close(out.kl, expected, atol=1e-5, rtol=1e-5)
    with torch.no_grad():  # a uniform posterior costs nothing
        meta.encoder[-1].weight.zero_()
        meta.encoder[-1].bias.zero_()
    assert meta(e).kl.abs().max() < 1e-6
    loss = meta(e).e_hat.square().sum()
    loss.backward()  # straight-through: gradients reach the encoder
    assert meta.encoder[0].weight.grad is not None
    with pytest.raises(ValueError, match="code must be"):
        Metacontroller(d_model=16, layer=1, code="vq")


def test_additive_controllers_push_by_a_steering_vector_independent_of_e(tmp_path):
    """controller="additive": ê = e + b(z), the same push whatever the residual stream."""
    from internal_rl_gym.hub import load_checkpoint

    torch.manual_seed(4)
    meta = Metacontroller(d_model=16, layer=1, n_z=4, n_h=8, n_s=8, controller="additive")
    z = torch.randn(3, 4)
    e1, e2 = torch.randn(3, 16), torch.randn(3, 16)
    torch.testing.assert_close(meta.control(e1, z) - e1, meta.control(e2, z) - e2)
    torch.testing.assert_close(meta.decode(z, gain=2.0), 2.0 * meta.decode(z))
    assert meta(torch.randn(2, 5, 16)).e_hat.shape == (2, 5, 16)
    meta.save_pretrained(tmp_path / "m")
    assert load_checkpoint(Metacontroller, tmp_path / "m").controller == "additive"
    with pytest.raises(ValueError, match="controller must be"):
        Metacontroller(d_model=16, layer=1, controller="affine")


def test_elbo_steers_e_control_with_the_codes_inferred_from_e():
    """e_control=e is the plain ELBO; another e_control changes the NLL but not the KL (the
    codes come from e)."""
    from tests.conftest import build_tiny_grid_models

    base, meta = build_tiny_grid_models()
    torch.manual_seed(0)
    obs = torch.rand(2, 6, base.obs_dim).round()
    e = base.run_layers(base.embed(obs), 0, meta.layer)
    other = base.run_layers(base.embed(obs.flip(1)), 0, meta.layer)
    actions, mask = torch.randint(0, 4, (2, 6)), torch.ones(2, 6, dtype=torch.bool)

    def elbo(**kw):
        return meta.elbo(base, e, actions, mask, 0.1, generator=torch.Generator().manual_seed(1),
                         **kw)  # fmt: skip

    plain, same, steered = elbo(), elbo(e_control=e), elbo(e_control=other)
    torch.testing.assert_close(same.loss, plain.loss)
    torch.testing.assert_close(steered.kl, plain.kl)
    assert not torch.isclose(steered.action_nll, plain.action_nll)
