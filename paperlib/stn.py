"""Spatial transformer networks: Jaderberg, Simonyan, Zisserman & Kavukcuoglu (NeurIPS 2015).

Explained, derived and checked in the chapter ``chapters/cnn/spatial_transformer.ipynb``.
The three parts of a spatial transformer, written from the paper's equations:

* the *localisation network* regresses the six numbers of ``theta`` (``STN``, whose regression
  layer starts at the identity transform);
* the *grid generator* maps every output pixel's normalised coordinates through ``theta``
  (``affine_grid``, eq. 1);
* the *sampler* reads the input at those points with the bilinear kernel (``bilinear_sample``,
  eqs. 3-5; its sub-gradients, eqs. 6-7, are what autograd computes).

Normalised coordinates run from -1 (left / top edge) to +1 (right / bottom edge), ``x`` to the
right and ``y`` downwards, as in ``torch.nn.functional.affine_grid`` and ``grid_sample``. With
``align_corners=False`` (the default here and in torch) -1 and +1 are the outer *edges* of the
border pixels; with ``align_corners=True`` they are the border pixels' *centres*.

Also here: ``theta_jacobian``, the gradient of the output with respect to theta through the grid
(``prop-stn-theta-gradient``). The networks of Table 1 (the baselines, their spatial-transformer
versions and the control with theta frozen) are ``paperlib.stn_models``; the distorted MNIST they
are trained on is ``paperlib.distorted_mnist``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from paperlib._checks import float_tensor, positive_int


def normalised_coordinates(steps: int, align_corners: bool = False, **like) -> Tensor:
    """The normalised coordinate of the centre of each of ``steps`` pixels along one axis."""
    positive_int("steps", steps)
    j = torch.arange(steps, **like)
    if steps == 1:
        return torch.zeros(1, **like)
    if align_corners:
        # centres of the border pixels at -1 and +1:  x = 2 j / (W - 1) - 1
        return 2 * j / (steps - 1) - 1
    # edges of the border pixels at -1 and +1:  x = (2 j + 1) / W - 1
    return (2 * j + 1) / steps - 1


def to_pixels(x_s: Tensor, steps: int, align_corners: bool = False) -> Tensor:
    """Normalised coordinates to pixel indices (0 .. steps - 1): the inverse of the map above."""
    positive_int("steps", steps)
    if align_corners:
        return (x_s + 1) * (steps - 1) / 2
    return ((x_s + 1) * steps - 1) / 2


def affine_grid(theta: Tensor, size, align_corners: bool = False) -> Tensor:
    """The sampling grid of eq. (1): for each output pixel, where to read the input.

    ``theta`` is N x 2 x 3, ``size`` the output's (N, C, H, W). Returns N x H x W x 2 holding
    the normalised source coordinates ``(x_s, y_s)``, as ``F.affine_grid`` does. With the identity
    theta and the input's size it samples every pixel at its own centre (``prop-stn-identity``).
    """
    float_tensor("theta", theta, 3)
    if theta.shape[1:] != (2, 3):
        raise ValueError(f"theta: expected N x 2 x 3, got shape {tuple(theta.shape)}")
    size = tuple(size)
    if len(size) != 4 or any(not isinstance(s, int) or s < 1 for s in size):
        raise ValueError(f"size: expected four positive integers (N, C, H, W), got {size}")
    if size[0] != len(theta):
        raise ValueError(f"size: N = {size[0]} but theta holds {len(theta)} transforms")
    _, _, height, width = size
    like = dict(dtype=theta.dtype, device=theta.device)
    y_t, x_t = torch.meshgrid(normalised_coordinates(height, align_corners, **like),
                              normalised_coordinates(width, align_corners, **like), indexing="ij")
    # G_i = (x_t, y_t, 1): the regular grid of target coordinates, homogeneous
    target = torch.stack([x_t, y_t, torch.ones_like(x_t)], dim=-1)
    # (x_s, y_s)^T = A_theta (x_t, y_t, 1)^T   (eq. 1)
    return torch.einsum("hwk,nik->nhwi", target, theta)


def bilinear_sample(images: Tensor, grid: Tensor, align_corners: bool = False, *,
                    validate: bool = False) -> Tensor:
    """The bilinear sampler of eq. (5), with zeros outside the image (``lem-stn-bilinear``; its
    gradients are ``prop-stn-gradients``).

    ``images`` is N x C x H x W (the paper's U), ``grid`` N x H' x W' x 2 normalised source
    coordinates; returns the N x C x H' x W' output V. Equal to ``F.grid_sample(images, grid,
    mode="bilinear", padding_mode="zeros")`` in values and in gradients. ``validate=True`` also
    rejects non-finite coordinates, which reads the grid back from the device.
    """
    float_tensor("images", images, 4)
    float_tensor("grid", grid, 4)
    if grid.shape[-1] != 2 or len(grid) != len(images):
        raise ValueError(f"grid: expected N x H' x W' x 2 with N = {len(images)}, "
                         f"got shape {tuple(grid.shape)}")
    if validate and not bool(torch.isfinite(grid).all()):
        raise ValueError("grid: expected finite coordinates")
    n, c, height, width = images.shape
    x = to_pixels(grid[..., 0], width, align_corners)
    y = to_pixels(grid[..., 1], height, align_corners)
    # Only the 4 pixels m in {m0, m0 + 1}, n in {n0, n0 + 1} around (x, y) have a non-zero kernel.
    # On [m0, m0 + 1) the kernel max(0, 1 - |x - m|) is 1 - (x - m0) for m0 and x - m0 for m0 + 1;
    # writing it that way makes autograd take its one-sided derivative from the right at integer
    # x, the convention grid_sample uses (see the chapter on the kink of eq. 7).
    m0, n0 = torch.floor(x).detach(), torch.floor(y).detach()
    fx, fy = x - m0, y - n0
    flat = images.reshape(n, c, height * width)
    out = images.new_zeros(n, c, *grid.shape[1:3])
    for m, kx in ((m0, 1 - fx), (m0 + 1, fx)):
        for row, ky in ((n0, 1 - fy), (n0 + 1, fy)):
            inside = (m >= 0) & (m <= width - 1) & (row >= 0) & (row <= height - 1)
            index = (row.clamp(0, height - 1) * width + m.clamp(0, width - 1)).long()
            u = flat.gather(2, index.reshape(n, 1, -1).expand(n, c, -1)).reshape(out.shape)
            # V_i = sum_n sum_m U_nm max(0, 1 - |x_i - m|) max(0, 1 - |y_i - n|)   (eq. 5)
            out = out + u * (kx * ky * inside).unsqueeze(1)
    return out


def theta_jacobian(images: Tensor, theta: Tensor, size, align_corners: bool = False) -> Tensor:
    """dV/dtheta through the grid, written out: N x C x H' x W' x 2 x 3, entry [..., r, j] the
    derivative of output pixel V_i with respect to theta_(r+1)(j+1). Implements
    ``prop-stn-theta-gradient``.

    ``images`` is the input U (N x C x H x W), ``theta`` N x 2 x 3 and ``size`` the output's
    (N, C, H', W'). The chain is eq. (7) of the paper, dV_i/dx_i, read at the sampling point in
    pixel units, times dx_i/dtheta_1j = (W/2) g_j with g_i = (x_i^t, y_i^t, 1) (``(W - 1)/2`` with
    ``align_corners=True``); the same with H for the second row. At a kink it takes the derivative
    from the right, as autograd through ``bilinear_sample`` and ``F.grid_sample`` does.
    """
    float_tensor("images", images, 4)
    grid = affine_grid(theta, size, align_corners)          # checks theta and size
    if len(images) != len(theta):
        raise ValueError(f"images: expected N = {len(theta)} images, one per theta, "
                         f"got {len(images)}")
    _, _, height, width = images.shape
    identity = torch.eye(2, 3, dtype=theta.dtype, device=theta.device).expand(len(theta), 2, 3)
    target = affine_grid(identity, size, align_corners)      # (x_t, y_t) of every output pixel
    # g_i = (x_t, y_t, 1)
    g = torch.cat([target, torch.ones_like(target[..., :1])], dim=-1)
    slopes = []
    for axis, steps in ((0, width), (1, height)):
        # d(pixel)/d(normalised): W / 2, or (W - 1) / 2 with align_corners=True
        scale = (steps - 1) / 2 if align_corners else steps / 2
        if scale == 0:      # a single pixel with align_corners=True: every x_s reads pixel 0
            slopes.append(images.new_zeros(len(images), images.shape[1], *grid.shape[1:3]))
            continue
        pixel = to_pixels(grid[..., axis], steps, align_corners)
        below = torch.floor(pixel)
        # eq. (7) between whole pixels: dV/dx = V read at column m0 + 1 minus V read at column m0
        # (the y kernel weighs both reads); m0 = floor(x) gives the right derivative at a kink
        reads = []
        for whole in (below + 1, below):
            moved = grid.clone()
            moved[..., axis] = grid[..., axis] + (whole - pixel) / scale
            reads.append(bilinear_sample(images, moved, align_corners))
        # dV_i/dtheta_1j = dV_i/dx_i * (W/2) g_j   (and H/2 for the second row)
        slopes.append(scale * (reads[0] - reads[1]))
    return torch.stack(slopes, dim=-1).unsqueeze(-1) * g[:, None, :, :, None, :]


def rotation_theta(degrees: Tensor) -> Tensor:
    """The ``theta`` (N x 2 x 3) whose sampler turns image content anticlockwise by ``degrees``.

    The grid maps output to input, so this is the rotation matrix [[cos, -sin], [sin, cos]] in
    the y-downwards coordinates, which turns the *sampling points* clockwise on screen.
    """
    float_tensor("degrees", degrees, 1)
    a = torch.deg2rad(degrees)
    cos, sin, zero = torch.cos(a), torch.sin(a), torch.zeros_like(a)
    return torch.stack([torch.stack([cos, -sin, zero], -1), torch.stack([sin, cos, zero], -1)], 1)


def theta_angle(theta: Tensor) -> Tensor:
    """The anticlockwise rotation (degrees) of the rotation closest to each theta's 2 x 2 part.

    The inverse of ``rotation_theta`` on rotations; for a general A it is the angle of the
    rotation R that maximises trace(R^T A).
    """
    float_tensor("theta", theta, 3)
    if theta.shape[1:] != (2, 3):
        raise ValueError(f"theta: expected N x 2 x 3, got shape {tuple(theta.shape)}")
    return torch.rad2deg(torch.atan2(theta[:, 1, 0] - theta[:, 0, 1], theta[:, 0, 0] + theta[:, 1, 1]))


class STN(nn.Module):
    """A spatial transformer: localisation network, grid generator, bilinear sampler.

    ``localisation`` maps an N x C x H x W input to N x ``features``; a linear regression layer
    turns that into theta. Its weights start at zero and its bias at the identity transform,
    so at initialisation the module returns its input unchanged. ``fused=True`` samples with
    torch's ``F.affine_grid`` / ``F.grid_sample`` instead of the functions above: the same numbers
    (the tests check values and gradients), a few times faster on a CPU.
    """

    def __init__(self, localisation: nn.Module, features: int, align_corners: bool = False,
                 fused: bool = False):
        super().__init__()
        positive_int("features", features)
        self.localisation = localisation
        self.regression = nn.Linear(features, 6)
        self.align_corners, self.fused = align_corners, fused
        nn.init.zeros_(self.regression.weight)
        with torch.no_grad():
            self.regression.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]))

    def theta(self, images: Tensor) -> Tensor:
        """theta = f_loc(U), N x 2 x 3."""
        return self.regression(self.localisation(images)).view(-1, 2, 3)

    def transform(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """The output V and the theta that produced it."""
        float_tensor("images", images, 4)
        theta = self.theta(images)
        if self.fused:
            grid = F.affine_grid(theta, list(images.shape), align_corners=self.align_corners)
            return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros",
                                 align_corners=self.align_corners), theta
        grid = affine_grid(theta, images.shape, self.align_corners)
        return bilinear_sample(images, grid, self.align_corners), theta

    def forward(self, images: Tensor) -> Tensor:
        return self.transform(images)[0]

