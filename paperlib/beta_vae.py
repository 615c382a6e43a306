"""beta-VAE: Higgins et al., "beta-VAE: Learning Basic Visual Concepts with a Constrained
Variational Framework" (ICLR 2017), and Burgess et al., "Understanding disentangling in beta-VAE"
(2018).

Explained, derived and checked in the chapter ``chapters/generative/beta_vae.ipynb``: the
beta-weighted loss, the capacity-controlled loss with its schedule for C, and the convolutional
VAE both papers train on dSprites (``paperlib.dsprites``). All quantities are in nats.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from paperlib._checks import loss_weight, positive_int, positive_ints
from paperlib.distributions import bernoulli_nll, kl_normal
from paperlib.vae import GaussianVAE


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


class ConvVAE(GaussianVAE, nn.Module):
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
        positive_ints(z_dim=z_dim, channels=channels, hidden=hidden)
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
SCALES = {
    "quick": dict(image_size=32, z_dim=10, channels=16, hidden=64, batch_size=32, lr=3e-3,
                  warm_steps=250, steps=150, capacity_steps=300, gamma=1000.0, C_max=10.0,
                  C_steps=250, betas=(1.0, 4.0, 16.0)),
    "paper": dict(image_size=64, z_dim=10, channels=32, hidden=256, batch_size=64, lr=5e-4,
                  warm_steps=0, steps=300_000, capacity_steps=300_000, gamma=1000.0, C_max=25.0,
                  C_steps=100_000, betas=(1.0, 4.0, 16.0)),
}
