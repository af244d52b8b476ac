"""The metacontroller: temporally-abstract controllers discovered without labels (paper §4).

It reads the frozen base model's residual stream ``e_{t,l}`` at the controlled layer ``l = L/2``
and writes ``ê_{t,l} = e_{t,l} + U_t e_{t,l}``; the base model's upper layers then run on ``ê``.

Modules (paper Table A9/A10, Eqs. 12-18):

=====================  =======================================================================
history GRU            ``h_t = GRU(e_t, h_{t-1})`` (part of the recurrent switching unit)
sequence embedder      ``s = f_emb(e_{1:T})``, non-causal: a bidirectional GRU over the whole
                       sequence, its two final states projected to ``n_s`` (paper: a Hawk SSM;
                       the pooling is not specified there)
controller encoder     ``μ_t, log σ²_t = f_enc(e_t, h_{t-1}, s)``; ``z̃_t ~ N(μ_t, σ²_t)``
switching unit         ``β_t = σ(f_switch(e_t, h_{t-1}, z_{t-1}))`` in [0, 1]; ``β_1 = 1``
temporal integration   ``z_t = β_t z̃_t + (1 - β_t) z_{t-1}``
controller decoder     ``U_t = f_hyp(z_t)``: a hypernetwork; low rank ``U = A Bᵀ`` (grid) or a
                       full ``d x d`` matrix (ant)
=====================  =======================================================================

Training (:meth:`Metacontroller.elbo`) minimises the action NLL of the frozen base model run on
``ê`` plus ``α · KL(N(μ_t, σ²_t) ‖ N(0, I))`` at every step (paper Eq. 3 with λ = 0).

A ``posterior="hindsight"`` metacontroller (:meth:`Metacontroller.hindsight_elbo`; not in the
paper) infers a segment's categorical code from the residual stream of the segment's end state,
with segments given by a switching pattern (e.g. another metacontroller's β), and learns its
switching unit from that pattern: a code can then only carry what the end state shows, the
subgoal reached, and not the direction of the first move.

Internal RL replaces the encoder with a policy and uses the *causal* parts step by step:
:meth:`Metacontroller.switch` (β from ``e_t, h_{t-1}, z_{t-1}``), :meth:`Metacontroller.update_history`
and :meth:`Metacontroller.decode`. :meth:`Metacontroller.forward_with_codes` runs the same
computation on a whole sequence given z̃ and β from outside, which a test uses to show that the
step-by-step mode equals the training-time forward.

It stays one module though over 600 lines (issue 31) because it is one class per model:
:class:`Metacontroller` and the ground-truth :class:`SubgoalControllers` share the control
formula and the checkpoint format, and the paper's modules above are its methods, not classes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn
from torch.nn import functional as F


@dataclass
class MetacontrollerOutput:
    """Per-step quantities of one forward pass, each (B, T, ...)."""

    e_hat: torch.Tensor  # controlled residual stream ê
    beta: torch.Tensor  # switching gate β_t, (B, T)
    z: torch.Tensor  # integrated controller code z_t
    mu: torch.Tensor
    logvar: torch.Tensor
    kl: torch.Tensor  # KL(N(μ, σ²) ‖ N(0, I)) per step, (B, T)


@dataclass
class ElboOutput:
    loss: torch.Tensor
    action_nll: torch.Tensor
    kl: torch.Tensor
    action_accuracy: torch.Tensor | None
    out: MetacontrollerOutput
    switch_bce: torch.Tensor | None = None  # hindsight training: the switching unit's loss


def linear_control(e: torch.Tensor, u) -> torch.Tensor:
    """The paper's controller, ê = e + U e: ``u`` is a low-rank pair (A, B) with U = A Bᵀ, each
    (..., d, r), or a full (..., d, d) matrix."""
    if isinstance(u, tuple):
        a, b = u
        return e + torch.einsum("...dr,...r->...d", a, torch.einsum("...dr,...d->...r", b, e))
    return e + torch.einsum("...ij,...j->...i", u, e)


def segment_end_index(starts: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """For every step t of (B, T) segment ``starts``, the index of its segment's end state: the
    next start after t, or the episode's length (the observation after its last action)."""
    b, t = starts.shape
    pos = torch.arange(t, device=starts.device).expand(b, t)
    cap = lengths[:, None].expand(b, t)
    nxt = torch.where(starts, pos, cap)[:, 1:]  # a start at s ends the segment before it
    nxt = torch.cat([nxt, cap[:, :1]], 1)
    end = nxt.flip(1).cummin(1).values.flip(1)
    return torch.minimum(end, cap)


def _mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, n_out))


class Metacontroller(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="internal-rl-gym",
    tags=["internal-rl-gym", "reinforcement-learning", "hierarchical-rl", "metacontroller"],
    repo_url="https://arxiv.org/abs/2512.20605",
):
    """Discovers abstract actions (z, β) that steer a frozen base model's residual stream.

    :param d_model: width of the base model's residual stream.
    :param layer: the controlled layer ``l`` (the paper uses ``L/2``).
    :param n_z: controller code size (paper: 8).
    :param n_h: history GRU size (paper: 32).
    :param n_s: sequence embedding size (paper: 32).
    :param enc_hidden: encoder MLP width (paper: 64).
    :param switch_hidden: switching-unit MLP width (not given in the paper; 64).
    :param hyp_hidden: hypernetwork width (paper: 32).
    :param rank: rank of ``U = A Bᵀ``; ``0`` means a full ``d x d`` controller (ant).
    :param beta_bias_init: initial bias of the switching logit (negative = gate starts closed).
    :param gate_temperature: τ of the gate, β = σ(logit / τ); a metacontroller trained with a
        Gumbel-Sigmoid gate keeps its τ so the noise-free gate matches training (default 1).
    :param base_model_name: name of the base model it was trained on (recorded, checked on load).
    :param base_model_fingerprint: sha256 of that base model's weights (see ``hub.model_fingerprint``).
    :param code: ``"gaussian"`` (the paper: z̃ ~ N(μ, σ²) with an N(0, I) prior) or
        ``"categorical"`` (z̃ is one of ``n_z`` one-hot codes, prior Uniform(n_z), trained with a
        straight-through Gumbel-softmax of temperature ``code_temperature``; internal RL then
        picks one of ``n_z`` abstract actions). See the README's design choices.
    :param controller: ``"linear"`` (the paper: ``ê = e + U(z) e``) or ``"additive"``
        (``ê = e + b(z)``, a steering vector: a push that does not depend on ``e``, so a code
        cannot mean "the usual continuation of the current subgoal").
    :param embedder: ``"sequence"`` (one embedding s per sequence) or ``"per_step"`` (s_t, which
        adds a summary of the steps from t on); see :meth:`embed_sequence`. Training only: the
        causal parts internal RL uses are the same.
    :param posterior: ``"sequence"`` (the paper: q(z̃_t | e_t, h_{t-1}, s), s a non-causal
        embedding of the whole episode) or ``"hindsight"``: a segment's code is inferred from the
        residual stream at layer ``hindsight_layer`` of the segment's *end state*, the step that
        follows its last action (where the subgoal was reached), and the segments come from a
        given switching pattern (:meth:`hindsight_forward`). Categorical codes only. Training
        only: the causal parts internal RL uses are the same. See docs/design_choices.md.
    :param hindsight_layer: the layer of the end state's residual stream the hindsight
        posterior reads (0 = the observation's embedding).
    :param hindsight_window: how many steps from the end state on the hindsight posterior reads
        (concatenated; cut at the episode's last observation). 2 also sees the step after, which
        covers a segmenter that switches one step early.
    """

    def __init__(
        self,
        d_model: int,
        layer: int,
        n_z: int = 8,
        n_h: int = 32,
        n_s: int = 32,
        enc_hidden: int = 64,
        switch_hidden: int = 64,
        hyp_hidden: int = 32,
        rank: int = 16,
        beta_bias_init: float = -2.0,
        gate_temperature: float = 1.0,
        base_model_name: str = "",
        base_model_fingerprint: str = "",
        embedder: str = "sequence",
        code: str = "gaussian",
        code_temperature: float = 1.0,
        controller: str = "linear",
        posterior: str = "sequence",
        hindsight_layer: int = 0,
        hindsight_window: int = 1,
    ) -> None:
        super().__init__()
        if posterior not in ("sequence", "hindsight"):
            raise ValueError(f"posterior must be 'sequence' or 'hindsight', got {posterior!r}.")
        if posterior == "hindsight" and code != "categorical":
            raise ValueError(
                "posterior='hindsight' needs code='categorical' (a segment's code is one of "
                "n_z abstract actions); pass code='categorical'."
            )
        if hindsight_layer < 0:
            raise ValueError(f"hindsight_layer must be >= 0, got {hindsight_layer}.")
        if hindsight_window < 1:
            raise ValueError(f"hindsight_window must be >= 1, got {hindsight_window}.")
        self.posterior, self.hindsight_layer = posterior, int(hindsight_layer)
        self.hindsight_window = int(hindsight_window)
        if controller not in ("linear", "additive"):
            raise ValueError(f"controller must be 'linear' or 'additive', got {controller!r}.")
        self.controller = controller
        if embedder not in ("sequence", "per_step"):
            raise ValueError(f"embedder must be 'sequence' or 'per_step', got {embedder!r}.")
        if code not in ("gaussian", "categorical"):
            raise ValueError(f"code must be 'gaussian' or 'categorical', got {code!r}.")
        if not code_temperature > 0:
            raise ValueError(f"code_temperature must be > 0, got {code_temperature}.")
        self.embedder_kind, self.code, self.code_temperature = embedder, code, code_temperature
        self.d_model, self.layer, self.n_z, self.n_h, self.rank = d_model, layer, n_z, n_h, rank
        if not gate_temperature > 0:
            raise ValueError(f"gate_temperature must be > 0, got {gate_temperature}.")
        self.gate_temperature = float(gate_temperature)
        self.base_model_name = base_model_name
        self.base_model_fingerprint = base_model_fingerprint
        self.history = nn.GRU(d_model, n_h, batch_first=True)
        n_enc = n_z if code == "categorical" else 2 * n_z  # K logits, or (μ, log σ²)
        if posterior == "hindsight":  # q(z̃ | end state): no sequence embedding
            n_in = d_model * hindsight_window
            self.encoder = nn.Sequential(nn.LayerNorm(n_in), _mlp(n_in, enc_hidden, n_enc))
        else:
            self.embedder = nn.GRU(d_model, n_s, batch_first=True, bidirectional=True)
            self.embed_out = nn.Linear(2 * n_s, n_s)
            self.encoder = _mlp(d_model + n_h + n_s, enc_hidden, n_enc)
        self.switch_net = _mlp(d_model + n_h + n_z, switch_hidden, 1)
        if controller == "additive":
            n_out = d_model
        else:
            n_out = 2 * d_model * rank if rank > 0 else d_model * d_model
        self.hyper = _mlp(n_z, hyp_hidden, n_out)
        with torch.no_grad():
            self.switch_net[-1].bias.fill_(beta_bias_init)
            self.hyper[-1].weight.mul_(0.1)
            self.hyper[-1].bias.zero_()
            if rank > 0 and controller == "linear":
                # U = A Bᵀ with both factors near zero is a saddle: the gradient reaching z
                # is second order and the encoder collapses to the prior (KL 0) before the
                # decoder learns. A random z-independent B at init gives A a first-order gradient.
                self.hyper[-1].bias[d_model * rank :].normal_(0.0, d_model**-0.5)

    # --- causal pieces (used step by step by InternalControl) ------------------------------
    def initial_state(self, batch: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(h_0, z_0) = zeros."""
        p = next(self.parameters())
        device = device or p.device
        return (
            torch.zeros(batch, self.n_h, device=device, dtype=p.dtype),
            torch.zeros(batch, self.n_z, device=device, dtype=p.dtype),
        )

    def switch(self, e_t: torch.Tensor, h_prev: torch.Tensor, z_prev: torch.Tensor) -> torch.Tensor:
        """β_t = σ(f_switch(e_t, h_{t-1}, z_{t-1}) / τ), shape (B,)."""
        logit = self.switch_net(torch.cat([e_t, h_prev, z_prev], -1))[..., 0]
        return torch.sigmoid(logit / self.gate_temperature)

    def update_history(self, e_t: torch.Tensor, h_prev: torch.Tensor) -> torch.Tensor:
        """h_t = GRU(e_t, h_{t-1}) for one step, (B, n_h)."""
        _, h = self.history(e_t[:, None], h_prev[None].contiguous())
        return h[0]

    def history_sequence(self, e: torch.Tensor) -> torch.Tensor:
        """h_0..h_{T-1} for a whole sequence, (B, T, n_h): the state *before* each step. The
        history does not depend on z or β, so it runs as one GRU call."""
        h, _ = self.history(e)
        return torch.cat([torch.zeros_like(h[:, :1]), h[:, :-1]], 1)

    def decode(
        self, z: torch.Tensor, gain: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor] | torch.Tensor:
        """U = γ f_hyp(z): a low-rank pair (A, B) with U = A Bᵀ, each (..., d, r), or a full
        (..., d, d) matrix when ``rank == 0``. ``gain`` γ scales the controller's push
        (1 = the paper; see ``ControlOptions.controller_gain``)."""
        out = self.hyper(z)
        d = self.d_model
        if self.controller == "additive":  # a steering vector b(z): ê = e + b
            return out if gain == 1.0 else out * gain
        if self.rank > 0:
            a, b = out.split(d * self.rank, dim=-1)
            shape = (*z.shape[:-1], d, self.rank)
            a = a.reshape(shape) / self.rank**0.5
            return (a if gain == 1.0 else a * gain), b.reshape(shape)
        u = out.reshape(*z.shape[:-1], d, d) / d**0.5
        return u if gain == 1.0 else u * gain

    def control(self, e: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """ê = e + U(z) e, for e (..., d) and z (..., n_z)."""
        return self.apply_controller(e, self.decode(z))

    def apply_controller(self, e: torch.Tensor, u) -> torch.Tensor:
        """ê = e + U e for a decoded controller ``u`` (from :meth:`decode`), so a code held over
        many steps is decoded once; for additive controllers ê = e + b."""
        if self.controller == "additive":
            return e + u
        return linear_control(e, u)

    # --- non-causal pieces (training only) -------------------------------------------------
    def embed_sequence(self, e: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """s = f_emb(e_{1:T}) from a bidirectional GRU over the valid steps.

        ``embedder="sequence"``: one vector per sequence (B, n_s), from both directions' final
        states. ``embedder="per_step"``: one vector per step (B, T, n_s), from the forward
        direction's final state and the backward direction's state at t, a summary of
        ``e_{t..T}``: what happens next is then a local read-out for the encoder instead of an
        index into a summary of the whole episode."""
        if mask is not None:
            lengths = mask.sum(1).clamp(min=1).cpu()
            packed = nn.utils.rnn.pack_padded_sequence(
                e, lengths, batch_first=True, enforce_sorted=False
            )
            out, h = self.embedder(packed)
            if self.embedder_kind == "per_step":
                out, _ = nn.utils.rnn.pad_packed_sequence(
                    out, batch_first=True, total_length=e.shape[1]
                )
        else:
            out, h = self.embedder(e)
        if self.embedder_kind == "per_step":
            forward = h[0][:, None].expand(-1, e.shape[1], -1)
            return self.embed_out(torch.cat([forward, out[..., self.embedder.hidden_size :]], -1))
        return self.embed_out(torch.cat([h[0], h[1]], -1))

    def encode(
        self, e_t: torch.Tensor, h_prev: torch.Tensor, s: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ_t, log σ²_t) of the controller code's posterior; for categorical codes (the K
        logits, zeros)."""
        out = self.encoder(torch.cat([e_t, h_prev, s], -1))
        if self.code == "categorical":
            return out, torch.zeros_like(out)
        mu, logvar = out.chunk(2, -1)
        return mu, logvar.clamp(-8.0, 4.0)

    @property
    def discrete_codes(self) -> bool:
        """Whether a code is one of ``n_z`` one-hot vectors (``code="categorical"``)."""
        return self.code == "categorical"

    def forward(
        self,
        e: torch.Tensor,
        mask: torch.Tensor | None = None,
        *,
        sample: bool = True,
        generator: torch.Generator | None = None,
        gumbel_gate: bool = False,
    ) -> MetacontrollerOutput:
        """Teacher-forced pass over residual streams ``e`` (B, T, d) at the controlled layer.

        ``gumbel_gate`` (with ``sample``) relaxes β as a Gumbel-Sigmoid,
        β = σ((logit + log u - log(1 - u)) / τ) with u ~ U(0, 1), which the paper uses for the
        gridworld (§C.6): a gate that is not far from 0.5 becomes a coin flip, so training
        pushes its logits towards quasi-binary values. Without it, β = σ(logit / τ).

        Everything that does not depend on the previous code (history, encoder, the e- and
        h-dependent part of the switching unit) runs in parallel over time; only the gate's
        z-dependent part and the integration z_t = β z̃ + (1 - β) z_{t-1} loop over t.
        """
        if self.posterior == "hindsight":
            raise ValueError(
                "This metacontroller infers its codes in hindsight, from each segment's end "
                "state: call hindsight_forward(e, e_hindsight, switches) (or hindsight_elbo) "
                "with the segments' switching pattern."
            )
        # The metacontroller is small and its codes integrate over time: it always computes in
        # fp32, so a caller's bf16 autocast speeds up only the frozen base model around it.
        with torch.autocast(e.device.type, enabled=False):
            return self._forward(e.float(), mask, sample, generator, gumbel_gate)

    def _forward(
        self,
        e: torch.Tensor,
        mask: torch.Tensor | None,
        sample: bool,
        generator: torch.Generator | None,
        gumbel_gate: bool,
    ) -> MetacontrollerOutput:
        b, t, _ = e.shape
        s = self.embed_sequence(e, mask)
        h_prev = self.history_sequence(e)  # (B, T, n_h)
        if s.dim() == 2:  # one sequence embedding, shared by every step
            s = s[:, None].expand(b, t, -1)
        mu, logvar = self.encode(e, h_prev, s)
        if self.code == "categorical":
            z_tilde, kl = self._sample_categorical(mu, sample, generator)
        elif sample:
            noise = torch.randn(mu.shape, device=mu.device, dtype=mu.dtype, generator=generator)
            z_tilde = mu + (0.5 * logvar).exp() * noise
        else:
            z_tilde = mu
        noise = None
        if sample and gumbel_gate:
            u = torch.rand((b, t), device=e.device, dtype=e.dtype, generator=generator)
            u = u.clamp(1e-6, 1 - 1e-6)
            noise = u.log() - (-u).log1p()  # logistic = difference of two Gumbels
        beta, z = self._integrate(e, h_prev, z_tilde, noise)
        if self.code == "categorical":
            mu = mu.softmax(-1)  # reported as the posterior's class probabilities
        else:
            kl = kl_standard_normal(mu, logvar)
        return MetacontrollerOutput(self.control(e, z), beta, z, mu, logvar, kl)

    def _sample_categorical(
        self, logits: torch.Tensor, sample: bool, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A one-hot code z̃ from the posterior's K logits (straight-through Gumbel-softmax when
        sampling, the arg max otherwise) and KL(q ‖ Uniform(K)) per step."""
        log_q = logits.log_softmax(-1)
        kl = (log_q.exp() * (log_q + math.log(self.n_z))).sum(-1)
        if sample:
            u = torch.rand(logits.shape, device=logits.device, dtype=logits.dtype,
                           generator=generator).clamp(1e-9, 1 - 1e-9)  # fmt: skip
            soft = ((logits - (-u.log()).log()) / self.code_temperature).softmax(-1)
        else:
            soft = log_q.exp()
        hard = F.one_hot(soft.argmax(-1), self.n_z).to(soft.dtype)
        return hard - soft.detach() + soft, kl

    def _integrate(
        self,
        e: torch.Tensor,
        h_prev: torch.Tensor,
        z_tilde: torch.Tensor,
        gate_noise: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """β_t = switch(e_t, h_{t-1}, z_{t-1}) (β_1 = 1) and z_t = β_t z̃_t + (1 - β_t) z_{t-1};
        with ``gate_noise`` (B, T) the logit is logit + noise (Gumbel-Sigmoid)."""
        first, second = self.switch_net[0], self.switch_net[2]
        d_eh = self.d_model + self.n_h
        pre = F.linear(torch.cat([e, h_prev], -1), first.weight[:, :d_eh], first.bias)
        w_z = first.weight[:, d_eh:]
        b, t, _ = e.shape
        z = z_tilde[:, 0]
        betas, zs = [torch.ones(b, device=e.device, dtype=e.dtype)], [z]
        for i in range(1, t):
            logit = second(torch.relu(pre[:, i] + F.linear(z, w_z)))[:, 0]
            if gate_noise is not None:
                logit = logit + gate_noise[:, i]
            beta = torch.sigmoid(logit / self.gate_temperature)
            z = beta[:, None] * z_tilde[:, i] + (1 - beta[:, None]) * z
            betas.append(beta)
            zs.append(z)
        return torch.stack(betas, 1), torch.stack(zs, 1)

    def forward_with_codes(
        self, e: torch.Tensor, z_tilde: torch.Tensor, beta: torch.Tensor
    ) -> MetacontrollerOutput:
        """The same integration and control with z̃ (B, T, n_z) and β (B, T) given from outside
        (what internal RL does: the policy supplies z̃, the binarised switching unit β)."""
        b, t, _ = e.shape
        h, z = self.initial_state(b, e.device)
        zs = []
        for i in range(t):
            z = beta[:, i, None] * z_tilde[:, i] + (1 - beta[:, i, None]) * z
            zs.append(z)
        z = torch.stack(zs, 1)
        zeros = torch.zeros_like(z)
        return MetacontrollerOutput(self.control(e, z), beta, z, zeros, zeros, zeros[..., 0])

    def switching_trace(self, e: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """β_t for every step given the integrated codes z (B, T, n_z): the causal switching unit
        run over a sequence (β_1 = 1)."""
        h_prev = self.history_sequence(e)
        beta = self.switch(e[:, 1:], h_prev[:, 1:], z[:, :-1])
        return torch.cat([torch.ones_like(beta[:, :1]), beta], 1)

    # --- hindsight posterior (training only) ------------------------------------------------
    def hindsight_forward(
        self,
        e: torch.Tensor,
        e_hindsight: torch.Tensor,
        switches: torch.Tensor,
        mask: torch.Tensor | None = None,
        *,
        sample: bool = True,
        generator: torch.Generator | None = None,
    ) -> MetacontrollerOutput:
        """Teacher-forced pass of a ``posterior="hindsight"`` metacontroller.

        ``e`` (B, T, d): the residual stream at the controlled layer. ``e_hindsight``
        (B, T + 1, d): the stream at ``hindsight_layer`` for every observation *including the
        one after the last action*. ``switches`` (B, T) bool: where a new segment starts (the
        first step always does). Each segment's code z̃ is drawn from q(z̃ | e_hindsight at the
        step after the segment's last step, and the ``hindsight_window - 1`` steps after it) and
        held for the whole segment; ê = e + U(z) e.

        The returned ``beta`` is the metacontroller's own switching unit run on the same codes
        (β_t = σ(f_switch(e_t, h_{t-1}, z_{t-1}) / τ), β_1 = 1): :meth:`hindsight_elbo` trains
        it to reproduce ``switches``, which is what it does causally under internal RL.
        """
        with torch.autocast(e.device.type, enabled=False):
            e, e_hindsight = e.float(), e_hindsight.float()
            b, t, _ = e.shape
            if e_hindsight.shape[:2] != (b, t + 1):
                raise ValueError(
                    f"e_hindsight must be (B, T + 1, d) = ({b}, {t + 1}, d) for e of shape "
                    f"{tuple(e.shape)}: the stream of every observation including the last; "
                    f"got {tuple(e_hindsight.shape)}."
                )
            starts = switches.bool().clone()
            starts[:, 0] = True
            lengths = mask.sum(1) if mask is not None else torch.full((b,), t, device=e.device)
            if mask is not None:
                starts &= mask.bool()
            lengths = lengths.to(torch.long)
            end = segment_end_index(starts, lengths)
            d = e_hindsight.shape[-1]
            x = [
                e_hindsight.gather(
                    1, torch.minimum(end + j, lengths[:, None])[..., None].expand(-1, -1, d)
                )
                for j in range(self.hindsight_window)
            ]
            logits = self.encoder(torch.cat(x, -1))
            z_tilde, kl = self._sample_categorical(logits, sample, generator)
            # hold the code drawn at each segment's first step for the whole segment
            pos = torch.arange(t, device=e.device).expand(b, t)
            first = torch.where(starts, pos, 0).cummax(1).values  # (B, T) start of t's segment
            z = z_tilde.gather(1, first[..., None].expand(-1, -1, self.n_z))
            beta = self.switching_trace(e, z.detach())
            mu = logits.softmax(-1)
            return MetacontrollerOutput(self.control(e, z), beta, z, mu, torch.zeros_like(mu), kl)

    def hindsight_elbo(
        self,
        base,
        e: torch.Tensor,
        e_hindsight: torch.Tensor,
        switches: torch.Tensor,
        actions: torch.Tensor | None,
        mask: torch.Tensor,
        alpha: float,
        generator: torch.Generator | None = None,
        target_probs: torch.Tensor | None = None,
    ) -> ElboOutput:
        """The action NLL of the frozen ``base`` on ê (as :meth:`elbo`), plus α · KL(q ‖
        Uniform(n_z)) per step, plus the switching unit's binary cross-entropy to ``switches``
        (steps t > 1; it learns *when* a segment ends from the given pattern, the hindsight
        posterior *what* it was for). Arguments as in :meth:`hindsight_forward` and
        :meth:`elbo`."""
        out = self.hindsight_forward(e, e_hindsight, switches, mask, generator=generator)
        res = self._objective(base, out, actions, mask, alpha, target_probs)
        m = mask[:, 1:].float()
        target = switches[:, 1:].float()
        beta = out.beta[:, 1:].clamp(1e-6, 1 - 1e-6)
        bce = -(target * beta.log() + (1 - target) * (-beta).log1p())
        switch_bce = (bce * m).sum() / m.sum().clamp(min=1)
        return ElboOutput(res.loss + switch_bce, res.action_nll, res.kl, res.action_accuracy,
                          out, switch_bce)  # fmt: skip

    # --- objective -------------------------------------------------------------------------
    def elbo(
        self,
        base,
        e: torch.Tensor,
        actions: torch.Tensor | None,
        mask: torch.Tensor,
        alpha: float,
        generator: torch.Generator | None = None,
        gumbel_gate: bool = False,
        target_probs: torch.Tensor | None = None,
        e_control: torch.Tensor | None = None,
    ) -> ElboOutput:
        """Action NLL of the frozen ``base`` run on ê from layer ``self.layer`` up, plus
        α · KL at every valid step (mean over valid steps). ``gumbel_gate``: see
        :meth:`forward`. ``target_probs`` (B, T, n_actions), discrete actions only: replace
        the NLL of ``actions`` by the cross-entropy to this distribution (the expectation of
        that NLL when each action was drawn from it). ``e_control`` (B, T, d): steer this
        residual stream instead of ``e`` with the codes and gate inferred from ``e`` (the same
        episodes seen in another frame, with ``actions``/``target_probs`` in that frame), so a
        code has to mean the same in every frame."""
        out = self.forward(e, mask, generator=generator, gumbel_gate=gumbel_gate)
        if e_control is not None:
            out = replace(out, e_hat=self.control(e_control.float(), out.z))
        return self._objective(base, out, actions, mask, alpha, target_probs)

    def _objective(
        self,
        base,
        out: MetacontrollerOutput,
        actions: torch.Tensor | None,
        mask: torch.Tensor,
        alpha: float,
        target_probs: torch.Tensor | None,
    ) -> ElboOutput:
        """Action NLL of ``base`` run on ``out.e_hat`` from this layer up, plus α · KL."""
        if actions is not None and actions.device.type == "cpu":
            # checked here, where it costs no device sync; the distribution then skips torch's
            # own argument checks, which read values back from a GPU at every call
            base.check_action_range(actions)
        upper = base.run_layers(out.e_hat, self.layer, base.n_layers)
        dist = base.action_distribution(base.heads(upper), validate_args=False)
        if target_probs is None:
            nll = -dist.log_prob(actions)
        else:
            if not isinstance(dist, torch.distributions.Categorical):
                raise ValueError("target_probs needs a base model with discrete actions.")
            nll = -(target_probs * dist.logits.log_softmax(-1)).sum(-1)
        m = mask.to(nll.dtype)
        n = m.sum().clamp(min=1)
        action_nll = (nll * m).sum() / n
        kl = (out.kl * m).sum() / n
        acc = None
        if actions is not None and actions.dtype in (torch.int64, torch.int32):
            acc = ((dist.probs.argmax(-1) == actions).to(m.dtype) * m).sum() / n
        return ElboOutput(action_nll + alpha * kl, action_nll, kl, acc, out)


class SubgoalControllers(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="internal-rl-gym",
    tags=["internal-rl-gym", "reinforcement-learning", "hierarchical-rl", "subgoal-controllers"],
    repo_url="https://arxiv.org/abs/2512.20605",
):
    """Ground-truth linear controllers (paper §3.2, Fig. 4): one ``U^(g)`` per abstract subgoal,
    selected by the true label: ``ê = e + U^(g_t) e`` with ``U = A_g B_gᵀ`` (``rank > 0``) or full.

    Trained with the labels by ``internal-rl probe``; they are the *oracle* of internal RL (the
    ``InternalControl-Pinpad-Oracle-v0`` env acts with them, one abstract action per subgoal).

    :param d_model: width of the base model's residual stream.
    :param n_subgoals: number of abstract subgoals (one controller each).
    :param rank: rank of each ``U^(g)``; ``0`` = full ``d x d``.
    :param layer: the layer they were trained at (-1 = not recorded).
    :param base_model_name: name of the base model they were trained on.
    :param base_model_fingerprint: sha256 of that base model's weights.
    """

    def __init__(
        self,
        d_model: int,
        n_subgoals: int,
        rank: int = 16,
        layer: int = -1,
        base_model_name: str = "",
        base_model_fingerprint: str = "",
    ) -> None:
        super().__init__()
        self.rank, self.d_model, self.n_subgoals, self.layer = rank, d_model, n_subgoals, layer
        self.base_model_name = base_model_name
        self.base_model_fingerprint = base_model_fingerprint
        if rank > 0:
            self.a = nn.Parameter(torch.randn(n_subgoals, d_model, rank) * 0.01)
            self.b = nn.Parameter(torch.randn(n_subgoals, d_model, rank) / d_model**0.5)
        else:
            self.u = nn.Parameter(torch.zeros(n_subgoals, d_model, d_model))

    def decode(self, subgoal: torch.Tensor, gain: float = 1.0):
        """The controllers of integer subgoals (B,): a low-rank pair (A, B), each (B, d, r), or
        full (B, d, d) matrices, in the form :meth:`Metacontroller.apply_controller` takes."""
        g = subgoal.to(torch.long)
        if self.rank > 0:
            return self.a[g] * gain, self.b[g]
        return self.u[g] * gain

    def apply_controller(self, e: torch.Tensor, u) -> torch.Tensor:
        """ê = e + U e for controllers from :meth:`decode`."""
        return linear_control(e, u)

    def forward(self, e: torch.Tensor, subgoal: torch.Tensor) -> torch.Tensor:
        """ê for residuals e (..., d) and integer subgoal labels (...)."""
        # Every controller's update for every position, then pick the labelled one: gathering
        # a (d x d) matrix per position instead would allocate B*T*d*d floats.
        if self.rank > 0:
            delta = torch.einsum(
                "...kr,kdr->...kd", torch.einsum("...d,kdr->...kr", e, self.b), self.a
            )
        else:
            delta = torch.einsum("kij,...j->...ki", self.u, e)  # (..., K, d)
        g = subgoal.clamp(min=0).to(torch.long)
        index = g[..., None, None].expand(*g.shape, 1, self.d_model)
        return e + delta.gather(-2, index).squeeze(-2)


def kl_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, I)) summed over the last dim."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)


__all__ = [
    "Metacontroller",
    "MetacontrollerOutput",
    "SubgoalControllers",
    "kl_standard_normal",
    "segment_end_index",
]
