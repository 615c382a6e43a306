"""The distorted MNIST of Jaderberg et al.'s Table 1: rotated digits ("R") and rotated, scaled and
translated digits on a larger canvas ("RTS"), each with its pose, and ``pose_slopes``, which
measures how much of each digit's pose a trained spatial transformer undoes.

Used by ``chapters/cnn/spatial_transformer.ipynb``. The images are drawn with the sampler of
:mod:`paperlib.stn`, from angles, scales and shifts that a seed fixes on every machine.
"""

from __future__ import annotations

import torch
from torch import Tensor

from paperlib import data
from paperlib._checks import float_tensor, positive_int
from paperlib.stn import affine_grid, bilinear_sample, rotation_theta, theta_angle


def rotate(images: Tensor, degrees: Tensor) -> Tensor:
    """Turn each image anticlockwise by its angle in degrees (bilinear, zeros outside)."""
    float_tensor("images", images, 4)
    float_tensor("degrees", degrees, 1)
    if len(degrees) != len(images):
        raise ValueError(f"degrees: expected one angle per image ({len(images)}), got {len(degrees)}")
    theta = rotation_theta(degrees.to(images.dtype))
    return bilinear_sample(images, affine_grid(theta, images.shape))


def rotated_mnist(split: str = "train", max_degrees: float = 90.0, seed: int = 0,
                  offline: bool | None = True) -> tuple[Tensor, Tensor, Tensor]:
    """MNIST with each digit turned by its own angle, uniform in [-max_degrees, max_degrees].

    Table 1's "R" column uses +-90 degrees. Returns ``(images, labels, degrees)``; the angles
    come from ``seed`` and are the same on every machine.
    """
    if not 0 <= max_degrees <= 180:
        raise ValueError(f"max_degrees: expected a value in [0, 180], got {max_degrees}")
    images, labels = data.mnist(split, offline=offline)
    g = torch.Generator().manual_seed(seed)
    degrees = (2 * torch.rand(len(images), generator=g) - 1) * max_degrees
    return rotate(images, degrees), labels, degrees


def placement_theta(degrees: Tensor, scales: Tensor, shifts: Tensor, canvas: int,
                    digit: int = 28) -> Tensor:
    """The ``theta`` that draws a ``digit``-pixel image onto a ``canvas``-pixel one, turned
    anticlockwise by ``degrees``, magnified by ``scales`` and moved by ``shifts`` (N x 2, pixels,
    x right and y down) from the centre.

    A canvas point x (normalised) reads the digit at M (x - c), with c = shift / (canvas / 2)
    and M = canvas / (digit s) times the rotation of ``rotation_theta``.
    """
    for name, value, dims in (("degrees", degrees, 1), ("scales", scales, 1), ("shifts", shifts, 2)):
        float_tensor(name, value, dims)
    if len(scales) != len(degrees) or tuple(shifts.shape) != (len(degrees), 2):
        raise ValueError(f"shifts: expected N x 2 with N = {len(degrees)} (and one scale each), "
                         f"got scales {tuple(scales.shape)} and shifts {tuple(shifts.shape)}")
    if not bool((scales > 0).all()):
        raise ValueError("scales: expected positive magnifications")
    positive_int("canvas", canvas)
    positive_int("digit", digit)
    # M = (canvas / digit) R(alpha) / s: canvas half-widths to digit half-widths, turned
    matrix = rotation_theta(degrees)[:, :, :2] * (canvas / digit / scales).view(-1, 1, 1)
    # x_s = M (x_t - c) = M x_t - M c,  c = shift / (canvas / 2)
    offset = -(matrix @ (shifts * 2 / canvas).unsqueeze(-1))
    return torch.cat([matrix, offset], dim=-1)


def rts_mnist(split: str = "train", canvas: int = 42, max_degrees: float = 45.0,
              scale_range: tuple[float, float] = (0.7, 1.2), max_shift: float = 7.0, seed: int = 0,
              offline: bool | None = True) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """Table 1's "RTS" MNIST: each digit turned by up to +-``max_degrees``, scaled by a factor in
    ``scale_range`` and placed up to ``max_shift`` pixels off centre (each axis, uniform) on a
    ``canvas`` x ``canvas`` image (the paper: +-45 degrees, 0.7-1.2, on 42 x 42).

    Returns ``(images, labels, pose)``; ``pose`` holds the ``degrees``, ``scales`` and ``shifts``
    (N x 2 pixels), all drawn from ``seed`` and the same on every machine.
    """
    if not 0 <= max_degrees <= 180:
        raise ValueError(f"max_degrees: expected a value in [0, 180], got {max_degrees}")
    low, high = scale_range
    if not 0 < low <= high:
        raise ValueError(f"scale_range: expected 0 < low <= high, got {scale_range}")
    if not 0 <= max_shift <= canvas / 2:
        raise ValueError(f"max_shift: expected a value in [0, canvas / 2], got {max_shift}")
    images, labels = data.mnist(split, offline=offline)
    g = torch.Generator().manual_seed(seed)
    n = len(images)
    pose = dict(degrees=(2 * torch.rand(n, generator=g) - 1) * max_degrees,
                scales=low + (high - low) * torch.rand(n, generator=g),
                shifts=(2 * torch.rand(n, 2, generator=g) - 1) * max_shift)
    theta = placement_theta(pose["degrees"], pose["scales"], pose["shifts"], canvas,
                            images.shape[-1])
    grid = affine_grid(theta, (n, 1, canvas, canvas))
    return bilinear_sample(images, grid), labels, pose


def _slope(x: Tensor, y: Tensor) -> float:
    # least squares y ~ a + slope x:  slope = cov(x, y) / var(x)
    x, y = x.double() - x.double().mean(), y.double() - y.double().mean()
    return float((x * y).sum() / (x * x).sum())


def pose_slopes(theta: Tensor, pose: dict[str, Tensor], canvas: int) -> dict[str, float]:
    """How far a transformer's ``theta`` undoes each digit's pose (from ``rts_mnist``).

    Least-squares slopes over the digits, each 1 in size for a transformer that undoes that part
    of the pose exactly and 0 for one that ignores it:

    * ``translation``: theta's translation (where the output's centre reads) on the digit's
      offset, both normalised, x and y pooled; undoing it: slope 1;
    * ``rotation``: the angle of theta (``theta_angle``) on the digit's angle; undoing it: -1;
    * ``scale``: log sqrt|det| of theta's 2 x 2 part on log scale; undoing it: 1.
    """
    float_tensor("theta", theta, 3)
    if theta.shape[1:] != (2, 3):
        raise ValueError(f"theta: expected N x 2 x 3, got shape {tuple(theta.shape)}")
    if not isinstance(pose, dict) or {"degrees", "scales", "shifts"} - set(pose):
        raise ValueError("pose: expected a dict with degrees, scales and shifts (see rts_mnist)")
    if any(len(v) != len(theta) for v in pose.values()):
        raise ValueError(f"pose: expected one entry per theta ({len(theta)})")
    positive_int("canvas", canvas)
    theta = theta.detach().cpu().double()
    offset = pose["shifts"].double() * 2 / canvas          # c = shift / (canvas / 2)
    zoom = theta[:, :, :2].det().abs().sqrt()
    return dict(translation=_slope(offset.flatten(), theta[:, :, 2].flatten()),
                rotation=_slope(pose["degrees"], theta_angle(theta)),
                scale=_slope(pose["scales"].double().log(), zoom.log()))
