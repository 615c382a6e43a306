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
(``prop-stn-theta-gradient``); the paper's baselines (``fcn``, ``cnn``), their spatial-transformer
versions and a control with theta frozen at the identity (``build``). The distorted MNIST of
Table 1 is ``paperlib.distorted_mnist``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from paperlib._checks import float_tensor, positive_int
from paperlib.train import fit, seed_everything

# quick: the chapter on a CPU, RTS digits on a 42 x 42 canvas; paper: wider networks, full MNIST,
# longer training (use a GPU). Every model of a pair gets the same number of epochs (steps).
SCALES = {
    "quick": dict(offline=True, image_size=42, hidden=128, channels=8, batch_size=128, lr=3e-3, fused=True,
                  epochs={"FCN": 10, "ST-FCN": 10, "ST-FCN (θ = I)": 10, "CNN": 2, "ST-CNN": 2}),
    "paper": dict(offline=None, image_size=42, hidden=256, channels=32, batch_size=256, lr=1e-3, fused=True,
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


def localisation_fcn(hidden: int = 32, x_dim: int = 28 * 28) -> nn.Module:
    """A small fully connected localisation network: two ReLU layers of ``hidden`` units."""
    for name, value in (("hidden", hidden), ("x_dim", x_dim)):
        positive_int(name, value)
    return nn.Sequential(nn.Flatten(), nn.Linear(x_dim, hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden), nn.ReLU())


def localisation_cnn(channels: int = 8, hidden: int = 32, image_size: int = 28) -> nn.Module:
    """A small convolutional localisation network for ``image_size`` x ``image_size`` inputs (two
    5x5 convolutions, each with 2x2 max-pooling, then ``hidden`` units)."""
    for name, value in (("channels", channels), ("hidden", hidden), ("image_size", image_size)):
        positive_int(name, value)
    side = ((image_size - 4) // 2 - 4) // 2
    if side < 1:
        raise ValueError(f"image_size: expected at least 16 pixels, got {image_size}")
    return nn.Sequential(nn.Conv2d(1, channels, 5), nn.MaxPool2d(2), nn.ReLU(),
                         nn.Conv2d(channels, channels, 5), nn.MaxPool2d(2), nn.ReLU(),
                         nn.Flatten(), nn.Linear(channels * side * side, hidden), nn.ReLU())


class Classifier(nn.Module):
    """A classifier of ``image_size`` x ``image_size`` images with an optional spatial transformer
    in front of it; returns logits."""

    def __init__(self, body: nn.Module, stn: STN | None = None, image_size: int = 28):
        super().__init__()
        positive_int("image_size", image_size)
        self.stn, self.body, self.image_size = stn, body, image_size

    def forward(self, images: Tensor) -> Tensor:
        float_tensor("images", images, 4)
        side = self.image_size
        if images.shape[1:] != (1, side, side):
            raise ValueError(f"images: expected N x 1 x {side} x {side}, "
                             f"got shape {tuple(images.shape)}")
        return self.body(images if self.stn is None else self.stn(images))

    def loss(self, images: Tensor, labels: Tensor) -> Tensor:
        """Mean cross-entropy on the logits."""
        return F.cross_entropy(self(images), labels)


def fcn(hidden: int = 128, stn: bool = False, fused: bool = False, image_size: int = 28
        ) -> Classifier:
    """The FCN baseline (two ReLU hidden layers of ``hidden`` units), or ST-FCN with ``stn=True``."""
    for name, value in (("hidden", hidden), ("image_size", image_size)):
        positive_int(name, value)
    x_dim = image_size * image_size
    body = nn.Sequential(nn.Flatten(), nn.Linear(x_dim, hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 10))
    transformer = STN(localisation_fcn(x_dim=x_dim), 32, fused=fused) if stn else None
    return Classifier(body, transformer, image_size)


def cnn(channels: int = 8, stn: bool = False, fused: bool = False, image_size: int = 28
        ) -> Classifier:
    """The CNN baseline (9x9 and 7x7 convolutions, each with 2x2 max-pooling), or ST-CNN."""
    for name, value in (("channels", channels), ("image_size", image_size)):
        positive_int(name, value)
    side = image_size // 2 // 2
    body = nn.Sequential(nn.Conv2d(1, channels, 9, padding=4), nn.MaxPool2d(2), nn.ReLU(),
                         nn.Conv2d(channels, channels, 7, padding=3), nn.MaxPool2d(2), nn.ReLU(),
                         nn.Flatten(), nn.Linear(channels * side * side, 10))
    transformer = STN(localisation_cnn(image_size=image_size), 32, fused=fused) if stn else None
    return Classifier(body, transformer, image_size)


def build(name: str, scale: dict) -> Classifier:
    """One of ``MODELS`` at the given ``SCALES`` entry.

    "ST-FCN, theta = I" is the control: an ST-FCN whose regression layer is frozen at its
    identity start, so theta never moves: the same network, the same steps, no transformation.
    """
    if name not in MODELS:
        raise ValueError(f"name: expected one of {MODELS}, got {name!r}")
    side = scale["image_size"]
    if "FCN" in name:
        model = fcn(scale["hidden"], stn=name.startswith("ST"), fused=scale["fused"], image_size=side)
    else:
        model = cnn(scale["channels"], stn=name.startswith("ST"), fused=scale["fused"], image_size=side)
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
