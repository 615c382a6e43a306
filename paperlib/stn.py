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

Also here: the paper's baselines (``fcn``, ``cnn``), their spatial-transformer versions and a
control with theta frozen at the identity (``build``); the distorted MNIST of Table 1's "RTS"
column (``placement_theta``, ``rts_mnist``) and "R" column (``rotate``, ``rotated_mnist``); and
``pose_slopes``, which measures how much of each digit's pose a trained transformer undoes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from paperlib import data
from paperlib._checks import float_tensor, positive_int
from paperlib.train import fit, seed_everything

# quick: the chapter on a CPU, RTS digits on a 42 x 42 canvas; paper: wider networks, full MNIST,
# longer training (use a GPU). Every model of a pair gets the same number of epochs (steps).
SCALES = {
    "quick": dict(offline=True, size=42, width=128, channels=8, batch_size=128, lr=3e-3, fused=True,
                  epochs={"FCN": 10, "ST-FCN": 10, "ST-FCN (θ = I)": 10, "CNN": 2, "ST-CNN": 2}),
    "paper": dict(offline=None, size=42, width=256, channels=32, batch_size=256, lr=1e-3, fused=True,
                  epochs={"FCN": 100, "ST-FCN": 100, "ST-FCN (θ = I)": 100, "CNN": 100, "ST-CNN": 100}),
}
FROZEN = " (θ = I)"
MODELS = ("FCN", "ST-FCN", "ST-FCN" + FROZEN, "CNN", "ST-CNN")


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


def localisation_fcn(width: int = 32, pixels: int = 28 * 28) -> nn.Module:
    """A small fully connected localisation network: two ReLU layers of ``width`` units."""
    for name, value in (("width", width), ("pixels", pixels)):
        positive_int(name, value)
    return nn.Sequential(nn.Flatten(), nn.Linear(pixels, width), nn.ReLU(),
                         nn.Linear(width, width), nn.ReLU())


def localisation_cnn(channels: int = 8, width: int = 32, size: int = 28) -> nn.Module:
    """A small convolutional localisation network for ``size`` x ``size`` inputs (two 5x5
    convolutions, each with 2x2 max-pooling, then ``width`` units)."""
    for name, value in (("channels", channels), ("width", width), ("size", size)):
        positive_int(name, value)
    side = ((size - 4) // 2 - 4) // 2
    if side < 1:
        raise ValueError(f"size: expected at least 16 pixels, got {size}")
    return nn.Sequential(nn.Conv2d(1, channels, 5), nn.MaxPool2d(2), nn.ReLU(),
                         nn.Conv2d(channels, channels, 5), nn.MaxPool2d(2), nn.ReLU(),
                         nn.Flatten(), nn.Linear(channels * side * side, width), nn.ReLU())


class Classifier(nn.Module):
    """A classifier of ``size`` x ``size`` images with an optional spatial transformer in front
    of it; returns logits."""

    def __init__(self, body: nn.Module, stn: STN | None = None, size: int = 28):
        super().__init__()
        positive_int("size", size)
        self.stn, self.body, self.size = stn, body, size

    def forward(self, images: Tensor) -> Tensor:
        float_tensor("images", images, 4)
        if images.shape[1:] != (1, self.size, self.size):
            raise ValueError(f"images: expected N x 1 x {self.size} x {self.size}, "
                             f"got shape {tuple(images.shape)}")
        return self.body(images if self.stn is None else self.stn(images))

    def loss(self, images: Tensor, labels: Tensor) -> Tensor:
        """Mean cross-entropy on the logits."""
        return F.cross_entropy(self(images), labels)


def fcn(width: int = 128, stn: bool = False, fused: bool = False, size: int = 28) -> Classifier:
    """The FCN baseline (two ReLU hidden layers of ``width``), or ST-FCN with ``stn=True``."""
    for name, value in (("width", width), ("size", size)):
        positive_int(name, value)
    body = nn.Sequential(nn.Flatten(), nn.Linear(size * size, width), nn.ReLU(),
                         nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10))
    transformer = STN(localisation_fcn(pixels=size * size), 32, fused=fused) if stn else None
    return Classifier(body, transformer, size)


def cnn(channels: int = 8, stn: bool = False, fused: bool = False, size: int = 28) -> Classifier:
    """The CNN baseline (9x9 and 7x7 convolutions, each with 2x2 max-pooling), or ST-CNN."""
    for name, value in (("channels", channels), ("size", size)):
        positive_int(name, value)
    side = size // 2 // 2
    body = nn.Sequential(nn.Conv2d(1, channels, 9, padding=4), nn.MaxPool2d(2), nn.ReLU(),
                         nn.Conv2d(channels, channels, 7, padding=3), nn.MaxPool2d(2), nn.ReLU(),
                         nn.Flatten(), nn.Linear(channels * side * side, 10))
    transformer = STN(localisation_cnn(size=size), 32, fused=fused) if stn else None
    return Classifier(body, transformer, size)


def build(name: str, scale: dict) -> Classifier:
    """One of ``MODELS`` at the given ``SCALES`` entry.

    "ST-FCN, theta = I" is the control: an ST-FCN whose regression layer is frozen at its
    identity start, so theta never moves: the same network, the same steps, no transformation.
    """
    if name not in MODELS:
        raise ValueError(f"name: expected one of {MODELS}, got {name!r}")
    size = scale["size"]
    if "FCN" in name:
        model = fcn(scale["width"], stn=name.startswith("ST"), fused=scale["fused"], size=size)
    else:
        model = cnn(scale["channels"], stn=name.startswith("ST"), fused=scale["fused"], size=size)
    if name.endswith(FROZEN):
        model.stn.regression.requires_grad_(False)
    return model


def train(name: str, scale: dict, images: Tensor, labels: Tensor, seed: int = 0,
          device: torch.device | str = "cpu") -> Classifier:
    """Build model ``name`` and fit it with Adam for ``scale["epochs"][name]`` epochs."""
    generator = seed_everything(seed)
    model = build(name, scale).to(device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=scale["lr"])
    fit(model, model.loss, (images, labels), optimizer, scale["epochs"][name],
        scale["batch_size"], generator, progress=False)
    return model
