"""The ring of Gaussians: the usual two-dimensional test of whether a GAN drops modes, and a count of
the modes a generator's samples cover.

Used by the GAN chapter, ``chapters/generative/gan.ipynb``, for its mode-collapse experiment.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from paperlib._checks import float_tensor, positive_int


def ring_of_gaussians(n: int, modes: int = 8, radius: float = 2.0, std: float = 0.02,
                      generator: torch.Generator | None = None) -> Tensor:
    """n points from an equal mixture of ``modes`` Gaussians on a circle (the usual 2-D GAN test)."""
    positive_int("n", n), positive_int("modes", modes)
    if not std > 0 or not radius > 0:
        raise ValueError(f"std, radius: expected positive values, got {std!r}, {radius!r}")
    which = torch.randint(modes, (n,), generator=generator)
    angle = 2 * math.pi * which / modes
    centre = radius * torch.stack([angle.cos(), angle.sin()], dim=1)
    return centre + std * torch.randn(n, 2, generator=generator)


def mode_coverage(samples: Tensor, modes: int = 8, radius: float = 2.0, std: float = 0.02,
                  within: float = 3.0, min_share: float = 0.01) -> tuple[int, float]:
    """(modes covered, share of good samples) for samples of the ring of Gaussians.

    A sample is good when it lies within ``within`` standard deviations of its nearest centre; a
    mode is covered when at least ``min_share`` of all samples are good samples of it.
    """
    samples = float_tensor("samples", samples)
    if samples.dim() != 2 or samples.shape[1] != 2:
        raise ValueError(f"samples: expected N x 2 points, got {tuple(samples.shape)}")
    angle = 2 * math.pi * torch.arange(modes, dtype=samples.dtype) / modes
    centres = radius * torch.stack([angle.cos(), angle.sin()], dim=1)
    distance, nearest = torch.cdist(samples, centres).min(dim=1)
    good = distance <= within * std
    counts = torch.bincount(nearest[good], minlength=modes)
    return int((counts >= min_share * len(samples)).sum()), good.float().mean().item()
