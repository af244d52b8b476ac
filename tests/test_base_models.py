"""Base models: stepping == whole-sequence forward, interventions, hub round trip, learning."""

from __future__ import annotations

import inspect
import json

import pytest
import torch

from internal_rl_gym.models import (
    ANT_CPU_PRESET,
    ANT_PAPER_PRESET,
    GRID_CPU_PRESET,
    GRID_PAPER_PRESET,
    BaseModel,
    BaseModelConfig,
    TransformerState,
    apply_linear_control,
)

OBS_DIM, N_ACTIONS, ACTION_DIM = 10, 3, 2
ARCHS = ["transformer", "hawk"]


def tiny(arch: str, action_type: str = "discrete", **kw) -> BaseModel:
    """A tiny model with large initial weights (so every layer visibly matters).
    ``action_type="mixture"``: continuous actions with a 3-component Gaussian mixture head;
    ``arch="windowed"``: a transformer attending to its last 4 steps only."""
    if arch == "windowed":
        arch, kw = "transformer", {"attention_window": 4, **kw}
    if action_type == "mixture":
        action_type, kw = "continuous", {"action_components": 3, **kw}
    args = dict(
        arch=arch,
        obs_dim=OBS_DIM,
        action_type=action_type,
        n_actions=N_ACTIONS if action_type == "discrete" else None,
        action_dim=ACTION_DIM if action_type == "continuous" else None,
        d_model=24,
        n_layers=3,
        n_heads=2,
        d_head=8,
        d_mlp=48,
        max_len=24,
        rel_buckets=8,
        rel_max_distance=12,  # buckets saturate within the test sequences
        init_scale=1.0,
    )
    args.update(kw)
    torch.manual_seed(0)
    return BaseModel(**args).eval()


def head_tensors(h) -> list[torch.Tensor]:
    return [
        t
        for t in (h.action_logits, h.action_mean, h.action_log_std, h.action_mix_logits, h.obs_pred)
        if t is not None
    ]


def per_sequence_control(batch: int, d: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.5 * torch.randn(batch, d, d, generator=g) / d**0.5


# ------------------------------------------------------------------------------ stepping


@pytest.mark.parametrize("arch", [*ARCHS, "windowed"])
@pytest.mark.parametrize("action_type", ["discrete", "continuous", "mixture"])
@pytest.mark.parametrize("controlled", [False, True])
def test_stepping_matches_forward_with_resets(arch, action_type, controlled):
    """Rows at different positions (two rows restart mid-batch) reproduce fresh full passes."""
    m = tiny(arch, action_type)
    B, T, layer = 3, 20, 1
    resets = {1: 7, 2: 12}  # row -> global step at which its episode restarts
    g = torch.Generator().manual_seed(2)
    first = torch.randn(B, T, OBS_DIM, generator=g)
    second = torch.randn(B, T, OBS_DIM, generator=g)
    U = per_sequence_control(B, m.d_model)

    def control(rows):
        return (lambda e: apply_linear_control(e, U[rows])) if controlled else None

    kw = {"layer": layer} if controlled else {}
    state = m.init_state(B)
    stepped = {b: [] for b in range(B)}  # per row: list of (heads, residuals) after its reset
    with torch.no_grad():
        for t in range(T):
            restart = torch.tensor([resets.get(b) == t for b in range(B)])
            if restart.any():
                m.reset_state(state, restart)
                for b in range(B):
                    if restart[b]:
                        stepped[b] = []
            obs_t = torch.stack(
                [
                    second[b, t - resets[b]] if t >= resets.get(b, T) else first[b, t]
                    for b in range(B)
                ]
            )
            heads, residuals = m.step(obs_t, state, intervention=control(slice(None)), **kw)
            for b in range(B):
                stepped[b].append(([x[b] for x in head_tensors(heads)], [r[b] for r in residuals]))
        assert state.lengths.tolist() == [T, T - resets[1], T - resets[2]]

        for b in range(B):
            seq = second[b : b + 1, : T - resets[b]] if b in resets else first[b : b + 1]
            full = m(seq, intervention=control(slice(b, b + 1)), return_residuals=True, **kw)
            assert len(stepped[b]) == seq.shape[1]
            for t, (heads_t, res_t) in enumerate(stepped[b]):
                for got, want in zip(heads_t, head_tensors(full)):
                    torch.testing.assert_close(got, want[0, t], atol=1e-5, rtol=1e-5)
                for got, want in zip(res_t, full.residuals):
                    torch.testing.assert_close(got, want[0, t], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_split_step_layers_matches_step(arch):
    """Lower half stepped first, upper half later (the internal-RL pattern) == one full step."""
    m = tiny(arch)
    B, T, layer = 2, 6, 2
    obs = torch.randn(B, T, OBS_DIM)
    U = per_sequence_control(B, m.d_model)
    a, b = m.init_state(B), m.init_state(B)
    with torch.no_grad():
        for t in range(T):
            want, res = m.step(obs[:, t], a, lambda e: apply_linear_control(e, U), layer)
            e_mid = m.step_layers(m.embed(obs[:, t]), b, 0, layer)
            torch.testing.assert_close(e_mid, res[layer])
            e_top = m.step_layers(apply_linear_control(e_mid, U), b, layer, m.n_layers)
            torch.testing.assert_close(m.heads(e_top).action_logits, want.action_logits)
    assert b.layer_lengths.tolist() == a.layer_lengths.tolist() == [[T] * B] * m.n_layers


def test_attention_window_forgets_exactly_the_steps_before_it():
    """With attention_window W, the output at step t depends on o_{t-W+1..t} only (through all
    layers: each reads W steps of the layer below, so the reach is L·(W-1) steps), and a window
    longer than the episode changes nothing."""
    T, W = 16, 4
    obs = torch.randn(1, T, OBS_DIM)
    changed = obs.clone()
    changed[0, 0] += 3.0
    with torch.no_grad():
        windowed = tiny("transformer", attention_window=W)
        a, b = windowed(obs).action_logits[0], windowed(changed).action_logits[0]
        reach = windowed.n_layers * (W - 1)  # o_0 reaches steps 0..reach
        assert not torch.allclose(a[reach], b[reach])
        torch.testing.assert_close(a[reach + 1 :], b[reach + 1 :])
        full, long = tiny("transformer"), tiny("transformer", attention_window=T)
        torch.testing.assert_close(full(obs).action_logits, long(obs).action_logits)


def test_transformer_context_overflow_and_clone():
    m = tiny("transformer", max_len=4)
    state = m.init_state(2)
    obs = torch.randn(2, OBS_DIM)
    with torch.no_grad():
        for _ in range(4):
            m.step(obs, state)
        branch = state.clone()
        assert isinstance(branch, TransformerState) and branch.keys[0] is not state.keys[0]
        with pytest.raises(ValueError, match=r"rows \[0, 1\] would exceed .*max_len=4"):
            m.step(obs, state)
        m.reset_state(state, torch.tensor([True, False]))
        with pytest.raises(ValueError, match=r"rows \[1\]"):
            m.step(obs, state)


# ------------------------------------------------------------------------------ interventions


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("layer", [0, 1, 3])
def test_intervention_changes_only_layers_above(arch, layer):
    m = tiny(arch)
    obs = torch.randn(2, 7, OBS_DIM)
    U = per_sequence_control(2, m.d_model)
    with torch.no_grad():
        base = m(obs, return_residuals=True)
        ctrl = m(obs, lambda e: apply_linear_control(e, U), layer=layer, return_residuals=True)
    assert len(ctrl.residuals) == m.n_layers + 1
    for l in range(layer + 1):
        torch.testing.assert_close(ctrl.residuals[l], base.residuals[l], atol=0, rtol=0)
    torch.testing.assert_close(ctrl.controlled, apply_linear_control(base.residuals[layer], U))
    for l in range(layer + 1, m.n_layers + 1):
        assert (ctrl.residuals[l] - base.residuals[l]).abs().max() > 1e-3
    assert (ctrl.action_logits - base.action_logits).abs().max() > 1e-4
    # run_layers from the controlled layer reproduces the top of the stack
    top = m.run_layers(ctrl.controlled, layer, m.n_layers)
    torch.testing.assert_close(m.heads(top).action_logits, ctrl.action_logits)


def test_apply_linear_control_low_rank_equals_dense():
    g = torch.Generator().manual_seed(3)
    B, T, d, r = 3, 5, 12, 4
    e = torch.randn(B, T, d, generator=g)
    for batch in [(B, T), (B,), ()]:
        A = torch.randn(*batch, d, r, generator=g)
        Bm = torch.randn(*batch, d, r, generator=g)
        dense = A @ Bm.transpose(-1, -2)
        torch.testing.assert_close(apply_linear_control(e, (A, Bm)), apply_linear_control(e, dense))
    # explicit per-step formula, and a single timestep (B, d) with a per-sequence U
    U = torch.randn(B, T, d, d, generator=g)
    want = e + torch.einsum("btij,btj->bti", U, e)
    torch.testing.assert_close(apply_linear_control(e, U), want)
    U1 = torch.randn(B, d, d, generator=g)
    torch.testing.assert_close(
        apply_linear_control(e[:, 0], U1), e[:, 0] + torch.einsum("bij,bj->bi", U1, e[:, 0])
    )
    with pytest.raises(ValueError, match="controller"):
        apply_linear_control(e, torch.randn(d, d + 1))


# ------------------------------------------------------------------------------ hub round trip


@pytest.mark.parametrize(
    "kw",
    [
        dict(arch="transformer"),
        dict(arch="hawk", action_type="continuous", lru_width=16, name="ant-tiny"),
        dict(arch="hawk", action_type="mixture"),
        dict(
            arch="transformer",
            obs_encoder="grid_cells",
            grid_size=3,
            grid_channels=4,
            obs_dim=36,
            cell_features=5,
            obs_loss="bce",
        ),
    ],
)
def test_save_load_round_trip(tmp_path, kw):
    m = tiny(**kw)
    m.save_pretrained(tmp_path)
    assert {"config.json", "model.safetensors"} <= {p.name for p in tmp_path.iterdir()}
    config = json.loads((tmp_path / "config.json").read_text())
    assert config == m.config.to_dict()
    loaded = BaseModel.from_pretrained(tmp_path, strict=True)
    assert loaded.config == m.config
    obs = (torch.rand(2, 5, m.obs_dim) < 0.3).float()
    with torch.no_grad():
        for a, b in zip(head_tensors(m(obs)), head_tensors(loaded(obs))):
            torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_config_dataclass_mirrors_constructor_and_presets_build():
    params = inspect.signature(BaseModel.__init__).parameters
    fields = BaseModelConfig.__dataclass_fields__
    assert list(fields) == [p for p in params if p != "self"]
    for name, p in params.items():
        if name not in ("self", "obs_dim"):
            assert fields[name].default == p.default, name
    grid = BaseModel.from_config(GRID_CPU_PRESET)
    assert grid.config.obs_dim == 7 * 7 * 13 and grid.arch == "transformer"
    assert GRID_PAPER_PRESET.d_model == 256 and GRID_PAPER_PRESET.d_head == 64
    assert ANT_PAPER_PRESET.n_layers == 8 and ANT_PAPER_PRESET.lru_width == 256
    with pytest.raises(ValueError, match="obs_dim=None"):
        BaseModel.from_config(ANT_CPU_PRESET)
    ant = BaseModel.from_config(ANT_CPU_PRESET.replace(obs_dim=29, action_dim=8, n_layers=2))
    assert ant.arch == "hawk" and ant.action_type == "continuous"


# ------------------------------------------------------------------------------ learning


@pytest.mark.parametrize("arch,action_type", [("transformer", "discrete"), ("hawk", "continuous")])
def test_tiny_model_overfits(arch, action_type):
    m = tiny(arch, action_type, n_layers=2, init_scale=0.1).train()
    g = torch.Generator().manual_seed(4)
    B, T = 4, 12
    obs = torch.randn(B, T + 1, OBS_DIM, generator=g)
    if action_type == "discrete":
        actions = torch.randint(0, N_ACTIONS, (B, T), generator=g)
    else:
        actions = torch.randn(B, T, ACTION_DIM, generator=g)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[0, 8:] = False  # a padded episode
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    first = None
    for _ in range(100):
        out = m.loss(obs, actions, mask, obs_coef=0.01)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        first = first if first is not None else out.to_dict()
    last = m.loss(obs, actions, mask).to_dict()
    assert last["loss"] < first["loss"] - 0.5, (first, last)
    assert last["obs_loss"] < first["obs_loss"]
    if action_type == "discrete":
        assert last["action_accuracy"] > 0.9
    dist = m.action_distribution(m(obs[:, :-1]))
    assert dist.sample().shape == actions.shape


def test_mixture_head_log_prob_is_the_weighted_sum_of_its_gaussians():
    m = tiny("hawk", "mixture")
    obs = torch.randn(2, 5, OBS_DIM)
    actions = torch.randn(2, 5, ACTION_DIM)
    with torch.no_grad():
        head = m(obs)
        assert head.action_mean.shape == head.action_log_std.shape == (2, 5, 3, ACTION_DIM)
        assert head.action_mix_logits.shape == (2, 5, 3)
        per_component = (
            torch.distributions.Normal(head.action_mean, head.action_log_std.exp())
            .log_prob(actions[:, :, None])
            .sum(-1)
        )  # (2, 5, 3)
        want = torch.logsumexp(torch.log_softmax(head.action_mix_logits, -1) + per_component, -1)
        got = m.action_distribution(head).log_prob(actions)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        full = torch.cat([obs, torch.randn(2, 1, OBS_DIM)], 1)
        torch.testing.assert_close(m.loss(full, actions).action_nll, -want.mean())


def test_mixture_head_commits_to_one_of_two_modes_a_gaussian_averages():
    """Actions ±1 at random after the same observations: one Gaussian can only centre near 0
    (NLL about ½·ln(2πe) ≈ 1.42 per dimension); two components put a narrow Gaussian on each."""
    g = torch.Generator().manual_seed(5)
    B, T = 64, 4
    obs = torch.zeros(B, T + 1, OBS_DIM)
    sign = torch.randint(0, 2, (B, T, 1), generator=g).float() * 2 - 1
    actions = sign.expand(B, T, ACTION_DIM).contiguous()
    nll = {}
    for k in (1, 2):
        m = tiny("hawk", "continuous", n_layers=1, init_scale=0.1, action_components=k).train()
        opt = torch.optim.Adam(m.parameters(), lr=3e-2)
        for _ in range(150):
            loss = m.loss(obs, actions, obs_coef=0.0).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
        nll[k] = float(m.loss(obs, actions, obs_coef=0.0).action_nll.detach())
    assert nll[1] > 2 * 1.3, nll
    assert nll[2] < nll[1] - 2.0, nll


def test_loss_ignores_masked_steps_and_bce_encoder():
    m = tiny(
        "transformer",
        obs_encoder="grid_cells",
        grid_size=3,
        grid_channels=4,
        obs_dim=36,
        cell_features=5,
        obs_loss="bce",
    )
    obs = (torch.rand(2, 6, 36) < 0.3).float()
    actions = torch.randint(0, N_ACTIONS, (2, 5))
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    garbage = actions.clone()
    garbage[0, 3:] = (garbage[0, 3:] + 1) % N_ACTIONS
    a = m.loss(obs, actions, mask)
    b = m.loss(obs, garbage, mask)
    torch.testing.assert_close(a.loss, b.loss)
    assert a["action_accuracy"] is not None and 0 <= float(a.action_accuracy) <= 1


# ------------------------------------------------------------------------------ errors


def test_bad_inputs_raise_helpful_errors():
    m = tiny("transformer")
    with pytest.raises(ValueError, match=r"obs_dim=10, got shape \(2, 5, 11\)"):
        m(torch.randn(2, 5, OBS_DIM + 1))
    with pytest.raises(ValueError, match="obs_dim=10"):
        m.step(torch.randn(2, 3), m.init_state(2))
    for bad in (-1, m.n_layers + 1):
        with pytest.raises(ValueError, match=r"layer must be an int in \[0, n_layers=3\]"):
            m(torch.randn(2, 5, OBS_DIM), lambda e: e, layer=bad)
    with pytest.raises(ValueError, match="needs the layer"):
        m(torch.randn(2, 5, OBS_DIM), lambda e: e)
    with pytest.raises(ValueError, match="shaped like its input"):
        m(torch.randn(2, 5, OBS_DIM), lambda e: e[..., :3], layer=1)
    with pytest.raises(ValueError, match=r"start"):
        m.run_layers(torch.randn(2, 5, 24), 2, 1)
    obs = torch.randn(2, 6, OBS_DIM)
    with pytest.raises(ValueError, match=r"\(B, T\) = \(2, 5\)"):
        m.loss(obs, torch.zeros(2, 6, dtype=torch.long))
    with pytest.raises(ValueError, match=r"integer"):
        m.loss(obs, torch.zeros(2, 5))
    c = tiny("hawk", "continuous")
    with pytest.raises(ValueError, match=r"action_dim\) = \(2, 5, 2\)"):
        c.loss(obs, torch.zeros(2, 5))


def test_constructor_validation():
    with pytest.raises(
        ValueError, match=r"grid_size² · grid_channels = 7² · 13 = 637, got obs_dim=636"
    ):
        BaseModel(obs_dim=636, n_actions=4, obs_encoder="grid_cells")
    with pytest.raises(ValueError, match="arch must be one of"):
        BaseModel(arch="lstm", obs_dim=4, n_actions=2)
    with pytest.raises(ValueError, match="n_actions"):
        BaseModel(obs_dim=4)
    with pytest.raises(ValueError, match="divisible by n_heads"):
        BaseModel(arch="hawk", obs_dim=4, n_actions=2, d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="action_components must be a positive int, got 0"):
        BaseModel(obs_dim=4, action_type="continuous", action_dim=2, action_components=0)
    with pytest.raises(ValueError, match="action_components=2 needs continuous actions"):
        BaseModel(obs_dim=4, n_actions=2, action_components=2)
    with pytest.raises(ValueError, match="attention_window=8 limits a transformer"):
        BaseModel(arch="hawk", obs_dim=4, n_actions=2, attention_window=8)
    with pytest.raises(ValueError, match="attention_window must be a positive int or None"):
        BaseModel(obs_dim=4, n_actions=2, attention_window=0)


def test_a_checkpoint_saved_before_mixture_heads_loads_with_one_gaussian(tmp_path):
    m = tiny("hawk", "continuous")
    m.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    del config["action_components"]  # as written by versions before the field existed
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = BaseModel.from_pretrained(tmp_path, strict=True)
    assert loaded.config.action_components == 1
    assert loaded(torch.randn(1, 3, OBS_DIM)).action_mix_logits is None


@pytest.mark.parametrize("arch", ARCHS)
def test_masked_step_layers_leaves_inactive_rows_untouched(arch):
    """Rows that sit out some steps (``active=False``) end up exactly where they would be had
    they been stepped alone, in a batch that moves at different speeds."""
    torch.manual_seed(0)
    model = tiny(arch)
    b, t = 3, 6
    obs = torch.rand(b, t, model.obs_dim)
    full = model.run_layers(model.embed(obs), 0, model.n_layers)  # (B, T, d)
    state = model.init_state(b)
    pattern = torch.tensor(
        [[1, 1, 1, 1, 1, 1, 0, 0, 0], [1, 0, 1, 0, 1, 0, 1, 1, 1], [0, 0, 0, 1, 1, 1, 1, 1, 1]],
        dtype=torch.bool,
    )
    consumed = [0] * b
    for k in range(pattern.shape[1]):
        active = pattern[:, k]
        idx = [min(consumed[r], t - 1) for r in range(b)]
        e_t = model.embed(obs[torch.arange(b), idx])
        out = model.step_layers(e_t, state, 0, model.n_layers, active=active)
        for r in range(b):
            if active[r]:
                torch.testing.assert_close(out[r], full[r, consumed[r]], atol=1e-5, rtol=1e-5)
                consumed[r] += 1
    assert state.lengths.tolist() == consumed


def test_egocentric_encoder_recentres_the_grid_on_the_agent():
    from internal_rl_gym.models.encoders import GridEgocentricEncoder

    torch.manual_seed(0)
    g, c = 5, 6
    enc = GridEgocentricEncoder(g, c, 4, 8, 1.0)
    obs = (torch.rand(3, g * g, c) > 0.8).float()
    obs[..., -1] = 0.0
    agents = [0, 12, 24]
    for b, a in enumerate(agents):
        obs[b, a, -1] = 1.0
    # the view the encoder's linear layer sees, rebuilt by hand
    captured = {}
    enc.out.register_forward_hook(lambda m, inp, out: captured.update(x=inp[0]))
    enc(obs.flatten(-2))
    view = captured["x"].reshape(3, 2 * g - 1, 2 * g - 1, c)
    for b, a in enumerate(agents):
        ar, ac = divmod(a, g)
        for i in range(2 * g - 1):
            for j in range(2 * g - 1):
                r, col = ar + i - (g - 1), ac + j - (g - 1)
                if 0 <= r < g and 0 <= col < g:
                    expected = torch.cat([obs[b, r * g + col, :-1], torch.zeros(1)])
                else:
                    expected = torch.cat([torch.zeros(c - 1), torch.ones(1)])
                assert torch.equal(view[b, i, j], expected)


def test_egocentric_encoder_inference_path_matches_the_view():
    """Without gradients the encoder sums the linear layer's columns picked by the non-zero
    entries instead of building the view; it must compute the same function."""
    from internal_rl_gym.models.encoders import GridEgocentricEncoder

    torch.manual_seed(0)
    g, c = 5, 6
    enc = GridEgocentricEncoder(g, c, 4, 8, 1.0)
    obs = (torch.rand(2, 4, g * g, c) > 0.7).float() * torch.rand(2, 4, g * g, c)
    obs[..., -1] = 0.0
    for b, a in enumerate([0, 6, 12, 18, 24, 4, 20, 13]):
        obs.view(-1, g * g, c)[b, a, -1] = 1.0
    obs = obs.flatten(-2)
    with_view = enc(obs)
    with torch.no_grad():
        sparse = enc(obs)
        assert enc._outside_cache is not None  # the sparse path ran
        assert sparse.shape == with_view.shape == (2, 4, 8)
        torch.testing.assert_close(sparse, with_view, atol=1e-5, rtol=1e-5)
        # no agent, an empty batch and one unbatched observation agree too
        no_agent = obs[0].clone().unflatten(-1, (g * g, c))
        no_agent[..., -1] = 0.0
        for o in (no_agent.flatten(-2), obs[:0], obs[1, 2]):
            torch.testing.assert_close(enc(o), enc._forward_view(o), atol=1e-5, rtol=1e-5)
        # the cached outside-the-grid term follows the weights
        enc.out.weight.mul_(2.0)
        sparse = enc(obs)
    torch.testing.assert_close(sparse, enc(obs), atol=1e-5, rtol=1e-5)


def test_egocentric_model_steps_like_its_forward():
    torch.manual_seed(0)
    model = BaseModel(
        arch="transformer",
        obs_dim=5 * 5 * 6,
        n_actions=4,
        d_model=16,
        n_layers=2,
        n_heads=2,
        d_head=8,
        d_mlp=32,
        obs_encoder="grid_egocentric",
        grid_size=5,
        grid_channels=6,
        cell_features=4,
        obs_loss="bce",
        max_len=16,
    ).eval()
    obs = (torch.rand(2, 7, 25, 6) > 0.8).float()
    obs[..., -1] = 0.0
    obs[:, :, 7, -1] = 1.0
    obs = obs.flatten(-2)
    full = model(obs).action_logits
    state = model.init_state(2)
    for t in range(7):
        head, _ = model.step(obs[:, t], state)
        torch.testing.assert_close(head.action_logits, full[:, t], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("grad", [False, True])
@pytest.mark.parametrize("arch", [*ARCHS, "windowed"])
def test_step_layers_on_row_subsets_matches_the_full_forward(arch, grad):
    """Stepping only some rows (``rows=``) computes those rows alone, leaves the others'
    caches untouched, and every row still matches the full-sequence forward."""
    torch.manual_seed(0)
    model = tiny(arch)
    b, t = 3, 6
    obs = torch.rand(b, t, model.obs_dim)
    full = model.run_layers(model.embed(obs), 0, model.n_layers)
    state = model.init_state(b)
    pattern = [[0, 1, 2], [1], [0, 2], [2], [0, 1, 2], [1, 0], [2], [0, 1, 2], [1], [0, 1, 2]]
    consumed = [0] * b
    with torch.set_grad_enabled(grad):
        for rows in pattern:
            rows = [r for r in rows if consumed[r] < t]
            e_t = model.embed(obs[rows, [consumed[r] for r in rows]])
            out = model.step_layers(e_t, state, 0, model.n_layers, rows=torch.tensor(rows))
            assert out.shape == (len(rows), model.d_model)
            for j, r in enumerate(rows):
                torch.testing.assert_close(out[j], full[r, consumed[r]], atol=1e-5, rtol=1e-5)
                consumed[r] += 1
    assert state.lengths.tolist() == consumed


def test_step_layers_rejects_bad_rows():
    model = tiny("transformer")
    state = model.init_state(2)
    e = torch.zeros(1, model.d_model)
    with pytest.raises(ValueError, match="rows must index a batch of 2"):
        model.step_layers(e, state, 0, 1, rows=torch.tensor([2]))
    with pytest.raises(ValueError, match="rows must be distinct"):
        model.step_layers(torch.zeros(2, model.d_model), state, 0, 1, rows=torch.tensor([0, 0]))
    with pytest.raises(ValueError, match="either active"):
        model.step_layers(e, state, 0, 1, active=torch.ones(2, dtype=bool), rows=torch.tensor([0]))
    with pytest.raises(ValueError, match=r"shape \(1, d_model"):
        model.step_layers(torch.zeros(2, model.d_model), state, 0, 1, rows=torch.tensor([1]))


@pytest.mark.parametrize("arch,action_type", [("transformer", "discrete"), ("hawk", "continuous")])
def test_bf16_autocast_keeps_residual_stream_and_heads_in_fp32(arch, action_type):
    # A bf16 residual stream made a 38k-step pretraining run diverge within 500 steps of
    # resuming under autocast (fp32 from the same state did not); sums stay in fp32 now.
    model = tiny(arch, action_type)
    obs = torch.randn(2, 7, OBS_DIM)
    with torch.autocast("cpu", torch.bfloat16):
        out = model(obs, return_residuals=True)
    assert all(e.dtype == torch.float32 for e in out.residuals)
    assert all(t.dtype == torch.float32 for t in head_tensors(out))
    ref = model(obs)
    for got, want in zip(head_tensors(out), head_tensors(ref)):
        torch.testing.assert_close(got, want, rtol=0.1, atol=0.1)


def test_rg_lru_chunked_scan_matches_the_recurrence():
    """The chunked scan in RGLRU.forward equals h_t = a_t h_{t-1} + b_t run one step at a time,
    across chunk boundaries and padding, from near-total forgetting (the e^-4 floor) to a ~ 1."""
    from internal_rl_gym.models.layers import RGLRU

    torch.manual_seed(0)
    lru = RGLRU(width=16, n_heads=2, init_scale=1.0)
    with torch.no_grad():
        lru.a_param.copy_(torch.linspace(-6.0, 8.0, 16))  # σ(Λ) from 0.0025 to 0.9997
    x = (3.0 * torch.randn(3, 2 * RGLRU.chunk + 5, 16)).requires_grad_()
    got = lru(x)
    h, want = torch.zeros(3, 16), []
    for t in range(x.shape[1]):
        out, h = lru.step(x[:, t], h)
        want.append(out)
    torch.testing.assert_close(got, torch.stack(want, 1), atol=1e-5, rtol=1e-5)
    got.square().sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(lru.a_param.grad).all()


def test_rg_lru_rejects_a_chunk_that_would_overflow():
    from internal_rl_gym.models.layers import RGLRU

    lru = RGLRU(width=4, n_heads=2, init_scale=1.0)
    lru.chunk = 32  # 32 * 4 > 80: exp(-Σ log a) could overflow float32
    with pytest.raises(ValueError, match="chunk"):
        lru(torch.randn(1, 5, 4))


def test_control_layer_is_recorded_and_defaults_to_half_depth(tmp_path):
    from internal_rl_gym.hub import load_base_model

    kw = dict(arch="transformer", obs_dim=6, n_actions=3, d_model=8, n_layers=4, n_heads=2)
    kw.update(d_head=4, d_mlp=16)
    assert BaseModel(**kw).control_layer == 2  # the paper's L/2 when nothing is recorded
    model = BaseModel(**kw, control_layer=1)
    assert model.control_layer == 1
    model.save_pretrained(tmp_path / "m")
    assert load_base_model(tmp_path / "m").control_layer == 1
    for bad in (5, -1, 1.5):
        with pytest.raises(ValueError, match="control_layer must be an int in 0..n_layers=4"):
            BaseModel(**kw, control_layer=bad)
