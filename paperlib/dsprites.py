"""dSprites drawn in code: the data set of the beta-VAE papers (Higgins et al., 2017; Matthey et
al., 2017), rendered on demand from its five generative factors instead of downloaded.

Used by ``chapters/generative/beta_vae.ipynb``, which needs the known factors to measure
disentanglement.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor


class DSprites:
    """dSprites drawn in code: binary images of one sprite, indexed by five generative factors.

    The factors, in order, are ``shape`` (square, ellipse, heart), ``scale`` (6 values in
    [0.5, 1]), ``orientation`` (40 angles ``2 pi k / 40`` in [0, 2 pi)), ``pos_x`` and ``pos_y``
    (32 values each). Index ``i`` enumerates every combination with ``pos_y`` varying fastest, as
    ``numpy.ravel_multi_index`` does, so ``len(DSprites()) == 3 * 6 * 40 * 32 * 32 == 737,280``.
    Increasing ``pos_x`` moves the sprite right (columns), increasing ``pos_y`` moves it down (rows);
    the sprite's centre spans [0.2, 0.8] of the canvas in each direction. ``size`` is the image side
    in pixels (64 as in the original data set; 32 renders the same sprites at half resolution).

    Nothing is stored: each image is rasterised when asked for, from the implicit equation of its
    shape evaluated at the pixel centres, so the same factors always give the same image.
    """

    shapes = ("square", "ellipse", "heart")
    factor_names = ("shape", "scale", "orientation", "pos_x", "pos_y")
    factor_sizes = (3, 6, 40, 32, 32)
    half_size = 0.13  # half the side of a square of scale 1, as a fraction of the canvas
    position_range = (0.2, 0.8)

    def __init__(self, size: int = 64):
        if not isinstance(size, int) or isinstance(size, bool) or size < 8:
            raise ValueError(f"size: expected an integer number of pixels >= 8, got {size!r}")
        self.size = size
        self.scales = torch.linspace(0.5, 1.0, self.factor_sizes[1], dtype=torch.float64)
        self.orientations = 2 * math.pi * torch.arange(self.factor_sizes[2],
                                                       dtype=torch.float64) / self.factor_sizes[2]
        low, high = self.position_range
        self.positions = torch.linspace(low, high, self.factor_sizes[3], dtype=torch.float64)
        # pixel centres in canvas units [0, 1]
        self._centres = (torch.arange(size, dtype=torch.float64) + 0.5) / size
        # mixed-radix place values: index = sum_k factor_k * stride_k, pos_y fastest
        strides = [1]
        for n in reversed(self.factor_sizes[1:]):
            strides.insert(0, strides[0] * n)
        self._strides = torch.tensor(strides, dtype=torch.long)

    def __len__(self) -> int:
        return math.prod(self.factor_sizes)

    def __repr__(self) -> str:
        return f"DSprites(size={self.size}): {len(self):,} images, factors {self.factor_names}"

    def _as_factors(self, factors) -> Tensor:
        if isinstance(factors, Tensor):
            if factors.dtype != torch.long:
                raise TypeError(f"factors: expected a LongTensor, got {factors.dtype}")
            table = factors
        elif isinstance(factors, Sequence) and not isinstance(factors, str):
            if not all(isinstance(f, (int, np.integer)) and not isinstance(f, bool) for f in factors):
                raise TypeError(f"factors: expected a sequence of 5 integers, got {factors!r}")
            table = torch.tensor([int(f) for f in factors], dtype=torch.long)
        else:
            raise TypeError("factors: expected a LongTensor or a sequence of 5 integers, "
                            f"got {type(factors).__name__}")
        if table.dim() not in (1, 2) or table.shape[-1] != len(self.factor_sizes):
            raise ValueError(f"factors: expected shape (5,) or (N, 5), got {tuple(table.shape)}")
        sizes = torch.tensor(self.factor_sizes)
        if bool(((table < 0) | (table >= sizes)).any()):
            raise ValueError(f"factors: each factor k must lie in [0, {self.factor_sizes}[k]), "
                             f"got {table.tolist()}")
        return table

    def index(self, factors) -> int | Tensor:
        """The index of the image with these factor indices: an int for one, a LongTensor for N x 5."""
        table = self._as_factors(factors)
        flat = (table * self._strides).sum(dim=-1)
        return int(flat) if table.dim() == 1 else flat

    def factors(self, index: int | Tensor) -> Tensor:
        """The five factor indices of image ``index`` (an int, or a LongTensor of N indices)."""
        if isinstance(index, Tensor):
            if index.dtype != torch.long or index.dim() > 1:
                raise TypeError(f"index: expected an int or a 1-D LongTensor, got {index.dtype} "
                                f"with shape {tuple(index.shape)}")
            flat = index
        elif isinstance(index, (int, np.integer)) and not isinstance(index, bool):
            flat = torch.tensor(int(index))
        else:
            raise TypeError(f"index: expected an int or a LongTensor, got {type(index).__name__}")
        if bool(((flat < 0) | (flat >= len(self))).any()):
            raise IndexError(f"index: expected values in [0, {len(self)}), got {flat.tolist()}")
        sizes = torch.tensor(self.factor_sizes)
        return (flat.unsqueeze(-1) // self._strides) % sizes

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        factors = self.factors(index)
        if factors.dim() != 1:
            raise TypeError("index: use render(factors(indices)) for a batch")
        return self.render(factors.unsqueeze(0))[0], factors

    def render(self, factors, batch_size: int = 2048) -> Tensor:
        """Images for an N x 5 table of factor indices: float N x 1 x size x size, values 0 or 1."""
        table = self._as_factors(factors)
        if table.dim() == 1:
            table = table.unsqueeze(0)
        out = torch.empty(len(table), 1, self.size, self.size)
        for first in range(0, len(table), batch_size):
            out[first:first + batch_size, 0] = self._draw(table[first:first + batch_size])
        return out

    def _draw(self, table: Tensor) -> Tensor:
        scale = self.scales[table[:, 1]].float()[:, None, None]
        theta = self.orientations[table[:, 2]].float()[:, None, None]
        cx = self.positions[table[:, 3]].float()[:, None, None]
        cy = self.positions[table[:, 4]].float()[:, None, None]
        centres = self._centres.float()
        # offsets from the centre in units of the sprite's half size, y pointing up
        unit = self.half_size * scale
        dx = (centres[None, None, :] - cx) / unit
        dy = (cy - centres[None, :, None]) / unit
        # rotate the canvas by -theta into the sprite's frame
        cos, sin = torch.cos(theta), torch.sin(theta)
        u = cos * dx + sin * dy
        v = cos * dy - sin * dx
        image = torch.empty(len(table), self.size, self.size, dtype=torch.bool)
        for k, name in enumerate(self.shapes):
            rows = table[:, 0] == k
            if bool(rows.any()):
                image[rows] = getattr(self, f"_{name}")(u[rows], v[rows])
        return image.float()

    @staticmethod
    def _square(u: Tensor, v: Tensor) -> Tensor:
        return torch.maximum(u.abs(), v.abs()) <= 1

    @staticmethod
    def _ellipse(u: Tensor, v: Tensor) -> Tensor:
        # semi-axes 1.2 (along the sprite's own x axis) and 0.6
        return (u / 1.2) ** 2 + (v / 0.6) ** 2 <= 1

    @staticmethod
    def _heart(u: Tensor, v: Tensor) -> Tensor:
        # the heart curve (a^2 + b^2 - 1)^3 <= a^2 b^3, tip pointing down, scaled to about [-1, 1]
        a, b = 1.15 * u, 1.15 * v + 0.12
        a2 = a * a
        r = a2 + b * b - 1
        return r * r * r <= a2 * b * b * b
