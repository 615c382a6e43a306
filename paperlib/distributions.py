"""Diagonal Gaussians and decoder likelihoods: the densities and divergences that the VAE, flow and
MADE chapters share, in nats, one value per example.

``reparameterize`` and ``kl_normal`` are derived in ``chapters/generative/vae.ipynb``
(``lem-reparam``, ``prop-gauss-kl``); ``nll`` is the one switch between the two decoders that
the VAE chapter compares, a Bernoulli decoder on logits and a Gaussian one with fixed variance.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from paperlib._checks import same_shape

LIKELIHOODS = ("bernoulli", "gaussian")


def _per_example(values: Tensor) -> Tensor:
    return values.flatten(1).sum(dim=1)


def reparameterize(mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Draw z ~ N(mu, exp(logvar)) as a differentiable function of (mu, logvar) (``lem-reparam``)."""
    same_shape(mu=mu, logvar=logvar)
    # eps ~ N(0, I), drawn independently of the parameters (on the generator's device)
    where = generator.device if generator is not None else mu.device
    eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=where).to(mu.device)
    # z = mu + sigma * eps,  sigma = exp(logvar / 2)
    return mu + torch.exp(0.5 * logvar) * eps


def kl_normal(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)), summed over the last dimension (``prop-gauss-kl``)."""
    same_shape(mu=mu, logvar=logvar)
    # KL = 1/2 * sum_j (mu_j^2 + sigma_j^2 - log sigma_j^2 - 1)
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).sum(dim=-1)


def log_normal(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log N(z; mu, diag(exp(logvar))), summed over the last dimension."""
    same_shape(mu=mu, logvar=logvar)
    # log N = -1/2 * sum_j (log 2 pi + log sigma_j^2 + (z_j - mu_j)^2 / sigma_j^2)
    return -0.5 * (math.log(2 * math.pi) + logvar + (z - mu).pow(2) / logvar.exp()).sum(dim=-1)


def log_standard_normal(z: Tensor) -> Tensor:
    """log N(z; 0, I), summed over the last dimension: the prior of the VAEs and the flows' base."""
    # log N(z; 0, I) = -1/2 * sum_j (log 2 pi + z_j^2)
    return -0.5 * (math.log(2 * math.pi) + z.pow(2)).sum(dim=-1)


def bernoulli_nll(logits: Tensor, x: Tensor, *, validate: bool = False) -> Tensor:
    """-log Bernoulli(x; sigmoid(logits)) per example: binary cross-entropy on logits.

    ``validate=True`` also checks that the targets lie in [0, 1]; that reads the data back from
    the device, so the training losses leave it off.
    """
    same_shape(logits=logits, x=x)
    if validate:
        low, high = torch.aminmax(x)  # one pass over the batch for both bounds
        if low < 0 or high > 1:
            raise ValueError("x: a Bernoulli decoder needs targets in [0, 1]")
    # -log p(x|z) = -sum_i [x_i log y_i + (1 - x_i) log(1 - y_i)],  y = sigmoid(logits)
    return _per_example(F.binary_cross_entropy_with_logits(logits, x, reduction="none"))


def gaussian_nll(mean: Tensor, x: Tensor, var: float = 1.0) -> Tensor:
    """-log N(x; mean, var * I) per example, for a decoder with fixed variance ``var``."""
    same_shape(mean=mean, x=x)
    if not var > 0:
        raise ValueError(f"var: expected a positive decoder variance, got {var}")
    # -log p(x|z) = 1/(2 var) * sum_i (x_i - mean_i)^2 + N/2 * log(2 pi var)
    n = x[0].numel()
    return _per_example((x - mean).pow(2)) / (2 * var) + 0.5 * n * math.log(2 * math.pi * var)


def check_likelihood(likelihood: str) -> str:
    """``likelihood`` itself if it names a decoder of :data:`LIKELIHOODS`, else a ``ValueError``."""
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood: expected one of {LIKELIHOODS}, got {likelihood!r}")
    return likelihood


def nll(decoded: Tensor, x: Tensor, likelihood: str = "bernoulli", var: float = 1.0) -> Tensor:
    """-log p(x|z) per example for the decoder's output ``decoded`` at z: logits for a
    ``"bernoulli"`` decoder, means for a ``"gaussian"`` one with variance ``var``."""
    if check_likelihood(likelihood) == "bernoulli":
        return bernoulli_nll(decoded, x)
    return gaussian_nll(decoded, x, var)
