"""Generative adversarial nets: Goodfellow et al., "Generative Adversarial Nets" (NeurIPS 2014).

Explained, derived and checked in the chapter ``chapters/generative/gan.ipynb``. The pure functions
(``optimal_discriminator``, ``js_divergence``, ``virtual_criterion``, the losses on logits,
``parzen_log_likelihood``) are what the chapter's derivations arrive at; ``Generator`` and
``Discriminator`` are the paper's MLPs (ReLU generator, maxout discriminator with dropout), and
``train_gan`` is Algorithm 1. Quantities are in nats.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from paperlib._checks import batch, float_tensor, positive_int, positive_ints, same_shape
from paperlib.train import History, gradient_step

LOSSES = ("minimax", "non_saturating")


def _densities(validate: bool, **tensors) -> tuple[Tensor, ...]:
    """Floating-point tensors of one shape; with ``validate``, also non-negative and not NaN
    (a check that reads the values back from the device)."""
    out = []
    for name, value in tensors.items():
        value = float_tensor(name, value)
        if validate and (bool(torch.isnan(value).any()) or bool((value < 0).any())):
            raise ValueError(f"{name}: expected non-negative densities or probabilities")
        out.append(value)
    same_shape(**dict(zip(tensors, out)))
    return tuple(out)


def _distributions(validate: bool, **tensors) -> tuple[Tensor, ...]:
    """As ``_densities``, along the last dimension; with ``validate``, each sums to 1."""
    out = _densities(validate, **tensors)
    for name, value in zip(tensors, out):
        if value.dim() == 0:
            raise ValueError(f"{name}: expected distributions along the last dimension, got a scalar")
        if not validate:
            continue
        total = value.sum(-1)
        if not torch.allclose(total, torch.ones_like(total), atol=1e-6 if value.dtype == torch.float64 else 1e-4):
            raise ValueError(f"{name}: expected probabilities that sum to 1 along the last dimension")
    return out


def optimal_discriminator(p_data: Tensor, p_g: Tensor, *, validate: bool = False) -> Tensor:
    """D*(x) = p_data(x) / (p_data(x) + p_g(x)), elementwise (Proposition 1 of the paper,
    ``prop-gan-optimal-d``).

    Where both densities are zero every D is optimal; this returns 1/2 there. ``validate=True``
    rejects negative or NaN densities.
    """
    p_data, p_g = _densities(validate, p_data=p_data, p_g=p_g)
    total = p_data + p_g
    # D*(x) = p_data / (p_data + p_g)
    return torch.where(total > 0, p_data / torch.where(total > 0, total, 1), 0.5)


def kl_divergence(p: Tensor, q: Tensor, *, validate: bool = False) -> Tensor:
    """KL(p || q) = sum_i p_i log(p_i / q_i) along the last dimension, with 0 log 0 = 0.

    ``validate=True`` checks that p and q are distributions (non-negative, summing to 1).
    """
    p, q = _distributions(validate, p=p, q=q)
    # KL = sum_i p_i log p_i - p_i log q_i   (xlogy(0, .) = 0; infinite where q_i = 0 < p_i)
    return (torch.special.xlogy(p, p) - torch.special.xlogy(p, q)).sum(-1)


def js_divergence(p: Tensor, q: Tensor, *, validate: bool = False) -> Tensor:
    """JSD(p || q) = KL(p || m)/2 + KL(q || m)/2 with m = (p + q)/2, natural log, last dimension.

    ``validate=True`` checks that p and q are distributions (non-negative, summing to 1).
    """
    p, q = _distributions(validate, p=p, q=q)
    # m = (p + q) / 2
    m = 0.5 * (p + q)
    # JSD = 1/2 KL(p || m) + 1/2 KL(q || m)
    return 0.5 * kl_divergence(p, m) + 0.5 * kl_divergence(q, m)


def virtual_criterion(p_data: Tensor, p_g: Tensor, *, validate: bool = False) -> Tensor:
    """C(G) = max_D V(D, G) for discrete distributions along the last dimension.

    Theorem 1 of the paper (``thm-gan-global``): C(G) = -log 4 + 2 JSD(p_data || p_g).
    ``validate=True`` checks that both are distributions (non-negative, summing to 1).
    """
    p_data, p_g = _distributions(validate, p_data=p_data, p_g=p_g)
    d_star = optimal_discriminator(p_data, p_g)
    # C(G) = sum_x p_data log D*(x) + p_g log(1 - D*(x))
    return (torch.special.xlogy(p_data, d_star) + torch.special.xlogy(p_g, 1 - d_star)).sum(-1)


def non_saturating_criterion(p_data: Tensor, p_g: Tensor, *, validate: bool = False) -> Tensor:
    """E_{p_g}[-log D*(x)]: the non-saturating generator loss against the optimal discriminator, for
    discrete distributions along the last dimension. Implements prop-gan-ns-objective.

    It equals KL(p_g || p_data) - 2 JSD(p_g || p_data) + log 4 + E_{p_data}[log D*(x)]; with D* held
    fixed, its gradient in p_g is that of KL(p_g || p_data) - 2 JSD(p_g || p_data) (Arjovsky & Bottou,
    2017, Theorem 2.5). Infinite where p_g > 0 = p_data. ``validate=True`` checks that both are
    distributions (non-negative, summing to 1).
    """
    p_data, p_g = _distributions(validate, p_data=p_data, p_g=p_g)
    d_star = optimal_discriminator(p_data, p_g)
    # E_{p_g}[-log D*(x)] = -sum_x p_g(x) log D*(x)   (xlogy(0, .) = 0 where p_g vanishes)
    return -torch.special.xlogy(p_g, d_star).sum(-1)


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """-V(D, G) on a batch: -[mean log D(x) + mean log(1 - D(G(z)))], from logits of D."""
    float_tensor("real_logits", real_logits), float_tensor("fake_logits", fake_logits)
    # -log D(x) = softplus(-l),  -log(1 - D(G(z))) = softplus(l),  D = sigmoid(l)
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real + fake


def minimax_generator_loss(fake_logits: Tensor) -> Tensor:
    """The generator's side of eq. (1): mean log(1 - D(G(z))), minimised; it saturates as D(G(z)) -> 0
    (``prop-gan-saturation``)."""
    float_tensor("fake_logits", fake_logits)
    # log(1 - sigmoid(l)) = -softplus(l)
    return -F.softplus(fake_logits).mean()


def non_saturating_generator_loss(fake_logits: Tensor) -> Tensor:
    """The paper's practical alternative (section 3): minimise -mean log D(G(z)) (``prop-gan-saturation``)."""
    float_tensor("fake_logits", fake_logits)
    # -log sigmoid(l) = softplus(-l)
    return F.softplus(-fake_logits).mean()


def parzen_log_likelihood(samples: Tensor, test: Tensor, sigma: float, batch_size: int = 256
                          ) -> Tensor:
    """log p(x) under a Gaussian Parzen window on ``samples`` (N x d), one value per test row (M x d).

    log p(x) = logsumexp_i log N(x; s_i, sigma^2 I) - log N: the estimator of the paper's Table 1.
    """
    samples, test = float_tensor("samples", samples), float_tensor("test", test)
    if samples.dim() != 2 or test.dim() != 2 or samples.shape[1] != test.shape[1]:
        raise ValueError(f"test: expected M x d rows matching samples' N x d, got {tuple(test.shape)} "
                         f"and {tuple(samples.shape)}")
    if not (isinstance(sigma, (int, float)) and not isinstance(sigma, bool) and sigma > 0):
        raise ValueError(f"sigma: expected a positive window width, got {sigma!r}")
    n, d = samples.shape
    out = []
    for first in range(0, len(test), batch_size):
        x = test[first:first + batch_size]
        sq = torch.cdist(x, samples).pow(2)
        # log N(x; s, sigma^2 I) = -|x - s|^2 / (2 sigma^2) - d/2 log(2 pi sigma^2)
        log_kernel = -sq / (2 * sigma**2) - 0.5 * d * math.log(2 * math.pi * sigma**2)
        out.append(torch.logsumexp(log_kernel, dim=1) - math.log(n))
    return torch.cat(out)


class Maxout(nn.Module):
    """A linear layer followed by the maximum over ``pieces`` affine pieces per unit."""

    def __init__(self, in_features: int, out_features: int, pieces: int):
        super().__init__()
        positive_ints(in_features=in_features, out_features=out_features, pieces=pieces)
        self.out_features, self.pieces = out_features, pieces
        self.linear = nn.Linear(in_features, out_features * pieces)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x).view(*x.shape[:-1], self.out_features, self.pieces).amax(-1)


class Generator(nn.Module):
    """G(z): an MLP with ReLU hidden layers; ``sigmoid=True`` for images in [0, 1]."""

    def __init__(self, z_dim: int, x_dim: int, hidden_sizes: tuple[int, ...] = (1200, 1200),
                 sigmoid: bool = False):
        super().__init__()
        for name, value in (("z_dim", z_dim), ("x_dim", x_dim),
                            *(("hidden_sizes", h) for h in hidden_sizes)):
            positive_int(name, value)
        self.z_dim = z_dim
        layers: list[nn.Module] = []
        width = z_dim
        for h in hidden_sizes:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, x_dim))
        if sigmoid:
            layers.append(nn.Sigmoid())
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(batch("z", z, self.z_dim))

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """G(z) for n draws z ~ N(0, I)."""
        positive_int("n", n)
        device = next(self.parameters()).device
        z = torch.randn(n, self.z_dim, generator=generator,
                        device=generator.device if generator is not None else device)
        return self(z.to(device))


class Discriminator(nn.Module):
    """D(x) as a logit: maxout hidden layers (``pieces`` each) with dropout, then one linear unit.

    ``centre`` and ``scale`` standardise the input, (x - centre) / scale, before the first layer
    (fixed, not learned): for data far from the origin, as in the chapter's 1-D example.
    """

    def __init__(self, x_dim: int, hidden_sizes: tuple[int, ...] = (240, 240), pieces: int = 5,
                 dropout: float = 0.5, centre: float = 0.0, scale: float = 1.0):
        super().__init__()
        for name, value in (("x_dim", x_dim), ("pieces", pieces),
                            *(("hidden_sizes", h) for h in hidden_sizes)):
            positive_int(name, value)
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout: expected a probability in [0, 1), got {dropout!r}")
        if not (isinstance(scale, (int, float)) and scale > 0):
            raise ValueError(f"scale: expected a positive number, got {scale!r}")
        self.x_dim, self.centre, self.scale = x_dim, float(centre), float(scale)
        layers: list[nn.Module] = []
        width = x_dim
        for h in hidden_sizes:
            layers += [nn.Dropout(dropout), Maxout(width, h, pieces)]
            width = h
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net((batch("x", x, self.x_dim) - self.centre) / self.scale).squeeze(-1)

    @torch.no_grad()
    def prob(self, x: Tensor) -> Tensor:
        """D(x) = sigmoid(logit), in evaluation mode (no dropout)."""
        was_training = self.training
        self.eval()
        out = torch.sigmoid(self(x))
        self.train(was_training)
        return out


@dataclass
class GANHistory:
    """Each player's :class:`paperlib.train.History` (one loss per step), and what ``record``
    returned every ``every`` steps."""

    discriminator: History = field(default_factory=History)
    generator: History = field(default_factory=History)
    records: list = field(default_factory=list)


def train_gan(G: Generator, D: Discriminator, real: Callable[[int], Tensor], steps: int,
              batch_size: int = 100, k: int = 1, lr: float = 2e-4, loss: str = "non_saturating",
              betas: tuple[float, float] = (0.5, 0.999), generator: torch.Generator | None = None,
              every: int = 0, record: Callable[[int], object] | None = None) -> GANHistory:
    """Algorithm 1: ``k`` discriminator steps, then one generator step, ``steps`` times.

    ``real(n)`` draws n training examples. ``record(step)`` runs every ``every`` steps (and at the
    end) with both networks in evaluation mode; its results go to ``history.records``.
    """
    positive_ints(steps=steps, batch_size=batch_size, k=k)
    if loss not in LOSSES:
        raise ValueError(f"loss: expected one of {LOSSES}, got {loss!r}")
    g_loss_fn = non_saturating_generator_loss if loss == "non_saturating" else minimax_generator_loss
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=betas)
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=betas)
    history = GANHistory()
    for step in range(1, steps + 1):
        G.train(), D.train()
        for _ in range(k):
            with torch.no_grad():
                fake = G.sample(batch_size, generator)
            d_loss = discriminator_loss(D(real(batch_size)), D(fake))
            d_value = gradient_step(opt_d, d_loss, f"step {step} (discriminator)")
        g_loss = g_loss_fn(D(G.sample(batch_size, generator)))
        g_value = gradient_step(opt_g, g_loss, f"step {step} (generator)")
        history.discriminator.step_loss.append(d_value)
        history.generator.step_loss.append(g_value)
        if record is not None and every and (step % every == 0 or step == steps):
            G.eval(), D.eval()
            history.records.append(record(step))
    G.eval(), D.eval()
    return history


# Experiment sizes for the chapter's MNIST GAN. "quick" trains on the 4,500 offline digits on two
# CPU cores in seconds; "paper" is the paper's MNIST model (pylearn2 configuration: z of 100,
# generator 1200-1200 ReLU with sigmoid output, maxout discriminator 240-240 with 5 pieces and
# dropout) on the full 60,000 digits, for a GPU. Both use Adam; the paper used SGD with momentum.
SCALES = {
    "quick": dict(offline=True, z_dim=32, g_hidden=(256,), d_hidden=(128,), pieces=2, dropout=0.2,
                  steps=600, batch_size=100, lr=1e-3, parzen_samples=2000),
    "paper": dict(offline=None, z_dim=100, g_hidden=(1200, 1200), d_hidden=(240, 240), pieces=5,
                  dropout=0.5, steps=100_000, batch_size=100, lr=2e-4, parzen_samples=10_000),
}
