"""Pre-activation residual units: He, Zhang, Ren & Sun, "Identity Mappings in Deep Residual
Networks" (ECCV 2016), Fig. 4(e).

Explained, derived and checked in the ResNet chapter, ``chapters/cnn/resnet.ipynb``
(``prop-resnet-unrolled``): with nothing after the addition, a stack of blocks unrolls to
x_L = x_l + sum_i F_i(x_i), and ``input_gradient_ratio`` measures what that does to the gradient
beside the original block of :mod:`paperlib.resnet`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from paperlib._checks import float_tensor, positive_int
from paperlib.resnet import WIDTHS, BasicBlock, CifarResNet, _he_initialise, pad_shortcut


class PreActBasicBlock(nn.Module):
    """The pre-activation block (``prop-resnet-unrolled``): ``shortcut(x) + branch_scale * F(x)``
    with F = BN-relu-conv-BN-relu-conv and nothing after the addition, so that a stack unrolls to
    x_L = x_l + sum_i F_i(x_i) within a stage."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, batchnorm: bool = True,
                 branch_scale: float = 1.0):
        super().__init__()
        positive_int("in_channels", in_channels)
        positive_int("out_channels", out_channels)
        if out_channels < in_channels:
            raise ValueError(f"out_channels: expected at least the {in_channels} input channels "
                             f"(option-A shortcuts only pad), got {out_channels}")
        if stride not in (1, 2) or isinstance(stride, bool):
            raise ValueError(f"stride: expected 1 or 2, got {stride!r}")
        if isinstance(branch_scale, bool) or not isinstance(branch_scale, (int, float)) \
                or not math.isfinite(branch_scale):
            raise ValueError(f"branch_scale: expected a finite number, got {branch_scale!r}")
        self.out_channels, self.stride, self.branch_scale = out_channels, stride, float(branch_scale)
        self.bn1 = nn.BatchNorm2d(in_channels) if batchnorm else nn.Identity()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=not batchnorm)
        self.bn2 = nn.BatchNorm2d(out_channels) if batchnorm else nn.Identity()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=not batchnorm)

    def residual(self, x: Tensor) -> Tensor:
        """F(x), the residual branch: each convolution is preceded by BN and relu."""
        return self.conv2(F.relu(self.bn2(self.conv1(F.relu(self.bn1(x))))))

    def forward(self, x: Tensor) -> Tensor:
        # x_{l+1} = x_l + F(x_l): no nonlinearity after the addition (He et al. 2016b, eq. 3)
        return pad_shortcut(x, self.out_channels, self.stride) + self.branch_scale * self.residual(x)

    @torch.no_grad()
    def zero_residual_(self) -> PreActBasicBlock:
        """Make F(x) = 0 for every x (the last convolution outputs zeros); in place. The block is
        then the identity on every input, negative entries included."""
        self.conv2.weight.zero_()
        if self.conv2.bias is not None:
            self.conv2.bias.zero_()
        return self


class PreActResNet(CifarResNet):
    """The 6n+2-layer network of :class:`CifarResNet` built from :class:`PreActBasicBlock`: the
    stem's BN-relu is the first unit's pre-activation, and BN-relu after the last addition feeds
    the pooling (He et al. 2016b, section 4.1)."""

    def __init__(self, depth: int, num_classes: int = 10, in_channels: int = 3,
                 batchnorm: bool = True, branch_scale: float = 1.0):
        super().__init__(depth, False, num_classes, in_channels, batchnorm, branch_scale)
        stages = []
        for stage in self.stages:
            stages.append(nn.Sequential(*[
                PreActBasicBlock(block.conv1.in_channels, block.out_channels, block.stride,
                                 batchnorm, branch_scale) for block in stage]))
        self.stages = nn.ModuleList(stages)
        # the first unit's branch starts at the stem's BN-relu: no second BN (its relu then passes
        # the non-negative input unchanged), as in the paper's first unit
        self.stages[0][0].bn1 = nn.Identity()
        self.post = nn.Sequential(nn.BatchNorm2d(WIDTHS[-1]) if batchnorm else nn.Identity(),
                                  nn.ReLU())
        _he_initialise(self.stages)  # the new blocks, initialised as in CifarResNet


def preact_resnet(depth: int, num_classes: int = 10, *, in_channels: int = 3, batchnorm: bool = True,
                  branch_scale: float = 1.0) -> PreActResNet:
    """Pre-activation ResNet-``depth`` for CIFAR-sized images, option-A shortcuts."""
    return PreActResNet(depth, num_classes, in_channels, batchnorm, branch_scale)


def input_gradient_ratio(blocks: Sequence[nn.Module], x: Tensor, shortcuts_only: bool = False,
                         generator: torch.Generator | None = None) -> float:
    """||dL/dx_0|| / ||dL/dx_L|| through a stack of residual blocks, for the loss L = <g, x_L> with
    a standard normal g (so dL/dx_L = g): the measurement beside ``prop-resnet-unrolled``.

    ``shortcuts_only``: every residual branch is detached, so the gradient flows back through the
    shortcuts (and the ReLU after the addition, in a :class:`BasicBlock`) alone: the identity term.
    The blocks run in their current mode.
    """
    if len(blocks) == 0 or not all(isinstance(b, (BasicBlock, PreActBasicBlock)) and not
                                   getattr(b, "plain", False) for b in blocks):
        raise TypeError("blocks: expected a non-empty sequence of residual BasicBlocks or "
                        "PreActBasicBlocks")
    float_tensor("x", x, dims=4)
    x0 = x.detach().clone().requires_grad_(True)
    out = x0
    for block in blocks:
        if not shortcuts_only:
            out = block(out)
            continue
        # the branch's output enters the sum as a constant: only the shortcut path is differentiated
        added = (pad_shortcut(out, block.out_channels, block.stride)
                 + block.branch_scale * block.residual(out).detach())
        out = F.relu(added) if isinstance(block, BasicBlock) else added
    g = torch.randn(out.shape, generator=generator, dtype=out.dtype, device=out.device)
    # L = <g, x_L>  =>  dL/dx_L = g
    (grad_x0,) = torch.autograd.grad((g * out).sum(), x0)
    return (grad_x0.norm() / g.norm()).item()
