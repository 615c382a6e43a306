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

LIKELIHOODS = ("bernoulli", "gaussian")


def _same_shape(**tensors: Tensor) -> None:
    (name_a, a), (name_b, b) = tensors.items()
    if a.shape != b.shape:
        raise ValueError(f"{name_b}: expected the shape of {name_a} {tuple(a.shape)}, "
                         f"got {tuple(b.shape)}")


def _per_example(values: Tensor) -> Tensor:
    return values.flatten(1).sum(dim=1)


def reparameterize(mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Draw z ~ N(mu, exp(logvar)) as a differentiable function of (mu, logvar)."""
    _same_shape(mu=mu, logvar=logvar)
    # eps ~ N(0, I), drawn independently of the parameters (on the generator's device)
    where = generator.device if generator is not None else mu.device
    eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=where).to(mu.device)
    # z = mu + sigma * eps,  sigma = exp(logvar / 2)
    return mu + torch.exp(0.5 * logvar) * eps


def kl_normal(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)), summed over the last dimension."""
    _same_shape(mu=mu, logvar=logvar)
    # KL = 1/2 * sum_j (mu_j^2 + sigma_j^2 - log sigma_j^2 - 1)
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).sum(dim=-1)


def log_normal(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log N(z; mu, diag(exp(logvar))), summed over the last dimension."""
    # log N = -1/2 * sum_j (log 2 pi + log sigma_j^2 + (z_j - mu_j)^2 / sigma_j^2)
    return -0.5 * (math.log(2 * math.pi) + logvar + (z - mu).pow(2) / logvar.exp()).sum(dim=-1)


def bernoulli_nll(logits: Tensor, x: Tensor) -> Tensor:
    """-log Bernoulli(x; sigmoid(logits)) per example: binary cross-entropy on logits."""
    _same_shape(logits=logits, x=x)
    if x.min() < 0 or x.max() > 1:
        raise ValueError("x: a Bernoulli decoder needs targets in [0, 1]")
    # -log p(x|z) = -sum_i [x_i log y_i + (1 - x_i) log(1 - y_i)],  y = sigmoid(logits)
    return _per_example(F.binary_cross_entropy_with_logits(logits, x, reduction="none"))


def gaussian_nll(mean: Tensor, x: Tensor, var: float = 1.0) -> Tensor:
    """-log N(x; mean, var * I) per example, for a decoder with fixed variance ``var``."""
    _same_shape(mean=mean, x=x)
    if not var > 0:
        raise ValueError(f"var: expected a positive decoder variance, got {var}")
    # -log p(x|z) = 1/(2 var) * sum_i (x_i - mean_i)^2 + N/2 * log(2 pi var)
    n = x[0].numel()
    return _per_example((x - mean).pow(2)) / (2 * var) + 0.5 * n * math.log(2 * math.pi * var)


def elbo(x: Tensor, decoded: Tensor, mu: Tensor, logvar: Tensor, z: Tensor | None = None,
         likelihood: str = "bernoulli", kl: str = "analytic", var: float = 1.0) -> Tensor:
    """The evidence lower bound per example, E_q[log p(x|z)] - KL(q(z|x) || p(z)).

    ``decoded`` holds the decoder's output at one sample ``z`` ~ q(z|x) (logits for a
    Bernoulli decoder, means for a Gaussian one). ``kl="analytic"`` uses the closed form
    (eq. 10 of the paper); ``kl="mc"`` the one-sample estimate log q(z|x) - log p(z), which
    needs ``z``.
    """
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood: expected one of {LIKELIHOODS}, got {likelihood!r}")
    if likelihood == "bernoulli":
        log_px_z = -bernoulli_nll(decoded, x)
    else:
        log_px_z = -gaussian_nll(decoded, x, var)
    if kl == "analytic":
        divergence = kl_normal(mu, logvar)
    elif kl == "mc":
        if z is None:
            raise ValueError("z: a Monte Carlo KL needs the sample z that was decoded")
        _same_shape(mu=mu, z=z)
        # KL ~ log q(z|x) - log p(z),  z ~ q(z|x)
        divergence = log_normal(z, mu, logvar) - log_normal(z, torch.zeros_like(z),
                                                             torch.zeros_like(z))
    else:
        raise ValueError(f"kl: expected 'analytic' or 'mc', got {kl!r}")
    # ELBO = E_q[log p(x|z)] - KL(q(z|x) || p(z))
    return log_px_z - divergence


class VAE(nn.Module):
    """MLP encoder q(z|x) = N(mu, diag sigma^2) and MLP decoder p(x|z), as in appendix C."""

    def __init__(self, x_dim: int = 784, hidden: int = 400, z_dim: int = 20,
                 likelihood: str = "bernoulli", var: float = 1.0):
        super().__init__()
        for name, value in (("x_dim", x_dim), ("hidden", hidden), ("z_dim", z_dim)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood: expected one of {LIKELIHOODS}, got {likelihood!r}")
        if not var > 0:
            raise ValueError(f"var: expected a positive decoder variance, got {var}")
        self.x_dim, self.z_dim, self.likelihood, self.var = x_dim, z_dim, likelihood, var
        self.encoder = nn.Sequential(nn.Linear(x_dim, hidden), nn.Tanh(),
                                     nn.Linear(hidden, 2 * z_dim))
        self.decoder = nn.Sequential(nn.Linear(z_dim, hidden), nn.Tanh(),
                                     nn.Linear(hidden, x_dim))

    def _flat(self, x: Tensor) -> Tensor:
        if x.dim() < 2 or x[0].numel() != self.x_dim:
            raise ValueError(f"x: expected a batch of {self.x_dim} values per example, "
                             f"got shape {tuple(x.shape)}")
        return x.reshape(len(x), self.x_dim)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The parameters (mu, logvar) of q(z|x)."""
        mu, logvar = self.encoder(self._flat(x)).chunk(2, dim=-1)
        return mu, logvar

    def decode(self, z: Tensor) -> Tensor:
        """Logits (Bernoulli) or means (Gaussian) of p(x|z), flattened."""
        return self.decoder(z)

    def forward(self, x: Tensor, generator: torch.Generator | None = None
                ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar, generator)
        return self.decode(z), mu, logvar, z

    def elbo(self, x: Tensor, kl: str = "analytic", generator: torch.Generator | None = None
             ) -> Tensor:
        """One-sample ELBO estimate per example, in nats."""
        decoded, mu, logvar, z = self(x, generator)
        return elbo(self._flat(x), decoded, mu, logvar, z, self.likelihood, kl, self.var)

    def loss(self, x: Tensor) -> Tensor:
        """Mean negative ELBO over the batch: the quantity training minimises."""
        return -self.elbo(x).mean()

    @torch.no_grad()
    def log_px(self, x: Tensor, samples: int = 100, generator: torch.Generator | None = None
               ) -> Tensor:
        """Importance-sampled estimate of log p(x) per example, with q(z|x) as the proposal.

        log p(x) ~ log (1/K) sum_k p(x, z_k) / q(z_k|x), z_k ~ q(z|x): a lower bound in
        expectation that tightens as K grows (Burda et al., 2016); K = 1 is the ELBO.
        """
        if not isinstance(samples, int) or samples < 1:
            raise ValueError(f"samples: expected a positive integer, got {samples!r}")
        flat = self._flat(x)
        mu, logvar = self.encode(flat)
        weights = []
        for _ in range(samples):
            z = reparameterize(mu, logvar, generator)
            decoded = self.decode(z)
            log_lik = (-bernoulli_nll(decoded, flat) if self.likelihood == "bernoulli"
                       else -gaussian_nll(decoded, flat, self.var))
            zero = torch.zeros_like(z)
            # log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x)
            weights.append(log_lik + log_normal(z, zero, zero) - log_normal(z, mu, logvar))
        return torch.logsumexp(torch.stack(weights), dim=0) - math.log(samples)

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
