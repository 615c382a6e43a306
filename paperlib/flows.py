"""Planar normalizing flows: Rezende & Mohamed, "Variational Inference with Normalizing Flows" (ICML 2015).

Explained, derived and checked in the chapter ``chapters/generative/normalizing_flows.ipynb``.
The pure functions (``m``, ``u_hat``, ``planar``, ``planar_inverse``, ``free_energy``) are what
the chapter derives; ``PlanarFlow`` and ``NormalizingFlow`` wrap them as modules, ``fit_flows``
fits flows to the targets of ``paperlib.potentials``, and ``FlowVAE`` is
:class:`paperlib.vae.VAE` with a stack of planar flows between the encoder and the decoder. Every
flow returns ``(z, log_det)`` from ``forward`` and has an ``inverse``. All log-densities are in
nats, one value per example.
"""

from __future__ import annotations

import copy
import itertools

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from paperlib._checks import batch, float_tensor, positive_int
from paperlib.distributions import log_normal, log_standard_normal, nll, reparameterize
from paperlib.potentials import box_wall, energy
from paperlib.train import History, fit, one_thread
from paperlib.vae import VAE

# The tanh planar flow needs w^T u > -1 strictly; u_hat keeps w^T u_hat >= -1 + MARGIN, because in
# floating point the paper's m(x) = -1 + log(1 + e^x) rounds to exactly -1 for very negative x.
MARGIN = 1e-4


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


# ---------------------------------------------------------------- radial flows (eq. 14, appendix A.2)

def beta_hat(alpha: Tensor, beta: Tensor) -> Tensor:
    """The reparameterised beta_hat = -alpha + max(m(beta), MARGIN) > -alpha, with the radial
    flow's m(x) = log(1 + e^x) (appendix A.2; ``prop-flows-radial-invertible``).

    In floating point log(1 + e^x) underflows to 0 for very negative x, and -alpha + tiny rounds
    to -alpha: the MARGIN keeps beta_hat + alpha >= MARGIN, up to rounding, as ``u_hat`` does.
    """
    float_tensor("alpha", alpha)
    float_tensor("beta", beta)
    # beta_hat = -alpha + m(beta),  m(x) = log(1 + e^x) > 0
    return -alpha + torch.clamp_min(F.softplus(beta), MARGIN)


def radial(z: Tensor, z0: Tensor, alpha: Tensor | float, beta: Tensor | float, *,
           validate: bool = False) -> tuple[Tensor, Tensor]:
    """One radial flow f(z) = z + beta h(alpha, r)(z - z0) and log|det df/dz| per example
    (``lem-flows-radial-determinant``).

    Needs alpha > 0 and beta > -alpha, strictly (pass ``beta_hat(alpha, beta)``): below -alpha the
    map folds every ray through z0, and at beta = -alpha its Jacobian is singular at z0.
    ``validate=True`` raises a ``ValueError`` for such parameters; it reads them back from the
    device, so the flows, which pass ``beta_hat``, leave it off.
    """
    alpha, beta = torch.as_tensor(alpha, dtype=z.dtype), torch.as_tensor(beta, dtype=z.dtype)
    if validate and not bool((alpha > 0).all()):
        raise ValueError(f"alpha: expected alpha > 0, got {alpha.min().item():.4g}")
    if validate and not bool((beta > -alpha).all()):
        raise ValueError("beta: expected beta > -alpha for an invertible radial flow with a finite "
                         "log-determinant; pass beta_hat(alpha, beta)")
    d = z.shape[-1]
    diff = z - z0
    # r = |z - z0|
    r = torch.linalg.vector_norm(diff, dim=-1, keepdim=True)
    # h(alpha, r) = 1 / (alpha + r),  h'(alpha, r) = -1 / (alpha + r)^2
    h = 1 / (alpha + r)
    h_prime = -h**2
    # f(z) = z + beta h(alpha, r)(z - z0)
    z_new = z + beta * h * diff
    # log|det df/dz| = (d - 1) log(1 + beta h) + log(1 + beta h + beta h' r)   (eq. 14)
    log_det = (d - 1) * torch.log1p(beta * h) + torch.log1p(beta * h + beta * h_prime * r)
    return z_new, log_det.squeeze(-1)


def radial_inverse(z_new: Tensor, z0: Tensor, alpha: Tensor | float, beta: Tensor | float, *,
                   validate: bool = False) -> Tensor:
    """Solve z + beta h(alpha, r)(z - z0) = z_new for z (alpha > 0, beta > -alpha).

    The flow moves z along the ray from z0 through z, so z_new - z0 points the same way and only
    the radius changes: s = |z_new - z0| = r (1 + beta / (alpha + r)). That scalar equation is the
    quadratic r^2 + (alpha + beta - s) r - alpha s = 0, whose one root r >= 0 is computed in a form
    free of cancellation (``prop-flows-radial-invertible``). ``validate`` as in :func:`radial`.
    """
    alpha, beta = torch.as_tensor(alpha, dtype=z_new.dtype), torch.as_tensor(beta, dtype=z_new.dtype)
    if validate and not bool((alpha > 0).all()):
        raise ValueError(f"alpha: expected alpha > 0, got {alpha.min().item():.4g}")
    if validate and not bool((beta > -alpha).all()):
        raise ValueError("beta: expected beta > -alpha for an invertible radial flow; "
                         "pass beta_hat(alpha, beta)")
    diff = z_new - z0
    s = torch.linalg.vector_norm(diff, dim=-1, keepdim=True)
    # r^2 + B r - alpha s = 0 with B = alpha + beta - s: r = (-B + sqrt(B^2 + 4 alpha s)) / 2
    B = alpha + beta - s
    root = torch.sqrt(B**2 + 4 * alpha * s)
    r = torch.where(B > 0, 2 * alpha * s / (B + root), (root - B) / 2)
    # z - z0 = (z_new - z0) / (1 + beta h(alpha, r)) = (z_new - z0)(alpha + r) / (alpha + r + beta)
    return z0 + diff * (alpha + r) / (alpha + r + beta)


class RadialFlow(nn.Module):
    """f(z) = z + beta_hat h(alpha, r)(z - z0) with h = 1/(alpha + r), r = |z - z0|: z0 of shape
    [dim]; alpha = log(1 + e^a) > 0 from a free scalar a, and beta_hat from a free scalar beta.

    The paper takes alpha > 0 and beta_hat = -alpha + log(1 + e^beta) (appendix A.2); the softplus
    for alpha is this module's choice. ``NormalizingFlow(dim, K, layer=RadialFlow)`` stacks them.
    """

    def __init__(self, dim: int, init_scale: float = 0.1):
        super().__init__()
        positive_int("dim", dim)
        if not init_scale >= 0:
            raise ValueError(f"init_scale: expected a non-negative number, got {init_scale!r}")
        self.dim = dim
        self.z0 = nn.Parameter(init_scale * torch.randn(dim))
        self.a = nn.Parameter(init_scale * torch.randn(()))
        self.beta = nn.Parameter(init_scale * torch.randn(()))

    @property
    def alpha(self) -> Tensor:
        # alpha = log(1 + e^a) > 0
        return F.softplus(self.a)

    @property
    def beta_hat(self) -> Tensor:
        return beta_hat(self.alpha, self.beta)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        batch("z", z, self.dim)
        return radial(z, self.z0, self.alpha, self.beta_hat)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """(f^{-1}(z), log|det d f^{-1}/dz|) = (z0, -log|det df/dz0|)."""
        batch("z", z, self.dim)
        z_back = radial_inverse(z, self.z0, self.alpha, self.beta_hat)
        return z_back, -radial(z_back, self.z0, self.alpha, self.beta_hat)[1]


class NormalizingFlow(nn.Module):
    """q_K: a standard-normal base q_0 = N(0, I) pushed through K flows (planar unless ``layer``
    names another flow with the same constructor, ``layer(dim, init_scale)``)."""

    def __init__(self, dim: int, K: int, init_scale: float = 0.1, layer: type[nn.Module] = PlanarFlow):
        super().__init__()
        if not isinstance(K, int) or isinstance(K, bool) or K < 0:
            raise ValueError(f"K: expected a non-negative integer number of flows, got {K!r}")
        positive_int("dim", dim)
        self.dim = dim
        self.flows = nn.ModuleList(layer(dim, init_scale) for _ in range(K))

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
        return log_standard_normal(z0)

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
    U = energy(k, zK) + (box_wall(zK) if wall else 0.0)
    # F = E[ln q_K(z_K)] + beta E[U(z_K)],  ln q_K(z_K) = ln q_0(z_0) - sum_k ln|det J_k|
    return (log_q + beta * U).mean()


def fit_flows(flows: list[NormalizingFlow], targets: list[int | str], steps: int,
              batch_size: int = 256, lr: float = 3e-2, anneal_steps: int | None = None,
              generator: torch.Generator | None = None, wall: bool = True) -> History:
    """Fit ``flows[i]`` to exp(-U_{targets[i]}) with Adam for ``steps`` steps, all at once.

    Each flow minimises its own annealed free energy (:func:`free_energy` with beta_t from
    :func:`annealed_beta`). The flows share one architecture and no parameters, and Adam acts
    elementwise, so fitting them side by side, with ``torch.func.vmap`` over one flow's forward,
    is the same as fitting them one by one, only faster. The fitted parameters are copied back
    into ``flows``; the history records the sum of the free energies.
    """
    positive_int("steps", steps)
    positive_int("batch_size", batch_size)
    if not flows or len(flows) != len(targets):
        raise ValueError(f"targets: expected one target per flow ({len(flows)}), got {targets!r}")
    if len({str(flow) for flow in flows}) != 1:
        raise ValueError("flows: expected flows of one architecture (same dim, K and layer type)")
    stacked = _Stacked(flows)
    anneal = anneal_steps if anneal_steps is not None else max(1, steps // 2)
    step = itertools.count()

    def summed_free_energy() -> Tensor:
        z0 = torch.randn(len(flows), batch_size, flows[0].dim, generator=generator)
        zK, log_det = stacked(z0)
        U = torch.stack([energy(k, z) + (box_wall(z) if wall else 0.0) for k, z in zip(targets, zK)])
        # ln q_K(z_K) = ln q_0(z_0) - sum_k ln|det J_k|
        log_q = log_standard_normal(z0) - log_det
        # each flow's F = E[ln q_K(z_K)] + beta_t E[U(z_K)], summed over the independent flows
        return (log_q + annealed_beta(next(step), anneal) * U).mean(1).sum()

    with one_thread():
        history = fit(stacked, summed_free_energy, None, torch.optim.Adam(stacked.parameters(), lr=lr),
                      steps=steps, progress=False)
    stacked.copy_to(flows)
    return history


class _Stacked(nn.Module):
    """P flows of one architecture as one module: their parameters stacked along a new first
    dimension, and ``forward`` maps z [P, N, d] through flow p for each p with ``vmap``."""

    def __init__(self, flows: list[NormalizingFlow]):
        super().__init__()
        params, _ = stack_module_state(flows)
        self.names = list(params)
        self.stacked = nn.ParameterList(nn.Parameter(p.detach().clone()) for p in params.values())
        self.skeleton = [copy.deepcopy(flows[0]).to("meta")]  # a list: not a submodule

    def forward(self, z0: Tensor) -> tuple[Tensor, Tensor]:
        def one_flow(params: list[Tensor], z: Tensor) -> tuple[Tensor, Tensor]:
            return functional_call(self.skeleton[0], dict(zip(self.names, params)), (z,))

        return vmap(one_flow)(list(self.stacked), z0)

    @torch.no_grad()
    def copy_to(self, flows: list[NormalizingFlow]) -> None:
        for p, flow in enumerate(flows):
            state = flow.state_dict()
            for name, value in zip(self.names, self.stacked):
                state[name].copy_(value[p])
            flow.eval()


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
        """(decoded at z_K, mu, logvar, z_K): the shape of :meth:`paperlib.vae.VAE.forward`."""
        mu, logvar = self.encode(x)
        zK, _ = self.flow(reparameterize(mu, logvar, generator))
        return self.decode(zK), mu, logvar, zK

    def posterior(self, x: Tensor, generator: torch.Generator | None = None
                  ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(decoded at z_K, z_K, ln q_0(z_0|x), sum of log-dets) for one z_0 ~ q_0(z|x)."""
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
        decoded, zK, log_q0, log_det = self.posterior(flat, generator)
        # ln q_K(z_K|x) = ln q_0(z_0|x) - sum_k ln|det J_k|
        log_qK = log_q0 - log_det
        # -F(x) = ln p(x|z_K) + ln p(z_K) - ln q_K(z_K|x)
        return -nll(decoded, flat, self.likelihood, self.var) + log_standard_normal(zK) - log_qK


# Experiment sizes. "quick": a fixed number of Adam steps per Fig. 3 fit that keeps the chapter
# under a minute on two CPU cores; "paper": the paper's 500,000 updates per fit and its
# 10,000-step annealing (it used RMSprop at lr 1e-5; we keep Adam), and its MNIST flow VAE
# (40 latents, 10 flows; a GPU).
SCALES = {
    "quick": dict(steps=500, batch_size=256, lr=3e-2, anneal_steps=250, kl_samples=10_000,
                  vae_epochs=3, vae_hidden=200, vae_z_dim=20, vae_K=10, vae_lr=1e-3),
    "paper": dict(steps=500_000, batch_size=256, lr=1e-4, anneal_steps=10_000, kl_samples=100_000,
                  vae_epochs=200, vae_hidden=400, vae_z_dim=40, vae_K=10, vae_lr=1e-3),
}
