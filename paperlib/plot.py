"""Figures shared by the chapters: the book's style, image grids (reconstructions, samples,
latent manifolds)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import torch
from torch import Tensor

from paperlib._checks import positive_int


STYLE = Path(__file__).with_name("book.mplstyle")


def use_book_style() -> None:
    """Draw every later figure in the book's style (``book.mplstyle`` beside this module):
    high-DPI, transparent, mid-tone colours and fonts legible on the light and dark themes."""
    plt.style.use(STYLE)


def tile(images: Tensor, ncol: int, pad: int = 1) -> Tensor:
    """Arrange ``images`` (N x H x W, N x 1 x H x W, or N x H*W for square images) in a grid.

    Returns one H' x W' tensor with ``pad`` pixels of value 0 (white in ``gray_r``) between
    tiles, row by row.
    """
    images = images.detach().cpu().float()
    if images.dim() == 2:
        side = int(round(images.shape[1] ** 0.5))
        if side * side != images.shape[1]:
            raise ValueError(f"images: {images.shape[1]} values per row is not a square image")
        images = images.reshape(-1, side, side)
    if images.dim() == 4:
        if images.shape[1] != 1:
            raise ValueError(f"images: expected one channel, got shape {tuple(images.shape)}")
        images = images[:, 0]
    if images.dim() != 3:
        raise ValueError(f"images: expected N x H x W, got shape {tuple(images.shape)}")
    positive_int("ncol", ncol)
    n, h, w = images.shape
    nrow = -(-n // ncol)
    canvas = torch.zeros(nrow * (h + pad) + pad, ncol * (w + pad) + pad)
    for k in range(n):
        r, c = divmod(k, ncol)
        top, left = pad + r * (h + pad), pad + c * (w + pad)
        canvas[top:top + h, left:left + w] = images[k]
    return canvas


def image_grid(images: Tensor, ncol: int, ax: plt.Axes | None = None, title: str = "") -> plt.Axes:
    """Draw ``images`` with values in [0, 1] as a grey-scale grid on ``ax``."""
    ax = ax if ax is not None else plt.gca()
    ax.imshow(tile(images, ncol), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax
