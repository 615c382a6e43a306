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

from paperlib._checks import loss_weight, positive_int, same_shape

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


def elbo(x: Tensor, decoded: Tensor, mu: Tensor, logvar: Tensor, z: Tensor | None = None,
         likelihood: str = "bernoulli", kl: str = "analytic", var: float = 1.0) -> Tensor:
    """The evidence lower bound per example, E_q[log p(x|z)] - KL(q(z|x) || p(z)) (``thm-elbo``).

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
        same_shape(mu=mu, z=z)
        # KL ~ log q(z|x) - log p(z),  z ~ q(z|x)
        divergence = log_normal(z, mu, logvar) - log_normal(z, torch.zeros_like(z),
                                                             torch.zeros_like(z))
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


class _GaussianVAE:
    """What the MLP and conv VAEs share: a Gaussian q(z|x) = N(mu, diag exp(logvar)), the
    reparameterised sample and the decoder's output at it. Subclasses define ``_input`` (checks
    and shapes x), ``encoder`` (x -> [mu, logvar]) and ``decode``."""

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The parameters (mu, logvar) of q(z|x)."""
        mu, logvar = self.encoder(self._input(x)).chunk(2, dim=-1)
        return mu, logvar

    def forward(self, x: Tensor, generator: torch.Generator | None = None
                ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar, generator)
        return self.decode(z), mu, logvar, z


class VAE(_GaussianVAE, nn.Module):
    """MLP encoder q(z|x) = N(mu, diag sigma^2) and MLP decoder p(x|z), as in appendix C."""

    def __init__(self, x_dim: int = 784, hidden: int = 400, z_dim: int = 20,
                 likelihood: str = "bernoulli", var: float = 1.0):
        super().__init__()
        for name, value in (("x_dim", x_dim), ("hidden", hidden), ("z_dim", z_dim)):
            positive_int(name, value)
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood: expected one of {LIKELIHOODS}, got {likelihood!r}")
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
            log_lik = (-bernoulli_nll(decoded, flat) if self.likelihood == "bernoulli"
                       else -gaussian_nll(decoded, flat, self.var))
            zero = torch.zeros_like(z)
            # log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x)
            weights.append(log_lik + log_normal(z, zero, zero) - log_normal(z, mu, logvar))
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


# --- beta-VAE: Higgins et al. (ICLR 2017) and Burgess et al. (2018) ------------------------------
# Explained, derived and checked in ``chapters/generative/beta_vae.ipynb``.


def beta_vae_loss(logits: Tensor, x: Tensor, mu: Tensor, logvar: Tensor, beta: float = 1.0
                  ) -> Tensor:
    """The beta-VAE loss, batch mean of -log p(x|z) + beta * KL(q(z|x) || p(z)), in nats.

    ``logits`` are the Bernoulli decoder's outputs at one sample z ~ q(z|x); beta = 1 is the VAE.
    It is the Lagrangian of ``prop-beta-lagrangian``.
    """
    beta = loss_weight("beta", beta)
    # L = 1/B sum_n [ -log p(x_n | z_n) + beta * KL(q(z | x_n) || p(z)) ]
    return (bernoulli_nll(logits, x) + beta * kl_normal(mu, logvar)).mean()


def capacity_loss(logits: Tensor, x: Tensor, mu: Tensor, logvar: Tensor, gamma: float = 1000.0,
                  C: float = 0.0) -> Tensor:
    """Burgess et al.'s loss: mean -log p(x|z) + gamma * |mean KL - C|, in nats.

    The KL is averaged over the batch before the absolute value: the target ``C`` constrains the
    average information the latents carry, not each example's. Below the target the penalty
    raises the KL (``prop-beta-capacity-gradient``).
    """
    gamma, C = loss_weight("gamma", gamma), loss_weight("C", C)
    # L = 1/B sum_n -log p(x_n | z_n) + gamma * | 1/B sum_n KL(q(z | x_n) || p(z)) - C |
    return bernoulli_nll(logits, x).mean() + gamma * (kl_normal(mu, logvar).mean() - C).abs()


def capacity_schedule(step: int, C_max: float = 25.0, steps: int = 100_000) -> float:
    """The target C at training step ``step``: raised linearly from 0 to ``C_max`` over ``steps``."""
    C_max = loss_weight("C_max", C_max)
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step: expected a non-negative integer, got {step!r}")
    positive_int("steps", steps)
    # C(t) = C_max * min(t / T, 1)
    return C_max * min(step / steps, 1.0)


def active_latents(kl_per_latent: Tensor, threshold: float = 0.1) -> int:
    """How many latents carry more than ``threshold`` nats of KL on average (the rest are off)."""
    threshold = loss_weight("threshold", threshold)
    if kl_per_latent.dim() != 1:
        raise ValueError("kl_per_latent: expected one mean KL per latent (a 1-D tensor), "
                         f"got shape {tuple(kl_per_latent.shape)}")
    return int((kl_per_latent > threshold).sum())


class ConvVAE(_GaussianVAE, nn.Module):
    """The convolutional VAE of Burgess et al. (2018), appendix A.1, with a Bernoulli decoder.

    Encoder: conv 32 x 4 x 4, stride 2, ReLU, repeated until the feature map is 4 x 4 (four
    layers for 64 x 64 images, three for 32 x 32), then two fully connected layers of 256 and a
    linear layer to (mu, logvar). The decoder mirrors it with transposed convolutions and outputs
    one logit per pixel.
    """

    def __init__(self, image_size: int = 64, z_dim: int = 10, channels: int = 32,
                 hidden: int = 256):
        super().__init__()
        if (isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8
                or image_size & (image_size - 1)):
            raise ValueError(f"image_size: expected a power of two >= 8, got {image_size!r}")
        for name, value in (("z_dim", z_dim), ("channels", channels), ("hidden", hidden)):
            positive_int(name, value)
        self.image_size, self.z_dim = image_size, z_dim
        layers = int(math.log2(image_size // 4))
        encoder: list[nn.Module] = []
        for k in range(layers):
            encoder += [nn.Conv2d(1 if k == 0 else channels, channels, 4, 2, 1), nn.ReLU()]
        flat = channels * 4 * 4
        self.encoder = nn.Sequential(*encoder, nn.Flatten(), nn.Linear(flat, hidden), nn.ReLU(),
                                     nn.Linear(hidden, hidden), nn.ReLU(),
                                     nn.Linear(hidden, 2 * z_dim))
        decoder: list[nn.Module] = [nn.Linear(z_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                    nn.ReLU(), nn.Linear(hidden, flat), nn.ReLU(),
                                    nn.Unflatten(1, (channels, 4, 4))]
        for k in range(layers):
            last = k == layers - 1
            decoder.append(nn.ConvTranspose2d(channels, 1 if last else channels, 4, 2, 1))
            if not last:
                decoder.append(nn.ReLU())
        self.decoder = nn.Sequential(*decoder)

    def _input(self, x: Tensor) -> Tensor:
        side = self.image_size
        if x.dim() != 4 or x.shape[1:] != (1, side, side):
            raise ValueError(f"x: expected a batch shaped N x 1 x {side} x {side}, "
                             f"got {tuple(x.shape)}")
        return x

    def decode(self, z: Tensor) -> Tensor:
        """Bernoulli logits of p(x|z), shaped N x 1 x H x W."""
        return self.decoder(z)

    def mean_image(self, z: Tensor) -> Tensor:
        """E[x|z] = sigmoid(logits)."""
        return torch.sigmoid(self.decode(z))


# Experiment sizes for the beta-VAE chapter. "paper" is Burgess et al.'s dSprites set-up (64 x 64,
# 32 channels, 256 hidden units, Adam 5e-4, batches of 64, gamma = 1000, C raised to 25 nats over
# 100k iterations), for a GPU; every model trains from scratch (warm_steps = 0). "quick" is a
# CPU-sized stand-in: 256 images at 32 x 32 (one square, 16 x 16 positions), a narrower network, one
# shared beta = 1 pre-training of warm_steps steps that every beta then continues for `steps` steps
# (from scratch, a large beta stays on the empty-image plateau far longer than the CPU budget),
# and a capacity run from scratch for capacity_steps steps.
BETA_SCALES = {
    "quick": dict(image_size=32, z_dim=10, channels=16, hidden=64, batch_size=32, lr=3e-3,
                  warm_steps=250, steps=150, capacity_steps=300, gamma=1000.0, C_max=10.0,
                  C_steps=250, betas=(1.0, 4.0, 16.0)),
    "paper": dict(image_size=64, z_dim=10, channels=32, hidden=256, batch_size=64, lr=5e-4,
                  warm_steps=0, steps=300_000, capacity_steps=300_000, gamma=1000.0, C_max=25.0,
                  C_steps=100_000, betas=(1.0, 4.0, 16.0)),
}
