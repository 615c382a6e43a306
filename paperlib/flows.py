"""Planar normalizing flows: Rezende & Mohamed, "Variational Inference with Normalizing Flows" (ICML 2015).

Explained, derived and checked in the chapter ``chapters/generative/normalizing_flows.ipynb``.
The pure functions (``m``, ``u_hat``, ``planar``, ``planar_inverse``) are what the chapter derives;
``FlowLayer`` is what every flow layer provides (the radial flows of ``paperlib.radial_flows``
too), ``Flow`` is a stack of layers (``paperlib.maf.MAF`` is one), ``PlanarFlow`` and
``NormalizingFlow`` wrap the maths as modules, and ``FlowVAE`` is
:class:`paperlib.vae.VAE` with a stack of planar flows between the encoder and the decoder. Every
flow returns ``(z, log_det)`` from ``forward`` and has an ``inverse``. All log-densities are in
nats, one value per example. Fitting flows to the paper's Table 1 targets is
``paperlib.potentials``.
"""

from __future__ import annotations


from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from paperlib._checks import batch, float_tensor, positive_int
from paperlib.distributions import log_normal, log_standard_normal, nll, reparameterize
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


class FlowLayer(nn.Module):
    """One layer of a flow on R^d: ``forward(z)`` returns (f(z), log|det df/dz|) per example and
    ``inverse(z)`` returns (f^{-1}(z), log|det df^{-1}/dz|).

    A layer names two pure functions of this package, ``f(z, *coefficients)`` -> (f(z), log_det)
    and ``f_inverse(z, *coefficients)`` -> f^{-1}(z), and returns its constrained coefficients from
    ``coefficients()``; the checks and the inverse's log-determinant are here."""

    f: staticmethod
    f_inverse: staticmethod

    def __init__(self, d: int, init_scale: float = 0.1):
        super().__init__()
        positive_int("d", d)
        if not init_scale >= 0:
            raise ValueError(f"init_scale: expected a non-negative number, got {init_scale!r}")
        self.d = d

    def coefficients(self) -> tuple[Tensor, ...]:
        raise NotImplementedError

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return self.f(batch("z", z, self.d), *self.coefficients())

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """(f^{-1}(z), log|det d f^{-1}/dz|) = (z_0, -log|det df/dz_0|) at z_0 = f^{-1}(z)."""
        coefficients = self.coefficients()
        z_0 = self.f_inverse(batch("z", z, self.d), *coefficients)
        return z_0, -self.f(z_0, *coefficients)[1]


class PlanarFlow(FlowLayer):
    """f(z) = z + u_hat h(w^T z + b) with h = tanh; u and w of shape [d], b a scalar."""

    f, f_inverse = staticmethod(planar), staticmethod(planar_inverse)

    def __init__(self, d: int, init_scale: float = 0.1):
        super().__init__(d, init_scale)
        # u, w ~ N(0, init_scale^2 I) (u drawn first), b = 0
        self.u, self.w = (nn.Parameter(init_scale * torch.randn(d)) for _ in range(2))
        self.b = nn.Parameter(torch.zeros(()))

    @property
    def u_hat(self) -> Tensor:
        return u_hat(self.u, self.w)

    def coefficients(self) -> tuple[Tensor, Tensor, Tensor]:
        """(u_hat, w, b): u constrained so that w^T u_hat > -1 and f is invertible (appendix A.1)."""
        return self.u_hat, self.w, self.b


def compose(layers: Iterable[nn.Module], z: Tensor, inverse: bool = False) -> tuple[Tensor, Tensor]:
    """z through ``layers`` in order, f_K o ... o f_1, or through their inverses from the last layer
    back, with the sum of the log-determinants: each layer returns (z, log_det) from ``forward`` and
    from ``inverse``, as every flow of the book does."""
    float_tensor("z", z, 2)
    log_det = torch.zeros(len(z), dtype=z.dtype, device=z.device)
    for layer in (reversed(list(layers)) if inverse else layers):
        z, step = layer.inverse(z) if inverse else layer(z)
        # log-determinants of a composition add
        log_det = log_det + step
    return z, log_det


class Flow(nn.Module):
    """A flow on R^d made of ``layers`` (each returns (z, log_det) from ``forward`` and
    ``inverse``): ``forward`` composes them, ``inverse`` undoes them from the last layer back."""

    # what the inputs of forward and of inverse are called (in errors)
    argument_names = ("z", "z")

    def __init__(self, d: int, layers: Iterable[nn.Module]):
        super().__init__()
        positive_int("d", d)
        self.d = d
        self.layers = nn.ModuleList(layers)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """The output of the last layer and the sum of the layers' log|det| (shape [N])."""
        return compose(self.layers, batch(self.argument_names[0], z, self.d))

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """The input that ``forward`` maps to ``z``, and log|det| of that inverse map."""
        return compose(self.layers, batch(self.argument_names[1], z, self.d), inverse=True)

    def base_sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` draws from N(0, I) on R^d, in the dtype and on the device of the flow's parameters."""
        positive_int("n", n)
        like = next(self.parameters(), torch.zeros(()))
        draws = torch.randn(n, self.d, generator=generator, dtype=like.dtype,
                            device=generator.device if generator is not None else like.device)
        return draws.to(like.device)


class NormalizingFlow(Flow):
    """q_K: a standard-normal base q_0 = N(0, I) pushed through K flows (planar unless ``layer``
    names another :class:`FlowLayer`, built as ``layer(d, init_scale)``). ``forward`` maps z_0 to
    z_K = f_K o ... o f_1(z_0); ``inverse`` maps z_K back to z_0."""

    def __init__(self, d: int, K: int, init_scale: float = 0.1, layer: type[FlowLayer] = PlanarFlow):
        if not isinstance(K, int) or isinstance(K, bool) or K < 0:
            raise ValueError(f"K: expected a non-negative integer number of flows, got {K!r}")
        super().__init__(d, [layer(d, init_scale) for _ in range(K)])

    def base_log_prob(self, z0: Tensor) -> Tensor:
        return log_standard_normal(z0)

    def sample(self, n: int, generator: torch.Generator | None = None
               ) -> tuple[Tensor, Tensor, Tensor]:
        """(z_0, z_K, ln q_K(z_K)) for n draws z_0 ~ q_0."""
        z0 = self.base_sample(n, generator)
        zK, log_det = self(z0)
        # ln q_K(z_K) = ln q_0(z_0) - sum_k ln|det df_k/dz_{k-1}|
        return z0, zK, self.base_log_prob(z0) - log_det

    def log_prob(self, z: Tensor) -> Tensor:
        """ln q_K(z), through the inverse: ln q_0(f^{-1}(z)) + ln|det d f^{-1}/dz|."""
        z0, log_det = self.inverse(z)
        return self.base_log_prob(z0) + log_det


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

    def posterior_sample(self, mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None
                         ) -> Tensor:
        """z_K = f_K o ... o f_1(z_0) for one reparameterised z_0 ~ q_0(z|x), so that ``forward``
        returns (decoded at z_K, mu, logvar, z_K), the shape of :meth:`paperlib.vae.VAE.forward`."""
        return self.flow(reparameterize(mu, logvar, generator))[0]

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
