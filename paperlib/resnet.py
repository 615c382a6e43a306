"""Deep residual learning: He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition" (CVPR 2016).

Explained, derived and checked in the chapter ``chapters/cnn/resnet.ipynb``. The pure functions
(``pad_shortcut``, ``stack_jacobian``, ``count_parameters``) are what the chapter's derivations
arrive at; ``cifar_resnet`` builds the paper's 6n+2-layer CIFAR networks (section 4.2) with
option-A shortcuts (identity, zero-padded where the width grows), and their plain counterparts.
``deepen`` makes the paper's identity-mapping argument exact, and ``gradient_norms`` measures
the gradient at the input and at every layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from paperlib._checks import positive_ints
from paperlib.train import History, fit

WIDTHS = (16, 32, 64)  # filters in the three stages, on 32x32, 16x16 and 8x8 maps (section 4.2)

# QUICK: scikit-learn's 8x8 digits on a CPU. PAPER: the paper's depths and schedule (SGD,
# momentum 0.9, weight decay 1e-4, batch 128, lr 0.1 divided by 10 at 1/2 and 3/4 of training,
# 64k iterations), on full MNIST since paperlib ships no CIFAR-10 loader.
SCALES = {
    "quick": {"depths": (8, 20, 56), "data": "digits", "epochs": 4, "batch_size": 32,
              "lr": 0.1, "momentum": 0.0, "weight_decay": 1e-4, "milestones": ()},
    "paper": {"depths": (20, 32, 44, 56, 110), "data": "mnist", "epochs": 137, "batch_size": 128,
              "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4, "milestones": (68, 103)},
}


def blocks_per_stage(depth: int) -> int:
    """n for a network of ``depth = 6n + 2`` weighted layers."""
    if isinstance(depth, bool) or not isinstance(depth, int):
        raise TypeError(f"depth: expected an integer 6n + 2, got {type(depth).__name__}")
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"depth: expected 6n + 2 with n >= 1 (8, 14, 20, 32, 44, 56, 110, ...), "
                         f"got {depth}")
    return (depth - 2) // 6


def pad_shortcut(x: Tensor, out_channels: int, stride: int = 1) -> Tensor:
    """Option A shortcut: the identity, subsampled by ``stride``, zero-padded to ``out_channels``."""
    if not isinstance(x, Tensor) or x.dim() != 4:
        raise ValueError(f"x: expected an N x C x H x W tensor, got "
                         f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
    if not isinstance(out_channels, int) or out_channels < x.shape[1]:
        raise ValueError(f"out_channels: expected an integer >= the {x.shape[1]} input channels, "
                         f"got {out_channels!r}")
    if stride not in (1, 2):
        raise ValueError(f"stride: expected 1 or 2, got {stride!r}")
    # x[:, :, ::s, ::s]: the same positions a 3x3 convolution with stride s and padding 1 centres on
    x = x[:, :, ::stride, ::stride]
    # "extra zero entries padded for increasing dimensions": the new channels carry zeros
    return F.pad(x, (0, 0, 0, 0, 0, out_channels - x.shape[1]))


def stack_jacobian(jacobians: Sequence[Tensor], residual: bool = True) -> Tensor:
    """d x_L / d x_l of a stack of blocks, given each block's Jacobian at ITS OWN input
    (``thm-resnet-gradient``).

    ``jacobians[k]`` is J_{F_{l+k}}(x_{l+k}), in the order the blocks are applied. Residual:
    (I + J_{L-1}) ... (I + J_l); plain: J_{L-1} ... J_l. Later blocks multiply on the left.
    """
    if len(jacobians) == 0:
        raise ValueError("jacobians: expected at least one Jacobian")
    size = jacobians[0].shape[-1]
    if any(j.dim() != 2 or j.shape != (size, size) for j in jacobians):
        raise ValueError(f"jacobians: expected square matrices of one size, got "
                         f"{[tuple(j.shape) for j in jacobians]}")
    eye = torch.eye(size, dtype=jacobians[0].dtype, device=jacobians[0].device)
    total = eye
    for jac in jacobians:
        # x_{i+1} = x_i + F_i(x_i)  =>  d x_{i+1} / d x_i = I + J_{F_i}(x_i)   (plain: J_{F_i}(x_i))
        total = ((eye + jac) if residual else jac) @ total
    return total


def count_parameters(model: nn.Module) -> int:
    """The number of trainable parameters (BatchNorm's scale and shift included, as in Table 6)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected an nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions (Fig. 2): ``relu(branch_scale * F(x) + shortcut(x))``, or
    ``relu(F(x))`` when ``plain``; F = conv-BN-relu-conv-BN (no BN when ``batchnorm=False``)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, plain: bool = False,
                 batchnorm: bool = True, branch_scale: float = 1.0):
        super().__init__()
        if plain and branch_scale != 1.0:
            raise ValueError("branch_scale: a plain block has no residual branch to scale; "
                             f"expected 1.0, got {branch_scale!r}")
        self.out_channels, self.stride = out_channels, stride
        self.plain, self.branch_scale = plain, float(branch_scale)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=not batchnorm)
        self.bn1 = nn.BatchNorm2d(out_channels) if batchnorm else nn.Identity()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=not batchnorm)
        self.bn2 = nn.BatchNorm2d(out_channels) if batchnorm else nn.Identity()

    def residual(self, x: Tensor) -> Tensor:
        """F(x), the residual branch."""
        return self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))

    def forward(self, x: Tensor) -> Tensor:
        if self.plain:
            # plain: x_{l+1} = relu(F(x_l))
            return F.relu(self.residual(x))
        # eq. (1) followed by the ReLU after the addition: x_{l+1} = relu(x_l + F(x_l))
        return F.relu(pad_shortcut(x, self.out_channels, self.stride)
                      + self.branch_scale * self.residual(x))

    @torch.no_grad()
    def zero_residual_(self) -> BasicBlock:
        """Make F(x) = 0 for every x (the last layer of the branch outputs zeros); in place."""
        last = self.bn2 if isinstance(self.bn2, nn.BatchNorm2d) else self.conv2
        last.weight.zero_()
        if last.bias is not None:
            last.bias.zero_()
        return self


class CifarResNet(nn.Module):
    """The 6n+2-layer network of section 4.2: a 3x3 stem, three stages of n blocks (16, 32 and 64
    filters, stride 2 at the start of stages 2 and 3), global average pooling and a linear layer."""

    def __init__(self, depth: int, plain: bool = False, num_classes: int = 10, in_channels: int = 3,
                 batchnorm: bool = True, branch_scale: float = 1.0):
        super().__init__()
        n = blocks_per_stage(depth)
        positive_ints(num_classes=num_classes, in_channels=in_channels)
        self.depth, self.plain, self.batchnorm = depth, plain, batchnorm
        self.in_channels, self.branch_scale = in_channels, float(branch_scale)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, WIDTHS[0], 3, 1, 1, bias=not batchnorm),
                                  nn.BatchNorm2d(WIDTHS[0]) if batchnorm else nn.Identity(),
                                  nn.ReLU())
        stages, channels = [], WIDTHS[0]
        for index, width in enumerate(WIDTHS):
            blocks = []
            for k in range(n):
                stride = 2 if index > 0 and k == 0 else 1
                blocks.append(BasicBlock(channels, width, stride, plain, batchnorm, branch_scale))
                channels = width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.post = nn.Identity()  # what follows the last addition: nothing here (BN-relu, pre-activation)
        self.fc = nn.Linear(WIDTHS[-1], num_classes)
        _he_initialise(self)

    def blocks(self) -> list[BasicBlock]:
        return [block for stage in self.stages for block in stage]

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x: expected N x {self.in_channels} x H x W images, "
                             f"got shape {tuple(x.shape)}")
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        # global average pooling, then the classifier's logits
        return self.fc(self.post(x).mean(dim=(2, 3)))


def _he_initialise(model: nn.Module) -> None:
    """He et al. (2015) initialisation of every convolution, std = sqrt(2 / (k^2 c)), as the paper
    uses; biases at zero."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def cifar_resnet(depth: int, plain: bool = False, num_classes: int = 10, *, in_channels: int = 3,
                 batchnorm: bool = True, branch_scale: float = 1.0) -> CifarResNet:
    """ResNet-``depth`` (or its plain counterpart) for CIFAR-sized images, option-A shortcuts."""
    return CifarResNet(depth, plain, num_classes, in_channels, batchnorm, branch_scale)


@torch.no_grad()
def deepen(model: CifarResNet, depth: int) -> CifarResNet:
    """A deeper residual network that computes exactly the function of ``model``
    (``prop-resnet-zero-branch``).

    Every block of ``model`` is copied; each stage gets its extra blocks appended, with their
    residual branch zeroed, so each extra block maps its (non-negative, post-ReLU) input x to
    relu(x + 0) = x.
    """
    if not isinstance(model, CifarResNet):
        raise TypeError(f"model: expected a CifarResNet, got {type(model).__name__}")
    if not all(isinstance(block, BasicBlock) for block in model.blocks()):
        # pre-activation blocks would load into original blocks unnoticed
        raise TypeError("model: expected a CifarResNet of original blocks, got "
                        f"{type(model.blocks()[0]).__name__}s")
    if model.plain:
        raise ValueError("model: a plain network has no residual branch to zero; "
                         "expected a residual network")
    if blocks_per_stage(depth) < blocks_per_stage(model.depth):
        raise ValueError(f"depth: expected at least the model's depth {model.depth}, got {depth}")
    deep = cifar_resnet(depth, False, model.fc.out_features, in_channels=model.in_channels,
                        batchnorm=model.batchnorm, branch_scale=model.branch_scale)
    deep.stem.load_state_dict(model.stem.state_dict())
    deep.fc.load_state_dict(model.fc.state_dict())
    for old, new in zip(model.stages, deep.stages):
        for k, block in enumerate(new):
            if k < len(old):
                block.load_state_dict(old[k].state_dict())
            else:
                block.zero_residual_()
    return deep.train(model.training)


def gradient_norms(model: CifarResNet, x: Tensor, y: Tensor) -> dict[str, Tensor]:
    """Norms of the cross-entropy's gradient, without touching ``.grad``.

    ``input``: w.r.t. the images; ``activations``: w.r.t. the stem's output and every block's
    output, from the input side to the output side; ``weights``: w.r.t. every convolution's
    weight and the classifier's, in the same order. The model runs in its current mode.
    """
    if not isinstance(model, CifarResNet):
        raise TypeError(f"model: expected a CifarResNet, got {type(model).__name__}")
    if y.dim() != 1 or len(y) != len(x):
        raise ValueError(f"y: expected {len(x)} labels, got shape {tuple(y.shape)}")
    x = x.detach().clone().requires_grad_(True)
    outputs: list[Tensor] = []
    hooks = [m.register_forward_hook(lambda module, args, out: outputs.append(out))
             for m in [model.stem, *model.blocks()]]
    try:
        loss = F.cross_entropy(model(x), y)
    finally:
        for hook in hooks:
            hook.remove()
    weights = [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    grads = torch.autograd.grad(loss, [x, *outputs, *weights])
    norms = torch.stack([g.norm() for g in grads]).detach()
    return {"input": norms[0], "activations": norms[1:1 + len(outputs)],
            "weights": norms[1 + len(outputs):]}


def train(model: nn.Module, x: Tensor, y: Tensor, epochs: int, batch_size: int = 128,
          lr: float = 0.1, momentum: float = 0.9, weight_decay: float = 1e-4,
          milestones: Sequence[int] = (), generator: torch.Generator | None = None,
          **fit_kwargs) -> History:
    """The paper's optimiser: SGD with momentum and weight decay, lr divided by 10 at each
    epoch in ``milestones``; minimises the cross-entropy on logits with ``paperlib.train.fit``."""
    if not lr > 0:
        raise ValueError(f"lr: expected a positive learning rate, got {lr!r}")
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                                weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(milestones), gamma=0.1)
    callback = fit_kwargs.pop("on_epoch_end", None)

    def on_epoch_end(epoch: int, seconds: float) -> None:
        schedule.step()
        if callback is not None:
            callback(epoch, seconds)

    return fit(model, lambda xb, yb: F.cross_entropy(model(xb), yb), (x, y), optimizer, epochs,
               batch_size, generator, on_epoch_end=on_epoch_end, **fit_kwargs)
