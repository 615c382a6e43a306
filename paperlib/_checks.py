"""Argument checks shared by paperlib's modules. Each error starts with the argument's name."""

from __future__ import annotations

from torch import Tensor


def positive_int(name: str, value) -> int:
    """``value`` if it is an integer >= 1 (not a bool), else a ValueError that names ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return value


def same_shape(**tensors: Tensor) -> None:
    """Two named tensors of the same shape; the error names the second one."""
    (name_a, a), (name_b, b) = tensors.items()
    if a.shape != b.shape:
        raise ValueError(f"{name_b}: expected the shape of {name_a} {tuple(a.shape)}, "
                         f"got {tuple(b.shape)}")
