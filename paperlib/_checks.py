"""Argument checks shared by paperlib's modules. Each error starts with the argument's name.

These run at the boundary (constructors, hyperparameters, shapes and types): none of them reads a
tensor's values, so none forces a device-to-host synchronisation. Checks on the data themselves
(targets in [0, 1], finite coordinates, w^T u > -1) live in the functions that need them, behind a
``validate=False`` keyword, so that training loops do not pay for them on every call.
"""

from __future__ import annotations

import math

from torch import Tensor


def positive_int(name: str, value) -> int:
    """``value`` if it is an integer >= 1 (not a bool), else a ValueError that names ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return value


def positive_ints(**values) -> None:
    """Each keyword's value a positive integer (:func:`positive_int`), checked in the order given."""
    for name, value in values.items():
        positive_int(name, value)


def same_shape(**tensors: Tensor) -> None:
    """Two named tensors of the same shape; the error names the second one."""
    (name_a, a), (name_b, b) = tensors.items()
    if a.shape != b.shape:
        raise ValueError(f"{name_b}: expected the shape of {name_a} {tuple(a.shape)}, "
                         f"got {tuple(b.shape)}")


def float_tensor(name: str, value, dims: int | None = None) -> Tensor:
    """``value`` if it is a floating-point tensor (with ``dims`` dimensions, when given)."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name}: expected a floating-point torch.Tensor, "
                        f"got {type(value).__name__}")
    if not value.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got {value.dtype}")
    if dims is not None and value.dim() != dims:
        raise ValueError(f"{name}: expected {dims} dimensions, got shape {tuple(value.shape)}")
    return value


def batch(name: str, value, dim: int) -> Tensor:
    """``value`` if it is a tensor of shape [N, dim]."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
    if value.dim() != 2 or value.shape[1] != dim:
        raise ValueError(f"{name}: expected shape [N, {dim}], got {tuple(value.shape)}")
    return value


def degree_tensor(name: str, value) -> Tensor:
    """``value`` if it is a non-empty 1-D integer tensor (MADE's connectivity degrees)."""
    if (not isinstance(value, Tensor) or value.dim() != 1 or value.dtype.is_floating_point
            or len(value) == 0):
        raise TypeError(f"{name}: expected a non-empty 1-D integer tensor of degrees, got {value!r}")
    return value


def nonnegative(name: str, value) -> float:
    """``value`` as a float if it is a real number >= 0 (not a bool, not NaN)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"{name}: expected a non-negative number, got {value!r}")
    return float(value)


def beta_pair(value) -> tuple[float, float]:
    """Adam's ``betas``: a pair of decay rates, each in [0, 1)."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"betas: expected a pair (beta1, beta2), got {value!r}")
    for k, beta in enumerate(value, start=1):
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0.0 <= beta < 1.0:
            raise ValueError(f"betas: beta{k} must lie in [0, 1), got {beta!r}")
    return float(value[0]), float(value[1])


def loss_weight(name: str, value) -> float:
    """A loss weight (beta, gamma, C): a real number, not NaN, not negative.

    A one-element tensor is accepted and read once, here, at the call's boundary.
    """
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise TypeError(f"{name}: expected a number, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    if math.isnan(value) or value < 0:
        raise ValueError(f"{name}: expected a non-negative number, got {value}")
    return float(value)
