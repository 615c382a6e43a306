"""The networks of Table 1 of the spatial-transformer paper (Jaderberg et al., NeurIPS 2015).

Used by the chapter ``chapters/cnn/spatial_transformer.ipynb`` for its experiment: the paper's
baselines (``fcn``, ``cnn``), their spatial-transformer versions (``ST-FCN``, ``ST-CNN``), and a
control with theta frozen at the identity, built by name (``build``) and trained at the chapter's
scales (``SCALES``, ``train``). The transformer itself (localisation network, grid generator,
sampler) is :class:`paperlib.stn.STN`; the distorted MNIST they are trained on is
:mod:`paperlib.distorted_mnist`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from paperlib._checks import float_tensor, positive_ints
from paperlib.stn import STN
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
# the localisation networks' output features, which the transformer's regression layer reads
LOCALISATION_FEATURES = 32


def localisation_fcn(hidden: int = LOCALISATION_FEATURES, x_dim: int = 28 * 28) -> nn.Module:
    """A small fully connected localisation network: two ReLU layers of ``hidden`` units."""
    positive_ints(hidden=hidden, x_dim=x_dim)
    return nn.Sequential(nn.Flatten(), nn.Linear(x_dim, hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden), nn.ReLU())


def localisation_cnn(channels: int = 8, hidden: int = LOCALISATION_FEATURES, image_size: int = 28
                     ) -> nn.Module:
    """A small convolutional localisation network for ``image_size`` x ``image_size`` inputs (two
    5x5 convolutions, each with 2x2 max-pooling, then ``hidden`` units)."""
    positive_ints(channels=channels, hidden=hidden, image_size=image_size)
    side = ((image_size - 4) // 2 - 4) // 2
    if side < 1:
        raise ValueError(f"image_size: expected at least 16 pixels, got {image_size}")
    return nn.Sequential(nn.Conv2d(1, channels, 5), nn.MaxPool2d(2), nn.ReLU(),
                         nn.Conv2d(channels, channels, 5), nn.MaxPool2d(2), nn.ReLU(),
                         nn.Flatten(), nn.Linear(channels * side * side, hidden), nn.ReLU())


def fcn(hidden: int = 128, image_size: int = 28) -> nn.Module:
    """The FCN baseline's layers: two ReLU hidden layers of ``hidden`` units, then 10 logits."""
    positive_ints(hidden=hidden, image_size=image_size)
    return nn.Sequential(nn.Flatten(), nn.Linear(image_size * image_size, hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 10))


def cnn(channels: int = 8, image_size: int = 28) -> nn.Module:
    """The CNN baseline's layers: 9x9 and 7x7 convolutions, each with 2x2 max-pooling, then 10 logits."""
    positive_ints(channels=channels, image_size=image_size)
    side = image_size // 2 // 2
    return nn.Sequential(nn.Conv2d(1, channels, 9, padding=4), nn.MaxPool2d(2), nn.ReLU(),
                         nn.Conv2d(channels, channels, 7, padding=3), nn.MaxPool2d(2), nn.ReLU(),
                         nn.Flatten(), nn.Linear(channels * side * side, 10))


class Classifier(nn.Module):
    """A classifier of ``image_size`` x ``image_size`` images: ``body`` (an ``fcn`` or a ``cnn``)
    with an optional spatial transformer in front of it; returns logits."""

    def __init__(self, body: nn.Module, stn: STN | None = None, image_size: int = 28):
        super().__init__()
        positive_ints(image_size=image_size)
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


def build(name: str, scale: dict) -> Classifier:
    """One of ``MODELS`` at the given ``SCALES`` entry: FCN or CNN, "ST-" puts a spatial
    transformer in front (its localisation network of the same kind).

    "ST-FCN (θ = I)" is the control: an ST-FCN whose regression layer is frozen at its
    identity start, so theta never moves: the same network, the same steps, no transformation.
    """
    if name not in MODELS:
        raise ValueError(f"name: expected one of {MODELS}, got {name!r}")
    side, fully_connected = scale["image_size"], "FCN" in name
    body = fcn(scale["hidden"], side) if fully_connected else cnn(scale["channels"], side)
    transformer = None
    if name.startswith("ST"):
        localisation = (localisation_fcn(x_dim=side * side) if fully_connected
                        else localisation_cnn(image_size=side))
        transformer = STN(localisation, LOCALISATION_FEATURES, fused=scale["fused"])
    model = Classifier(body, transformer, side)
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
