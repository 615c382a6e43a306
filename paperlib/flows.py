"""Planar normalizing flows: Rezende & Mohamed, "Variational Inference with Normalizing Flows" (ICML 2015).

Explained, derived and checked in the chapter ``chapters/generative/normalizing_flows.ipynb``.
The pure functions (``m``, ``u_hat``, ``planar``, ``planar_inverse``, ``potential``,
``log_normalizer``, ``free_energy``, ``kl_box``) are what the chapter derives; ``PlanarFlow`` and
``NormalizingFlow`` wrap them as modules, and ``FlowVAE`` is :class:`paperlib.vae.VAE` with a stack
of planar flows between the encoder and the decoder. Every flow returns ``(z, log_det)`` from
``forward`` and has an ``inverse``. All log-densities are in nats, one value per example.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from paperlib._checks import batch, positive_int, same_shape
from paperlib.vae import VAE, bernoulli_nll, gaussian_nll, log_normal, reparameterize

POTENTIALS = (1, 2, 3, 4)
# The tanh planar flow needs w^T u > -1 strictly; u_hat keeps w^T u_hat >= -1 + MARGIN, because in
# floating point the paper's m(x) = -1 + log(1 + e^x) rounds to exactly -1 for very negative x.
MARGIN = 1e-4
BOX = 4.0  # U2-U4 are normalisable only on a bounded region: the target lives on (-BOX, BOX)^2


def m(x: Tensor) -> Tensor:
    """m(x) = -1 + log(1 + e^x), the paper's map onto (-1, inf) (appendix A)."""
    return F.softplus(x) - 1


def u_hat(u: Tensor, w: Tensor) -> Tensor:
    """The reparameterised u with w^T u_hat = max(m(w^T u), -1 + MARGIN) > -1: an invertible flow
    (``prop-flows-u-hat``).

    Works on the last dimension, so ``u`` and ``w`` may carry leading batch dimensions.
    """
    if u.shape[-1] != w.shape[-1]:
        raise ValueError(f"w: expected the last dimension of u ({u.shape[-1]}), got {w.shape[-1]}")
    wu = (w * u).sum(-1, keepdim=True)
    ww = (w * w).sum(-1, keepdim=True)
    # m(w^T u) > -1 exactly, but -1 + softplus(x) rounds to -1 once softplus(x) < eps/2 (x < -17 in
    # float32): keep w^T u_hat >= -1 + MARGIN, so that log|det| >= log(MARGIN) stays finite
    target = torch.clamp_min(m(wu), -1 + MARGIN)
    # u_hat = u + (m(w^T u) - w^T u) w / ||w||^2      (w = 0 is a translation: keep u)
    step = (target - wu) * w / torch.where(ww > 0, ww, torch.ones_like(ww))
    return torch.where(ww > 0, u + step, u)


def planar(z: Tensor, u: Tensor, w: Tensor, b: Tensor | float, *, validate: bool = False
           ) -> tuple[Tensor, Tensor]:
    """One planar flow f(z) = z + u tanh(w^T z + b) and log|det df/dz| per example
    (``lem-flows-determinant``).

    ``u`` must satisfy w^T u > -1, strictly (pass ``u_hat(u, w)``, which guarantees it): below -1
    the map folds, and at w^T u = -1 its Jacobian is singular where w^T z + b = 0 (log det = -inf
    there). ``validate=True`` raises a ``ValueError`` for such a ``u``; it reads w^T u back from
    the device, so the flows, which pass ``u_hat``, leave it off.
    """
    wu = (w * u).sum(-1)
    if validate and bool((wu <= -1).any()):
        raise ValueError(f"u: expected w^T u > -1 for an invertible planar flow with a finite "
                         f"log-determinant, got {wu.min().item():.4g}; pass u_hat(u, w)")
    # a = w^T z + b
    a = (z * w).sum(-1, keepdim=True) + b
    h = torch.tanh(a)
    # f(z) = z + u h(w^T z + b)
    z_new = z + u * h
    # psi(z) = h'(w^T z + b) w,   h' = 1 - tanh^2
    # log|det df/dz| = log|1 + u^T psi(z)| = log(1 + (1 - h^2) w^T u),   1 + (1 - h^2) w^T u >= 1 + min(w^T u, 0) > 0
    log_det = torch.log1p((1 - h.squeeze(-1) ** 2) * wu)
    return z_new, log_det


def planar_inverse(z_new: Tensor, u: Tensor, w: Tensor, b: Tensor | float,
                   iterations: int = 100, *, validate: bool = False) -> Tensor:
    """Solve z + u tanh(w^T z + b) = z_new for z (u with w^T u > -1; ``prop-flows-invertible``).

    Along w the flow is the scalar map a -> a + (w^T u) tanh(a + b), strictly increasing, so
    a = w^T z is found by bisection on an interval of width 2|w^T u| around w^T z_new.
    ``validate=True`` raises a ``ValueError`` when w^T u <= -1 (see :func:`planar`).
    """
    wu = (w * u).sum(-1)
    if validate and bool((wu <= -1).any()):
        raise ValueError("u: expected w^T u > -1 for an invertible planar flow; pass u_hat(u, w)")
    target = (z_new * w).sum(-1)
    spread = wu.abs().expand_as(target) + 1e-12
    lo, hi = target - spread, target + spread
    for _ in range(iterations):
        mid = (lo + hi) / 2
        above = mid + wu * torch.tanh(mid + b) > target
        hi, lo = torch.where(above, mid, hi), torch.where(above, lo, mid)
    a = (lo + hi) / 2
    # z = z_new - u tanh(w^T z + b)
    return z_new - u * torch.tanh(a + b).unsqueeze(-1)


class PlanarFlow(nn.Module):
    """f(z) = z + u_hat h(w^T z + b) with h = tanh; u and w of shape [dim], b a scalar."""

    def __init__(self, dim: int, init_scale: float = 0.1):
        super().__init__()
        positive_int("dim", dim)
        if not init_scale >= 0:
            raise ValueError(f"init_scale: expected a non-negative number, got {init_scale!r}")
        self.dim = dim
        self.u = nn.Parameter(init_scale * torch.randn(dim))
        self.w = nn.Parameter(init_scale * torch.randn(dim))
        self.b = nn.Parameter(torch.zeros(()))

    @property
    def u_hat(self) -> Tensor:
        return u_hat(self.u, self.w)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        batch("z", z, self.dim)
        return planar(z, self.u_hat, self.w, self.b)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """(f^{-1}(z), log|det d f^{-1}/dz|) = (z0, -log|det df/dz0|)."""
        batch("z", z, self.dim)
        z0 = planar_inverse(z, self.u_hat, self.w, self.b)
        return z0, -planar(z0, self.u_hat, self.w, self.b)[1]


class NormalizingFlow(nn.Module):
    """q_K: a standard-normal base q_0 = N(0, I) pushed through K planar flows."""

    def __init__(self, dim: int, K: int, init_scale: float = 0.1):
        super().__init__()
        if not isinstance(K, int) or isinstance(K, bool) or K < 0:
            raise ValueError(f"K: expected a non-negative integer number of flows, got {K!r}")
        positive_int("dim", dim)
        self.dim = dim
        self.flows = nn.ModuleList(PlanarFlow(dim, init_scale) for _ in range(K))

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """z_K = f_K o ... o f_1(z_0) and sum_k log|det df_k/dz_{k-1}| (shape [N])."""
        batch("z", z, self.dim)
        log_det = torch.zeros(len(z), dtype=z.dtype, device=z.device)
        for flow in self.flows:
            z, step = flow(z)
            # log-determinants of a composition add
            log_det = log_det + step
        return z, log_det

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """z_0 = f_1^{-1} o ... o f_K^{-1}(z_K) and log|det dz_0/dz_K|."""
        batch("z", z, self.dim)
        log_det = torch.zeros(len(z), dtype=z.dtype, device=z.device)
        for flow in reversed(self.flows):
            z, step = flow.inverse(z)
            log_det = log_det + step
        return z, log_det

    def base_log_prob(self, z0: Tensor) -> Tensor:
        zero = torch.zeros_like(z0)
        return log_normal(z0, zero, zero)

    def sample(self, n: int, generator: torch.Generator | None = None
               ) -> tuple[Tensor, Tensor, Tensor]:
        """(z_0, z_K, ln q_K(z_K)) for n draws z_0 ~ q_0."""
        positive_int("n", n)
        like = next(self.parameters(), torch.zeros(()))
        z0 = torch.randn(n, self.dim, generator=generator, dtype=like.dtype,
                         device=generator.device if generator is not None else like.device)
        z0 = z0.to(like.device)
        zK, log_det = self(z0)
        # ln q_K(z_K) = ln q_0(z_0) - sum_k ln|det df_k/dz_{k-1}|
        return z0, zK, self.base_log_prob(z0) - log_det

    def log_prob(self, z: Tensor) -> Tensor:
        """ln q_K(z), through the inverse: ln q_0(f^{-1}(z)) + ln|det d f^{-1}/dz|."""
        z0, log_det = self.inverse(z)
        return self.base_log_prob(z0) + log_det


# ---------------------------------------------------------------- the paper's Table 1 targets

def potential(k: int, z: Tensor) -> Tensor:
    """The energy U_k(z) of Table 1 (k = 1..4); the target density is exp(-U_k(z)) / Z."""
    if k not in POTENTIALS:
        raise ValueError(f"k: expected one of {POTENTIALS}, got {k!r}")
    batch("z", z, 2)
    z1, z2 = z[:, 0], z[:, 1]
    # w1(z) = sin(2 pi z1 / 4)
    w1 = torch.sin(2 * math.pi * z1 / 4)
    if k == 1:
        # U1 = 1/2 ((||z|| - 2) / 0.4)^2 - ln(e^{-1/2 ((z1 - 2)/0.6)^2} + e^{-1/2 ((z1 + 2)/0.6)^2})
        ring = 0.5 * ((z.norm(dim=1) - 2) / 0.4) ** 2
        lobes = torch.stack([-0.5 * ((z1 - 2) / 0.6) ** 2, -0.5 * ((z1 + 2) / 0.6) ** 2])
        return ring - torch.logsumexp(lobes, dim=0)
    if k == 2:
        # U2 = 1/2 ((z2 - w1(z)) / 0.4)^2
        return 0.5 * ((z2 - w1) / 0.4) ** 2
    if k == 3:
        # w2(z) = 3 exp(-1/2 ((z1 - 1) / 0.6)^2)
        w2 = 3 * torch.exp(-0.5 * ((z1 - 1) / 0.6) ** 2)
        # U3 = -ln(e^{-1/2 ((z2 - w1)/0.35)^2} + e^{-1/2 ((z2 - w1 + w2)/0.35)^2})
        terms = torch.stack([-0.5 * ((z2 - w1) / 0.35) ** 2, -0.5 * ((z2 - w1 + w2) / 0.35) ** 2])
        return -torch.logsumexp(terms, dim=0)
    # w3(z) = 3 sigma((z1 - 1) / 0.3)
    w3 = 3 * torch.sigmoid((z1 - 1) / 0.3)
    # U4 = -ln(e^{-1/2 ((z2 - w1)/0.4)^2} + e^{-1/2 ((z2 - w1 + w3)/0.35)^2})
    terms = torch.stack([-0.5 * ((z2 - w1) / 0.4) ** 2, -0.5 * ((z2 - w1 + w3) / 0.35) ** 2])
    return -torch.logsumexp(terms, dim=0)


def standard_normal_energy(z: Tensor) -> Tensor:
    """U(z) = ||z||^2 / 2: the sanity-check target N(0, I), Z = 2 pi in two dimensions."""
    return 0.5 * z.pow(2).sum(-1)


def _energy(k: int | str, z: Tensor) -> Tensor:
    return standard_normal_energy(z) if k == "normal" else potential(k, z)


def box_wall(z: Tensor, box: float = BOX, stiffness: float = 50.0) -> Tensor:
    """A soft wall, sum_j stiffness * relu(|z_j| - box)^2, zero inside the box."""
    if not box > 0:
        raise ValueError(f"box: expected a positive half-width, got {box!r}")
    if not stiffness >= 0:
        raise ValueError(f"stiffness: expected a non-negative number, got {stiffness!r}")
    return stiffness * F.relu(z.abs() - box).pow(2).sum(-1)


def log_normalizer(k: int | str, box: float = BOX, points: int = 801) -> float:
    """ln Z = ln of the integral of exp(-U_k) over (-box, box)^2, by the midpoint rule.

    ``k`` is 1..4 or ``"normal"``. Computed in float64 with a ``points`` x ``points`` grid.
    """
    if not box > 0:
        raise ValueError(f"box: expected a positive half-width, got {box!r}")
    if not isinstance(points, int) or points < 2:
        raise ValueError(f"points: expected an integer >= 2, got {points!r}")
    h = 2 * box / points
    axis = torch.linspace(-box + h / 2, box - h / 2, points, dtype=torch.float64)
    grid = torch.cartesian_prod(axis, axis)
    # ln Z ~ ln sum_cells exp(-U(z_cell)) h^2
    return (torch.logsumexp(-_energy(k, grid), dim=0) + 2 * math.log(h)).item()


def annealed_beta(step: int, anneal_steps: int) -> float:
    """beta_t = min(1, 0.01 + t / anneal_steps): the paper uses anneal_steps = 10,000."""
    if not anneal_steps > 0:
        raise ValueError(f"anneal_steps: expected a positive number of steps, got {anneal_steps!r}")
    return min(1.0, 0.01 + step / anneal_steps)


def free_energy(flow: NormalizingFlow, k: int | str, n: int, beta: float = 1.0,
                generator: torch.Generator | None = None, wall: bool = True) -> Tensor:
    """Monte Carlo estimate of F = E_q0[ln q0(z0)] - E_q0[sum ln|det|] + beta E_q0[U(z_K)].

    With beta = 1 this is KL(q_K || p) - ln Z. ``wall`` adds :func:`box_wall` to U, confining
    q_K to the box where the target lives.
    """
    if not beta >= 0:
        raise ValueError(f"beta: expected a non-negative inverse temperature, got {beta!r}")
    z0, zK, log_q = flow.sample(n, generator)
    energy = _energy(k, zK) + (box_wall(zK) if wall else 0.0)
    # F = E[ln q_K(z_K)] + beta E[U(z_K)],  ln q_K(z_K) = ln q_0(z_0) - sum_k ln|det J_k|
    return (log_q + beta * energy).mean()


@torch.no_grad()
def kl_box(flow: NormalizingFlow, k: int | str, n: int = 10_000, box: float = BOX,
           log_z: float | None = None, generator: torch.Generator | None = None
           ) -> tuple[float, float]:
    """KL(q_B || p_B) in nats and the mass of q_K outside the box, (kl, outside).

    p_B = exp(-U) / Z_B on B = (-box, box)^2, and q_B is q_K restricted to B and renormalised:
    with M = q_K(B), KL(q_B || p_B) = E_q[1_B (ln q + U)] / M + ln Z_B - ln M  (>= 0).
    """
    if log_z is None:
        log_z = log_normalizer(k, box)
    with one_thread():
        _, zK, log_q = flow.sample(n, generator)
    inside = (zK.abs() < box).all(dim=1)
    mass = inside.double().mean().item()
    if mass == 0:
        return math.inf, 1.0
    terms = torch.where(inside, log_q + _energy(k, zK), torch.zeros_like(log_q))
    kl = terms.double().sum().item() / inside.sum().item() + log_z - math.log(mass)
    return kl, 1.0 - mass


def stack_forward(z: Tensor, u_hat: Tensor, w: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """P independent stacks of K planar flows at once: z [P, N, d], u_hat and w [P, K, d], b [P, K].

    The same maps as K calls of :func:`planar` per stack (``u_hat`` already reparameterised),
    with the log-determinants summed in one go at the end. Returns z_K [P, N, d] and the sum
    of log-determinants [P, N].
    """
    same_shape(u_hat=u_hat, w=w)  # a broadcast u_hat would give wrong flows without an error
    wu = (w * u_hat).sum(-1)
    hs = []
    for k in range(u_hat.shape[1]):
        # h = tanh(w_k^T z + b_k);  z <- z + u_hat_k h
        h = torch.tanh(torch.baddbmm(b[:, k, None, None], z, w[:, k, :, None]))
        z = torch.addcmul(z, h, u_hat[:, k, None, :])
        hs.append(h)
    h = torch.cat(hs, dim=-1)
    # sum_k ln(1 + (1 - h_k^2) w_k^T u_hat_k)
    return z, torch.log1p((1 - h * h) * wu[:, None, :]).sum(-1)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one CPU thread, then restore the setting: for tiny tensors, waking a
    second thread per operation costs far more than it saves (and much more on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def fit_potentials(pairs: list[tuple[int | str, int]], steps: int, batch: int = 256,
                   lr: float = 3e-2, anneal_steps: int | None = None, seed: int = 0,
                   wall: bool = True, init_scale: float = 0.1) -> list[NormalizingFlow]:
    """Fit one q_K per (k, K) pair to exp(-U_k), all at once, for a fixed number of Adam steps.

    Each fit minimises its own annealed free energy ``free_energy`` (beta_t from
    :func:`annealed_beta`); the pairs share no parameters and Adam acts elementwise, so training
    them in one batch is the same as training them one by one, only faster. Shorter stacks are
    padded with identity layers (u_hat = 0). Returns one :class:`NormalizingFlow` per pair.
    """
    positive_int("steps", steps)
    if not pairs or any(K < 1 for _, K in pairs):
        raise ValueError(f"pairs: expected (k, K) pairs with K >= 1, got {pairs!r}")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    flows = [NormalizingFlow(2, K, init_scale) for _, K in pairs]
    P, K_max = len(pairs), max(K for _, K in pairs)
    u = torch.zeros(P, K_max, 2)
    w = torch.ones(P, K_max, 2)
    b = torch.zeros(P, K_max)
    for p, flow in enumerate(flows):
        for k, layer in enumerate(flow.flows):
            u[p, k], w[p, k], b[p, k] = layer.u.detach(), layer.w.detach(), layer.b.detach()
    mask = torch.tensor([[float(k < K) for k in range(K_max)] for _, K in pairs]).unsqueeze(-1)
    u, w, b = (t.requires_grad_() for t in (u, w, b))
    optimizer = torch.optim.Adam([u, w, b], lr=lr)
    anneal = anneal_steps if anneal_steps is not None else max(1, steps // 2)
    targets = sorted({k for k, _ in pairs}, key=str)
    rows = {k: [p for p, (kp, _) in enumerate(pairs) if kp == k] for k in targets}
    with one_thread():
        _fit_loop(u, w, b, mask, pairs, rows, optimizer, steps, batch, anneal, generator, wall)
    with torch.no_grad():
        for p, flow in enumerate(flows):
            for k, layer in enumerate(flow.flows):
                layer.u.copy_(u[p, k]), layer.w.copy_(w[p, k]), layer.b.copy_(b[p, k])
    return [flow.eval() for flow in flows]


def _fit_loop(u, w, b, mask, pairs, rows, optimizer, steps, batch, anneal, generator, wall):
    P = len(pairs)
    for t in range(steps):
        z0 = torch.randn(P, batch, 2, generator=generator)
        zK, log_det = stack_forward(z0, u_hat(u, w) * mask, w, b)
        energy = torch.empty(P, batch)
        for k, index in rows.items():
            zk = zK[index].reshape(-1, 2)
            e = _energy(k, zk) + (box_wall(zk) if wall else 0.0)
            energy[index] = e.reshape(len(index), batch)
        log_q = -0.5 * z0.pow(2).sum(-1) - math.log(2 * math.pi) - log_det
        # each fit's F = E[ln q_K(z_K)] + beta_t E[U(z_K)], summed over the independent fits
        loss = (log_q + annealed_beta(t, anneal) * energy).mean(1).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


# ---------------------------------------------------------------- a VAE with flows (section 4)

class FlowVAE(VAE):
    """:class:`paperlib.vae.VAE` with K planar flows on the posterior sample: q_K(z|x).

    The flows' parameters are shared across x (the paper outputs them from the encoder);
    the encoder gives q_0(z|x) = N(mu, diag sigma^2), and z_K = f_K o ... o f_1(z_0).
    """

    def __init__(self, x_dim: int = 784, hidden: int = 400, z_dim: int = 20, K: int = 10,
                 likelihood: str = "bernoulli", var: float = 1.0):
        super().__init__(x_dim, hidden, z_dim, likelihood, var)
        self.flow = NormalizingFlow(z_dim, K)

    def forward(self, x: Tensor, generator: torch.Generator | None = None
                ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(decoded at z_K, z_K, ln q_0(z_0|x), sum of log-dets)."""
        mu, logvar = self.encode(x)
        z0 = reparameterize(mu, logvar, generator)
        zK, log_det = self.flow(z0)
        return self.decode(zK), zK, log_normal(z0, mu, logvar), log_det

    def elbo(self, x: Tensor, kl: str = "mc", generator: torch.Generator | None = None) -> Tensor:
        """One-sample estimate per example of -F(x) = E[ln p(x, z_K) - ln q_K(z_K|x)].

        Every term is per example (shape [N]); only ``kl="mc"`` exists once flows are added.
        """
        if kl != "mc":
            raise ValueError(f"kl: a flow posterior has no closed-form KL; expected 'mc', got {kl!r}")
        flat = self._input(x)
        decoded, zK, log_q0, log_det = self(flat, generator)
        log_px_z = (-bernoulli_nll(decoded, flat) if self.likelihood == "bernoulli"
                    else -gaussian_nll(decoded, flat, self.var))
        zero = torch.zeros_like(zK)
        # ln q_K(z_K|x) = ln q_0(z_0|x) - sum_k ln|det J_k|
        log_qK = log_q0 - log_det
        # -F(x) = ln p(x|z_K) + ln p(z_K) - ln q_K(z_K|x)
        return log_px_z + log_normal(zK, zero, zero) - log_qK



# Experiment sizes. "quick": a fixed number of Adam steps per Fig. 3 fit that keeps the chapter
# under a minute on two CPU cores; "paper": the paper's 500,000 updates per fit and its
# 10,000-step annealing (it used RMSprop at lr 1e-5; we keep Adam), and its MNIST flow VAE
# (40 latents, 10 flows; a GPU).
SCALES = {
    "quick": dict(steps=500, batch=256, lr=3e-2, anneal_steps=250, kl_samples=10_000,
                  vae_epochs=3, vae_hidden=200, vae_z_dim=20, vae_K=10, vae_lr=1e-3),
    "paper": dict(steps=500_000, batch=256, lr=1e-4, anneal_steps=10_000, kl_samples=100_000,
                  vae_epochs=200, vae_hidden=400, vae_z_dim=40, vae_K=10, vae_lr=1e-3),
}
