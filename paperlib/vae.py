"""Variational auto-encoder: Kingma & Welling, "Auto-Encoding Variational Bayes" (ICLR 2014).

Explained, derived and checked in the chapter ``chapters/generative/vae.ipynb``. The pure
functions (``reparameterize``, ``kl_normal``, the likelihoods, ``elbo``) are what the chapter's
derivations arrive at; the ``VAE`` module is the paper's MLP encoder and decoder (appendix C).
All quantities are in nats, one value per example.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from paperlib._checks import float_tensor, loss_weight, positive_int, positive_ints, same_shape
from paperlib.distributions import (check_likelihood, kl_normal, log_normal, log_standard_normal,
                                    nll, reparameterize)

def elbo(x: Tensor, decoded: Tensor, mu: Tensor, logvar: Tensor, z: Tensor | None = None,
         likelihood: str = "bernoulli", kl: str = "analytic", var: float = 1.0) -> Tensor:
    """The evidence lower bound per example, E_q[log p(x|z)] - KL(q(z|x) || p(z)) (``thm-elbo``).

    ``decoded`` holds the decoder's output at one sample ``z`` ~ q(z|x) (logits for a
    Bernoulli decoder, means for a Gaussian one). ``kl="analytic"`` uses the closed form
    (eq. 10 of the paper); ``kl="mc"`` the one-sample estimate log q(z|x) - log p(z), which
    needs ``z``.
    """
    log_px_z = -nll(decoded, x, likelihood, var)
    if kl == "analytic":
        divergence = kl_normal(mu, logvar)
    elif kl == "mc":
        if z is None:
            raise ValueError("z: a Monte Carlo KL needs the sample z that was decoded")
        same_shape(mu=mu, z=z)
        # KL ~ log q(z|x) - log p(z),  z ~ q(z|x)
        divergence = log_normal(z, mu, logvar) - log_standard_normal(z)
    else:
        raise ValueError(f"kl: expected 'analytic' or 'mc', got {kl!r}")
    # ELBO = E_q[log p(x|z)] - KL(q(z|x) || p(z))
    return log_px_z - divergence


def iw_bound(log_weights: Tensor, k: int) -> Tensor:
    """Estimate of the K-sample importance-weighted bound L_k per example (Burda et al., 2016;
    ``prop-iw-bound``).

    ``log_weights`` holds S independent log-weights per example, shape (S, N), with S a multiple
    of ``k``. They are split into S / k disjoint groups of ``k``; each group gives one draw of
    log (1/k) sum_i w_i, and the draws are averaged: an unbiased estimate of
    L_k = E[log (1/k) sum_i w_i], which satisfies ELBO = L_1 <= L_k <= L_{k+1} <= log p(x).
    """
    if not isinstance(log_weights, Tensor):
        raise TypeError(f"log_weights: expected a tensor, got {type(log_weights).__name__}")
    if log_weights.dim() != 2:
        raise ValueError("log_weights: expected shape (samples, examples), got "
                         f"{tuple(log_weights.shape)}")
    positive_int("k", k)
    samples = log_weights.shape[0]
    if samples % k:
        raise ValueError(f"k: expected a divisor of the {samples} samples, got {k}")
    groups = log_weights.reshape(samples // k, k, -1)
    # L_k ~ mean over groups g of [ log sum_{i in g} w_i - log k ]
    return (torch.logsumexp(groups, dim=1) - math.log(k)).mean(dim=0)


class GaussianVAE:
    """What the MLP and conv VAEs share: a Gaussian q(z|x) = N(mu, diag exp(logvar)), the
    reparameterised sample and the decoder's output at it. Subclasses define ``_input`` (checks
    and shapes x), ``encoder`` (x -> [mu, logvar]) and ``decode``."""

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The parameters (mu, logvar) of q(z|x)."""
        mu, logvar = self.encoder(self._input(x)).chunk(2, dim=-1)
        return mu, logvar

    def posterior_sample(self, mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None
                         ) -> Tensor:
        """One z ~ q(z|x), reparameterised: z = mu + exp(logvar / 2) * eps with eps ~ N(0, I)."""
        return reparameterize(mu, logvar, generator)

    def forward(self, x: Tensor, generator: torch.Generator | None = None
                ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(decoded at z, mu, logvar, z) for one z ~ q(z|x)."""
        mu, logvar = self.encode(x)
        z = self.posterior_sample(mu, logvar, generator)
        return self.decode(z), mu, logvar, z


class VAE(GaussianVAE, nn.Module):
    """MLP encoder q(z|x) = N(mu, diag sigma^2) and MLP decoder p(x|z), as in appendix C."""

    def __init__(self, x_dim: int = 784, hidden: int = 400, z_dim: int = 20,
                 likelihood: str = "bernoulli", var: float = 1.0):
        super().__init__()
        positive_ints(x_dim=x_dim, hidden=hidden, z_dim=z_dim)
        check_likelihood(likelihood)
        if not var > 0:
            raise ValueError(f"var: expected a positive decoder variance, got {var}")
        self.x_dim, self.z_dim, self.likelihood, self.var = x_dim, z_dim, likelihood, var
        self.encoder = nn.Sequential(nn.Linear(x_dim, hidden), nn.Tanh(),
                                     nn.Linear(hidden, 2 * z_dim))
        self.decoder = nn.Sequential(nn.Linear(z_dim, hidden), nn.Tanh(),
                                     nn.Linear(hidden, x_dim))

    def _input(self, x: Tensor) -> Tensor:
        """x flattened to N x x_dim."""
        if x.dim() < 2 or x[0].numel() != self.x_dim:
            raise ValueError(f"x: expected a batch of {self.x_dim} values per example, "
                             f"got shape {tuple(x.shape)}")
        return x.reshape(len(x), self.x_dim)

    def decode(self, z: Tensor) -> Tensor:
        """Logits (Bernoulli) or means (Gaussian) of p(x|z), flattened."""
        return self.decoder(z)

    def elbo(self, x: Tensor, kl: str = "analytic", generator: torch.Generator | None = None
             ) -> Tensor:
        """One-sample ELBO estimate per example, in nats."""
        decoded, mu, logvar, z = self(x, generator)
        return elbo(self._input(x), decoded, mu, logvar, z, self.likelihood, kl, self.var)

    def loss(self, x: Tensor) -> Tensor:
        """Mean negative ELBO over the batch: the quantity training minimises."""
        return -self.elbo(x).mean()

    @torch.no_grad()
    def log_weights(self, x: Tensor, samples: int = 100, generator: torch.Generator | None = None
                    ) -> Tensor:
        """Log importance weights log p(x, z_k) - log q(z_k|x), z_k ~ q(z|x): shape (samples, N)."""
        positive_int("samples", samples)
        flat = self._input(x)
        mu, logvar = self.encode(flat)
        weights = []
        for _ in range(samples):
            z = reparameterize(mu, logvar, generator)
            decoded = self.decode(z)
            # log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x)
            weights.append(-nll(decoded, flat, self.likelihood, self.var) + log_standard_normal(z)
                           - log_normal(z, mu, logvar))
        return torch.stack(weights)

    @torch.no_grad()
    def log_px(self, x: Tensor, samples: int = 100, generator: torch.Generator | None = None
               ) -> Tensor:
        """Importance-sampled estimate of log p(x) per example, with q(z|x) as the proposal.

        log p(x) ~ log (1/K) sum_k p(x, z_k) / q(z_k|x), z_k ~ q(z|x): its expectation is a lower
        bound on log p(x) that does not decrease as K grows (Burda et al., 2016); with K = 1 it
        is a one-sample unbiased estimate of the ELBO, not the ELBO itself.
        """
        return iw_bound(self.log_weights(x, samples, generator), samples)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Mean images of p(x|z) for z ~ N(0, I), shaped like the flat inputs."""
        device = next(self.parameters()).device
        z = torch.randn(n, self.z_dim, generator=generator,
                        device=generator.device if generator is not None else device)
        return self.mean_image(z.to(device))

    def mean_image(self, z: Tensor) -> Tensor:
        """E[x|z]: sigmoid of the logits, or the Gaussian mean itself."""
        out = self.decode(z)
        return torch.sigmoid(out) if self.likelihood == "bernoulli" else out


# Experiment sizes for the chapter. "quick" runs in well under a minute on two CPU cores with the
# 5,000 offline MNIST digits; "paper" is the paper's MNIST model (500 hidden units, minibatches of
# 100) on the full 60,000 digits, for a GPU. The paper trained for far longer (up to 1e8 samples).
SCALES = {
    "quick": dict(offline=True, hidden=400, z_dim=20, epochs=50, batch_size=100, lr=3e-3),
    "paper": dict(offline=None, hidden=500, z_dim=20, epochs=200, batch_size=100, lr=1e-3),
}


# --- What the KL term pays for: ELBO surgery (Hoffman & Johnson, 2016) and active units (Burda et
# al., 2016). Explained, derived and checked in ``chapters/generative/vae.ipynb``.

def elbo_surgery(mu: Tensor, logvar: Tensor, samples: int = 10,
                 generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Monte Carlo estimates of the two terms of ``prop-elbo-surgery``, (I_q(x; z), KL(q(z) || p(z))).

    ``mu`` and ``logvar`` (N x J) are the encoder's outputs on N examples; p_data is taken to be
    uniform on them, so the aggregate posterior q(z) is the mixture of their N Gaussians and
    I_q(x; z) <= log N. Each estimate averages ``samples`` draws z_n ~ q(z|x_n) per example.
    Their sum estimates the average KL, ``kl_normal(mu, logvar).mean()``.
    """
    float_tensor("mu", mu, dims=2)
    same_shape(mu=mu, logvar=logvar)
    positive_int("samples", samples)
    n = len(mu)
    info, marginal = mu.new_zeros(()), mu.new_zeros(())
    for _ in range(samples):
        z = reparameterize(mu, logvar, generator)                      # z_n ~ q(z | x_n)
        # log q(z_n | x_m) for every pair: an N x N matrix
        log_q_pairs = log_normal(z[:, None], mu[None], logvar[None])
        # log q(z_n) = log (1/N) sum_m q(z_n | x_m), the aggregate posterior
        log_q_aggregate = torch.logsumexp(log_q_pairs, dim=1) - math.log(n)
        # I_q(x; z) ~ mean_n [log q(z_n | x_n) - log q(z_n)]
        info = info + (log_q_pairs.diagonal() - log_q_aggregate).mean()
        # KL(q(z) || p(z)) ~ mean_n [log q(z_n) - log p(z_n)]
        marginal = marginal + (log_q_aggregate - log_standard_normal(z)).mean()
    return info / samples, marginal / samples


def latent_activity(mu: Tensor) -> Tensor:
    """Burda et al.'s activity of each latent, A_u = Cov_x(E_{q(z|x)}[z_u]), one value per latent.

    ``mu`` (N x J, N >= 2) holds the posterior means E_q[z | x_n] of N examples.
    """
    float_tensor("mu", mu, dims=2)
    if len(mu) < 2:
        raise ValueError(f"mu: expected at least two examples (rows), got shape {tuple(mu.shape)}")
    # A_u = 1/(N - 1) sum_n (mu_nu - mean_n' mu_n'u)^2
    return mu.var(dim=0)


def active_units(mu: Tensor, threshold: float = 0.01) -> int:
    """How many latents have activity ``latent_activity(mu)`` above ``threshold`` (Burda et al.: 0.01)."""
    threshold = loss_weight("threshold", threshold)
    # u is active  <=>  A_u > threshold
    return int((latent_activity(mu) > threshold).sum())


class AutoregressiveVAE(VAE):
    """A VAE with a strong decoder: p(x|z) = prod_i Bernoulli(x_i; sigmoid(a_i(z) + sum_{j<i} W_ij x_j)).

    The MLP decoder's logits a(z) are added to a fully visible autoregressive term, a linear
    function of the pixels before pixel i (strictly lower-triangular W, zero at the start). It can
    model x without z, the setting in which latents collapse. ``forward`` and ``elbo`` condition
    the decoder on x; sampling would have to go pixel by pixel, and is not implemented.
    """

    def __init__(self, x_dim: int = 784, hidden: int = 400, z_dim: int = 20):
        super().__init__(x_dim, hidden, z_dim)
        self.visible = nn.Linear(x_dim, x_dim, bias=False)
        nn.init.zeros_(self.visible.weight)
        self.register_buffer("mask", torch.ones(x_dim, x_dim).tril(-1))

    def forward(self, x: Tensor, generator: torch.Generator | None = None
                ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        flat = self._input(x)
        mu, logvar = self.encode(flat)
        z = reparameterize(mu, logvar, generator)
        # logit_i = a_i(z) + sum_{j<i} W_ij x_j
        logits = self.decode(z) + F.linear(flat, self.visible.weight * self.mask)
        return logits, mu, logvar, z

    def _needs_x(self, *args, **kwargs):
        raise NotImplementedError("AutoregressiveVAE: its decoder needs the earlier pixels of x; "
                                  "use forward(x) or elbo(x)")

    log_weights = log_px = sample = mean_image = _needs_x
